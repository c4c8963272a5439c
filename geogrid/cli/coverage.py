"""Coverage: ``geogrid coverage`` (where is nobody) and ``geogrid map`` (the same as folium maps)."""

from __future__ import annotations

import typer


def coverage(ctx: typer.Context) -> None:
    """Where nobody is: land without grid, grids without people, households outside a service reach."""
    raise NotImplementedError


def map_(ctx: typer.Context) -> None:
    """A coverage map as a self-contained HTML file that opens offline."""
    raise NotImplementedError
