"""The database schema: apply the migrations."""

from __future__ import annotations

import typer

from geogrid.cli.common import _state, console
from geogrid.db import create_engine, upgrade
from geogrid.db.migrate import current_revision


def db_upgrade(ctx: typer.Context) -> None:
    """Apply the schema migrations to the database."""
    engine = create_engine(_state(ctx).settings)
    upgrade(engine)
    console.print(f"Schema at {current_revision(engine)}.")
