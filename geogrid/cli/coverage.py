"""Coverage: ``geogrid coverage`` (where is nobody) and ``geogrid map`` (the same as folium maps).

Phones: this is a local administrator's tool, so ``coverage`` shows and writes full numbers unless
``--mask-phones``; ``map`` masks them unless ``--no-mask-phones``, because map files get passed around.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pandas as pd
import typer
from rich.table import Table

from geogrid.cli.common import DateOpt, _date, _state, console, err

if TYPE_CHECKING:
    from geogrid.coverage import CoverageReport

SetOpt = Annotated[str, typer.Option("--set", help="The boundary set.")]
NormOpt = Annotated[
    str | None, typer.Option(help="Households per grid, LOW-HIGH (default 300-500, the set's norm).")
]
SpeedOpt = Annotated[
    float | None, typer.Option("--speed", help="Walking speed, km/h (default GEOGRID_WALKING_SPEED_KMH, 5).")
]
MinutesOpt = Annotated[
    float | None, typer.Option(help="The reach of a site, minutes (default GEOGRID_REACH_MINUTES, 15).")
]
WORST = 15  # grids the table lists


def _report(
    ctx: typer.Context,
    set_name: str,
    at: Any,
    norm: str | None,
    speed: float | None,
    minutes: float | None,
    masked: bool,
) -> CoverageReport:
    from geogrid.db.coverage import coverage_of
    from geogrid.people import mask_phone

    state = _state(ctx)
    settings = state.settings
    with err.status(f"Computing the coverage of {set_name}…"):
        return coverage_of(
            state.store.engine,
            set_name,
            _date(at),
            norm=norm,
            minutes=minutes if minutes is not None else settings.reach_minutes,
            speed_kmh=speed if speed is not None else settings.walking_speed_kmh,
            mask=mask_phone if masked else None,
        )


def coverage(
    ctx: typer.Context,
    set_name: SetOpt,
    at: DateOpt = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the layers (grids, gaps, outside, sites, reach) as GeoPackage.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON, no table.")] = False,
    norm: NormOpt = None,
    speed: SpeedOpt = None,
    minutes: MinutesOpt = None,
    mask_phones: Annotated[bool, typer.Option(help="Mask phones in the GeoPackage (138****1234).")] = False,
) -> None:
    """Where nobody is: land without grid, grids without people, households outside a service reach."""
    report = _report(ctx, set_name, at, norm, speed, minutes, mask_phones)
    summary = report.summary()
    if out is not None:
        report.to_gpkg(out)
    if as_json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        console.print(_summary_table(summary))
        console.print(_worst_table(report))
    if out is not None:
        err.print(f"Layers written to {out}.")


def _summary_table(s: dict[str, Any]) -> Table:
    table = Table(
        title=f"Coverage of {s['set']} on {s['at']}: {s['grids']:,} grids, {s['households']:,} households"
    )
    table.add_column("question")
    table.add_column("count", justify="right")
    table.add_column("which", overflow="fold")

    def codes(entry: dict[str, Any]) -> str:
        shown = entry["codes"][:6]
        return ", ".join(shown) + (
            f" … (+{entry['count'] - len(shown)})" if entry["count"] > len(shown) else ""
        )

    for label, key in (
        ("no leader, no worker", "unstaffed"),
        ("no leader", "no_leader"),
        ("no worker", "no_worker"),
    ):
        table.add_row(f"grids with {label}", f"{s['staffing'][key]['count']:,}", codes(s["staffing"][key]))
    table.add_row(
        "communities without secretary", f"{s['no_secretary']['count']:,}", codes(s["no_secretary"])
    )
    low, high = s["norm"]["low"], s["norm"]["high"]
    table.add_row(
        f"grids under {low} households", f"{s['norm']['under']['count']:,}", codes(s["norm"]["under"])
    )
    table.add_row(
        f"grids over {high} households", f"{s['norm']['over']['count']:,}", codes(s["norm"]["over"])
    )
    w = s["workers"]
    load = w["households_per_worker"]
    each = (
        "—"
        if load["mean"] is None
        else f"mean {load['mean']:,}, median {load['median']:,}, max {load['max']:,}"
    )
    table.add_row("workers; households each", f"{w['count']:,}", each)
    if w["max_grids"]:
        top = w["max_grids"]
        table.add_row("most grids per worker", str(top["grids"]), f"{top['name']} ({top['person_id']})")
    r = s["reach"]
    table.add_row(
        f"households beyond {r['minutes']:g} min ({r['method']})",
        f"{r['households_outside']:,}",
        f"{r['buildings_outside']:,} buildings in {r['grids']:,} grids; {r['sites']:,} sites",
    )
    table.add_row("land in no grid (m²)", f"{s['gaps']['area_m2']:,.0f}", f"{s['gaps']['count']} piece(s)")
    table.add_row("topology faults", f"{s['problems']['count']:,}", json.dumps(s["problems"]["by_kind"]))
    return table


def _worst_table(report: CoverageReport) -> Table:
    g = report.grids
    rank = (g["staffing"] != "staffed").astype(int) * 4 + (g["norm"] != "within").astype(int) * 2
    order = g.assign(_rank=rank).sort_values(
        ["_rank", "households_outside_reach", "code"], ascending=[False, False, True]
    )
    table = Table(title=f"The {WORST} grids most in need")
    for column in ("code", "name", "households", "leader", "workers", "per worker", "staffing", "norm"):
        numeric = column in ("households", "workers", "per worker")
        table.add_column(column, justify="right" if numeric else "left", no_wrap=column != "name")
    table.add_column("beyond reach", justify="right", no_wrap=True)
    for row in order.head(WORST).itertuples():
        per = "—" if pd.isna(row.households_per_worker) else f"{row.households_per_worker:,.0f}"
        table.add_row(
            row.code,
            row.name,
            f"{row.households:,}",
            "、".join(row.leaders) or "—",
            str(row.workers),
            per,
            row.staffing,
            row.norm,
            f"{row.households_outside_reach:,}",
        )
    return table


def map_(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="responsibility, gaps or service.")],
    set_name: SetOpt,
    out: Annotated[Path, typer.Option(help="The HTML file to write (opens offline).")],
    at: DateOpt = None,
    tile_url: Annotated[
        str | None, typer.Option(help="A base map tile URL (default GEOGRID_TILE_URL; none: no base map).")
    ] = None,
    tile_crs: Annotated[
        str | None, typer.Option(help="The tiles' CRS, wgs84 or gcj02 (default GEOGRID_TILE_CRS).")
    ] = None,
    norm: NormOpt = None,
    speed: SpeedOpt = None,
    minutes: MinutesOpt = None,
    mask_phones: Annotated[
        bool, typer.Option(help="Mask phones in popups (138****1234); on by default: map files get shared.")
    ] = True,
) -> None:
    """A coverage map as a self-contained HTML file that opens offline."""
    from geogrid.maps import KINDS, build_map

    if kind not in KINDS:  # before the report, which takes a while
        raise typer.BadParameter(f"{kind!r} is not one of {', '.join(KINDS)}", param_hint="KIND")
    settings = _state(ctx).settings
    report = _report(ctx, set_name, at, norm, speed, minutes, mask_phones)
    with err.status(f"Drawing the {kind} map…"):
        html = build_map(
            kind,
            report,
            tile_url=tile_url if tile_url is not None else settings.tile_url,
            tile_crs=tile_crs if tile_crs is not None else settings.tile_crs,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    err.print(
        f"{kind} map of {set_name} on {report.at} written to {out} ({len(html.encode()) / 1e6:.1f} MB)."
    )
