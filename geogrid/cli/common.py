"""What every command shares: the global options, the state they make, the consoles and small helpers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import make_url

from geogrid.db import Store, create_engine, upgrade
from geogrid.db.migrate import current_revision, head_revision
from geogrid.errors import NotFound
from geogrid.settings import Settings

console = Console()
err = Console(stderr=True)

DateOpt = Annotated[dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="A date, YYYY-MM-DD.")]


# Commands that only read: they never create a database (nor its schema), and say so when there is none.
READ_ONLY_COMMANDS = frozenset({"info", "export", "versions", "validate", "assign", "coverage", "map"})


class State:
    """What every command needs: settings, and a store opened on first use."""

    last: State | None = None  # the running command's state, so that main() can name its database

    def __init__(self, settings: Settings, *, read_only: bool = False) -> None:
        self.settings = settings
        self.read_only = read_only
        self._store: Store | None = None
        State.last = self

    @property
    def database(self) -> str:
        """The database URL as a person should read it: no password, a SQLite path made absolute."""
        url = make_url(self.settings.database_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            url = url.set(database=str(Path(url.database).expanduser().resolve()))
        return url.render_as_string(hide_password=True)

    def _sqlite_file(self) -> Path | None:
        url = make_url(self.settings.database_url)
        if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
            return None
        return Path(url.database).expanduser()

    @property
    def store(self) -> Store:
        """The store; a read-only command refuses a database that does not exist instead of making one."""
        if self._store is None:
            path = self._sqlite_file()
            if self.read_only and path is not None and not path.is_file():
                relative = (
                    "" if path.is_absolute() else " (a relative path: it depends on the current folder)"
                )
                raise NotFound(
                    f"no GeoGrid database at {path.resolve()}{relative}; load one with `geogrid demo`, or "
                    "point --database-url (GEOGRID_DATABASE_URL) at it",
                    database=self.database,
                )
            engine = create_engine(self.settings)
            revision = current_revision(engine)
            if revision is None and self.read_only:
                raise NotFound(
                    f"{self.database} holds no GeoGrid schema; run `geogrid demo` or `geogrid db upgrade` "
                    "first, or give the right --database-url",
                    database=self.database,
                )
            if revision != head_revision():
                upgrade(engine)  # idempotent; brings a new or older database to this GeoGrid's schema
            self._store = Store(engine, actor=self.settings.actor)
        return self._store


def main_options(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(envvar="GEOGRID_DATABASE_URL", help="SQLAlchemy URL (default: SpatiaLite file)."),
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Who is recorded in the audit log.")] = None,
) -> None:
    """Global options."""
    overrides: dict[str, Any] = {}
    if database_url:
        overrides["database_url"] = database_url
    if actor:
        overrides["actor"] = actor
    ctx.obj = State(Settings(**overrides), read_only=ctx.invoked_subcommand in READ_ONLY_COMMANDS)


def _state(ctx: typer.Context) -> State:
    state: State = ctx.obj
    return state


def _date(value: dt.datetime | None) -> dt.date | None:
    return value.date() if value is not None else None


def _progress(enabled: bool = True) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not enabled,
    )
