"""The standard-address registry and geocoding: ``geogrid addresses ...``, ``geogrid geocode``, ``geogrid queue ...``."""

from __future__ import annotations

import typer

addresses_app = typer.Typer(
    help="The standard-address registry: import, export and list addresses.", no_args_is_help=True
)
queue_app = typer.Typer(
    help="The manual-placement queue: address texts the matcher was not sure of.", no_args_is_help=True
)
