"""The manual-placement queue in the database: texts the matcher was not sure of, waiting for a person.

One open item per normalised text (a partial unique index keeps it so): a text seen again while open is
counted (``seen``) and keeps the newest candidates. Phones in a text are masked before it is stored, as
everywhere a value is repeated. Resolving an item closes it and records its normalised text as an alias
of the address or point a person chose, so the same text matches by itself next time. These functions
work inside the caller's transaction; :class:`geogrid.db.addresses.AddressStore` holds the set's lock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from geogrid.addresses.registry import LAT_RANGE, LON_RANGE
from geogrid.addresses.text import normalize
from geogrid.db.schema import address, address_alias, geocode_queue, valid_on
from geogrid.db.store import _now, _utc
from geogrid.errors import InvalidCoordinates, InvalidValue, NotFound, VersionConflict
from geogrid.io import echo
from geogrid.people import shown

QUEUE_COLUMNS = ["id", "text", "norm", "seen", "source", "status", "confidence", "candidates", "parts"]
QUEUE_COLUMNS += ["received_at", "last_seen_at", "resolved_by", "resolved_at", "address_id", "lon", "lat"]
STATUSES = ("open", "resolved")
CHUNK = 500


def key(text: str) -> str:
    """The key of an alias and of a queue item: the matcher's normal form of ``text`` (the text itself
    when that is empty, as for a text that is only an administrative prefix)."""
    return normalize(text) or text.strip()


def enqueue(conn: Connection, set_id: int, matches: Sequence[Any], source: str) -> list[int]:
    """Queue the texts of ``matches`` (each with ``query``, ``parts``, ``confidence`` and ``candidates``
    whose ``to_dict()`` is JSON): the item id of each, in order."""
    items: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for match in matches:
        text = shown(str(match.query))
        norm = key(text)
        order.append(norm)
        item = items.setdefault(norm, {"text": text, "seen": 0})
        item["seen"] += 1
        item["confidence"] = _float(getattr(match, "confidence", None))
        item["parts"] = _parts(getattr(match, "parts", None))
        item["candidates"] = [_masked(c.to_dict()) for c in getattr(match, "candidates", ())]
    source, now = shown(source)[:100], _now()
    found = _open_items(conn, set_id, list(items))
    fresh = [k for k in items if k not in found]
    again = [k for k in items if k in found]
    common = {"set_id": set_id, "source": source, "status": "open", "received_at": now, "last_seen_at": now}
    for start in range(0, len(fresh), CHUNK):
        rows = [{**items[k], **common, "norm": k} for k in fresh[start : start + CHUNK]]
        conn.execute(sa.insert(geocode_queue), rows)
    seen_again = (
        sa.update(geocode_queue)
        .where(geocode_queue.c.id == sa.bindparam("ref"))
        .values(
            seen=geocode_queue.c.seen + sa.bindparam("more"),
            confidence=sa.bindparam("conf"),
            parts=sa.bindparam("prt"),
            candidates=sa.bindparam("cands"),
            last_seen_at=now,
        )
    )
    for start in range(0, len(again), CHUNK):
        part = again[start : start + CHUNK]
        conn.execute(
            seen_again,
            [
                {
                    "ref": found[k],
                    "more": items[k]["seen"],
                    "conf": items[k]["confidence"],
                    "prt": items[k]["parts"],
                    "cands": items[k]["candidates"],
                }
                for k in part
            ],
        )
    ids = {**found, **_open_items(conn, set_id, fresh)}
    return [ids[k] for k in order]


def items(
    conn: Connection, set_id: int, status: str | None, *, limit: int | None = None, offset: int = 0
) -> list[dict[str, Any]]:
    """The set's queue items with ``status`` (None: all), oldest first, as dicts of :data:`QUEUE_COLUMNS`."""
    if status is not None and status not in STATUSES:
        raise InvalidValue(f"no queue status {echo(status)!r}: open, resolved or all", field="status")
    query = sa.select(*(geocode_queue.c[c] for c in QUEUE_COLUMNS)).where(geocode_queue.c.set_id == set_id)
    if status is not None:
        query = query.where(geocode_queue.c.status == status)
    query = query.order_by(geocode_queue.c.id).offset(max(offset, 0))
    if limit is not None:
        query = query.limit(max(limit, 0))
    return [_item(r) for r in conn.execute(query).mappings()]


def resolve(
    conn: Connection,
    set_id: int,
    set_name: str,
    item_id: int,
    address_id: str | None,
    point: tuple[float, float] | None,
    actor: str,
    inside: Callable[[float, float], None],
    visible: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any]:
    """Close an open item on an address in force today or a point (``inside`` refuses a target outside
    the caller's scope; an item the caller may not see is not found) and record its alias; the item,
    with ``alias`` and ``replaced_alias``."""
    query = sa.select(geocode_queue).where(geocode_queue.c.set_id == set_id, geocode_queue.c.id == item_id)
    row = conn.execute(query.with_for_update()).mappings().first()
    if row is None or (visible is not None and not visible(_item(row))):
        raise NotFound(f"no queue item {item_id} in {set_name!r}", set=set_name, item_id=item_id)
    if row["status"] != "open":
        raise VersionConflict(
            f"queue item {item_id} was resolved by {row['resolved_by']} already", item_id=item_id
        )
    if address_id is not None:
        today = dt.date.today()
        target = conn.execute(
            sa.select(address.c.lon, address.c.lat).where(
                address.c.set_id == set_id,
                address.c.address_id == address_id,
                valid_on(address, today),
            )
        ).first()
        if target is None:
            raise NotFound(
                f"no address {echo(address_id)!r} in force in {set_name!r}",
                set=set_name,
                address_id=echo(address_id),
            )
        inside(float(target[0]), float(target[1]))
        lon, lat = None, None
    else:
        assert point is not None
        inside(*point)
        lon, lat = point
    now = _now()
    gone = sa.delete(address_alias).where(
        address_alias.c.set_id == set_id, address_alias.c.norm == row["norm"]
    )
    replaced = conn.execute(gone).rowcount
    alias = {"set_id": set_id, "text": row["text"], "norm": row["norm"], "address_id": address_id}
    alias |= {"lon": lon, "lat": lat, "source": "queue", "created_by": actor, "created_at": now}
    conn.execute(sa.insert(address_alias).values(**alias))
    done = {"status": "resolved", "resolved_by": actor, "resolved_at": now, "address_id": address_id}
    conn.execute(
        sa.update(geocode_queue).where(geocode_queue.c.id == item_id).values(**done, lon=lon, lat=lat)
    )
    after = conn.execute(query).mappings().one()
    return {**_item(after), "alias": row["norm"], "replaced_alias": bool(replaced)}


def china_point(point: tuple[float, float]) -> tuple[float, float]:
    """A (lon, lat) within China's range, or InvalidCoordinates."""
    try:
        lon, lat = (float(v) for v in point)
    except (TypeError, ValueError) as exc:
        raise InvalidCoordinates(f"not a point (lon, lat): {echo(str(point))}", field="point") from exc
    if not (LON_RANGE[0] <= lon <= LON_RANGE[1] and LAT_RANGE[0] <= lat <= LAT_RANGE[1]):  # NaN too
        raise InvalidCoordinates(
            f"({lon!r}, {lat!r}) is not a WGS-84 lon, lat in China ({LON_RANGE[0]:g}–{LON_RANGE[1]:g} E, "
            f"{LAT_RANGE[0]:g}–{LAT_RANGE[1]:g} N)",
            field="point",
        )
    return lon, lat


def _open_items(conn: Connection, set_id: int, norms: list[str]) -> dict[str, int]:
    """Normalised text → id of its open queue item, for those of ``norms`` that have one."""
    out: dict[str, int] = {}
    for start in range(0, len(norms), CHUNK):
        query = sa.select(geocode_queue.c.norm, geocode_queue.c.id).where(
            geocode_queue.c.set_id == set_id,
            geocode_queue.c.status == "open",
            geocode_queue.c.norm.in_(norms[start : start + CHUNK]),
        )
        out.update({str(k): int(v) for k, v in conn.execute(query)})
    return out


def _item(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A queue row as a dict: UTC timestamps, floats."""
    item = {c: row[c] for c in QUEUE_COLUMNS}
    for c in ("received_at", "last_seen_at", "resolved_at"):
        item[c] = _utc(item[c])
    for c in ("confidence", "lon", "lat"):
        item[c] = _float(item[c])
    return item


def _parts(parts: Any) -> dict[str, Any] | None:
    """A match's parts as JSON (a dataclass or a mapping), phones masked."""
    if parts is None:
        return None
    if dataclasses.is_dataclass(parts) and not isinstance(parts, type):
        return _masked(dataclasses.asdict(parts))
    if isinstance(parts, Mapping):
        return _masked(parts)
    return {"text": shown(parts)}


def _masked(data: Mapping[str, Any]) -> dict[str, Any]:
    """A flat JSON object with every text value's phones masked (and cut to 200 characters)."""
    return {str(k): shown(v) if isinstance(v, str) else v for k, v in data.items()}


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None
