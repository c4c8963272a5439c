"""Rosters and the layers beside the boundaries: ``geogrid people ...`` and ``geogrid layers ...``."""

from __future__ import annotations

import typer

people_app = typer.Typer(help="People and their posts: import, export and list rosters.", no_args_is_help=True)
layers_app = typer.Typer(help="Buildings, service sites and roads beside a boundary set.", no_args_is_help=True)
