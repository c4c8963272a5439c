"""The ``geogrid`` command: the app assembled from one module per group of commands, and its entry point."""

from __future__ import annotations

import sys

import typer

from geogrid.cli import (
    addresses,
    assign,
    boundaries,
    common,
    coverage,
    incidents,
    keys,
    people,
    schema,
    serve,
    topology,
)
from geogrid.cli.boundaries import _describe_change as _describe_change  # tests import it from here
from geogrid.cli.boundaries import _total as _total
from geogrid.cli.common import State, err
from geogrid.errors import GeoGridError, NotFound

app = typer.Typer(
    help="GeoGrid: grid and community boundaries for grid-based governance.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
keys_app = typer.Typer(help="API keys for the HTTP service.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(people.people_app, name="people")
app.add_typer(people.layers_app, name="layers")
app.add_typer(addresses.addresses_app, name="addresses")
app.add_typer(addresses.queue_app, name="queue")
app.add_typer(incidents.incidents_app, name="incidents")

# Registered here, in one place, because the order of registration is the order of `geogrid --help`.
app.callback()(common.main_options)
app.command("import")(boundaries.import_)
app.command()(boundaries.export)
app.command()(boundaries.versions)
app.command()(boundaries.publish)
app.command()(topology.validate)
app.command()(topology.repair)
app.command()(topology.compare)
app.command()(boundaries.info)
app.command()(boundaries.demo)
app.command()(assign.assign)
app.command()(addresses.geocode)
app.command()(coverage.coverage)
app.command("map")(coverage.map_)
keys_app.command("create")(keys.keys_create)
keys_app.command("list")(keys.keys_list)
keys_app.command("revoke")(keys.keys_revoke)
db_app.command("upgrade")(schema.db_upgrade)
app.command()(serve.serve)


def main() -> None:
    """Entry point: run the app, turning GeoGrid errors into one clear line and exit code 2."""
    try:
        app(prog_name="geogrid")
    except GeoGridError as exc:
        state = State.last
        if isinstance(exc, NotFound) and state is not None and "database" not in exc.where:
            exc.detail = f"{exc.detail} in {state.database}"  # which database was asked matters most
        where = ", ".join(f"{k}={v}" for k, v in exc.where.items())
        message = f"[red]error:[/] {exc.detail}" + (f" [dim]({where})[/]" if where else "")
        err.print(message, highlight=False, soft_wrap=True)
        sys.exit(2)
