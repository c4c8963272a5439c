"""API keys for the HTTP service: create, list, revoke."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from geogrid.access import Role
from geogrid.cli.common import _state, console, err
from geogrid.db.keys import Keys


def keys_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Who or what uses the key.")],
    role: Annotated[Role, typer.Option(help="What the key may do.")],
    scope: Annotated[
        str | None,
        typer.Option(help="Limit the key to a street or community code (a worker's also to a grid)."),
    ] = None,
) -> None:
    """Create an API key and print it (it is shown this once; only its hash is kept)."""
    state = _state(ctx)
    info, key = Keys(state.store.engine).create(name, role, scope=scope, actor=state.settings.actor)
    err.print(f"Key {info.id} for {name!r}: {role.value}" + (f", limited to {scope}" if scope else ""))
    print(key)


def keys_list(ctx: typer.Context) -> None:
    """List the API keys (never the keys themselves)."""
    table = Table("id", "name", "role", "scope", "created", "revoked")
    for k in Keys(_state(ctx).store.engine).list():
        revoked = f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else ""
        table.add_row(str(k.id), k.name, k.role, k.scope or "", f"{k.created_at:%Y-%m-%d %H:%M}", revoked)
    console.print(table)


def keys_revoke(ctx: typer.Context, key_id: Annotated[int, typer.Argument(help="The key's id.")]) -> None:
    """Revoke an API key (running services stop accepting it within 30 s)."""
    state = _state(ctx)
    Keys(state.store.engine).revoke(key_id, actor=state.settings.actor)
    console.print(f"Key {key_id} revoked.")
