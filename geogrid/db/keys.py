"""API keys in the database: create (the key is shown once, only its hash is kept), list, revoke, resolve."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from geogrid.access import Principal, Role, key_hash, new_key
from geogrid.db.schema import api_key
from geogrid.db.store import write_audit
from geogrid.errors import InvalidCode, NotFound
from geogrid.hierarchy import Level, level_of


@dataclass(frozen=True)
class KeyInfo:
    """An API key as listed: never the key itself."""

    id: int
    name: str
    role: str
    scope: str | None
    created_at: dt.datetime
    created_by: str
    revoked_at: dt.datetime | None


class Keys:
    """The API keys kept in a GeoGrid database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(
        self, name: str, role: str | Role, *, scope: str | None = None, actor: str = "geogrid"
    ) -> tuple[KeyInfo, str]:
        """A new key for ``name`` with ``role``, limited to the street or community ``scope`` if given (a
        worker's key also to their grid or micro-grid: workers act only on the incidents of their grids)."""
        role = Role(role)
        if scope is not None:
            if role is Role.admin:
                raise InvalidCode("an admin key cannot be limited to a scope", field="scope")
            levels = (Level.street, Level.community) + (
                (Level.grid, Level.microgrid) if role is Role.worker else ()
            )
            if level_of(scope) not in levels:
                what = (
                    "a street, community, grid or micro-grid"
                    if role is Role.worker
                    else "a street or community"
                )
                raise InvalidCode(f"scope {scope!r} is not {what} code", field="scope")
        if not name.strip() or len(name) > 100 or not name.isprintable():
            raise InvalidCode("a key needs a name of 1–100 printable characters", field="name")
        key = new_key()
        now = dt.datetime.now(dt.UTC)
        with self.engine.begin() as conn:
            key_id = conn.execute(
                sa.insert(api_key)
                .values(
                    name=name,
                    role=role.value,
                    scope=scope,
                    key_hash=key_hash(key),
                    created_at=now,
                    created_by=actor,
                )
                .returning(api_key.c.id)
            ).scalar_one()
            write_audit(
                conn, actor, "create_key", {"id": key_id, "name": name, "role": role.value, "scope": scope}
            )
        return KeyInfo(key_id, name, role.value, scope, now, actor, None), key

    def list(self) -> list[KeyInfo]:
        """Every key, oldest first, revoked ones included."""
        cols = [api_key.c[f] for f in KeyInfo.__dataclass_fields__]
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(*cols).order_by(api_key.c.id)).all()
        return [KeyInfo(*row) for row in rows]

    def revoke(self, key_id: int, *, actor: str = "geogrid") -> None:
        """Revoke a key; it stops working at once here and within the cache time in running services."""
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(api_key)
                .where(api_key.c.id == key_id, api_key.c.revoked_at.is_(None))
                .values(revoked_at=dt.datetime.now(dt.UTC))
            ).rowcount
            if not done:
                raise NotFound(f"no active API key with id {key_id}", key=key_id)
            write_audit(conn, actor, "revoke_key", {"id": key_id})

    def resolve(self, key: str) -> Principal | None:
        """The caller a key stands for, or None if it is unknown or revoked."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(api_key.c.name, api_key.c.role, api_key.c.scope).where(
                    api_key.c.key_hash == key_hash(key), api_key.c.revoked_at.is_(None)
                )
            ).first()
        return Principal(row[0], Role(row[1]), row[2]) if row else None
