"""Coverage maps as self-contained HTML: who is responsible, where nobody is, what a site reaches.

Three maps of a :class:`geogrid.coverage.CoverageReport`: *responsibility* (grids by staffing and by
households per worker, with their people), *gaps* (land in no grid, grids without full staff or outside
the household norm, topology problems) and *service* (sites, their walking reach, the buildings outside
every reach). Each is one HTML page that opens from disk with nothing loaded from anywhere
(:mod:`geogrid.maps.page`, the only module importing folium, lazily). No base map unless a tile URL is
given (``GEOGRID_TILE_URL``); with GCJ-02 tiles (``GEOGRID_TILE_CRS=gcj02``, Amap/Tencent style) every
overlay is shifted WGS-84 -> GCJ-02 to line up. The same report gives the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely

from geogrid.crs import GCJ02, WGS84, transform_geometries
from geogrid.errors import NotFound, UnknownCRS
from geogrid.maps.page import DIGITS, LEAFLET, Layer, escape, feature, render, rounded
from geogrid.people import ROLE_LABELS

if TYPE_CHECKING:
    from geogrid.coverage import CoverageReport

__all__ = [
    "DIGITS",
    "GRID_CLASS",
    "KINDS",
    "LEAFLET",
    "build_map",
    "gaps_map",
    "responsibility_map",
    "service_map",
]

KINDS = ("responsibility", "gaps", "service")
TILE_CRSES = (WGS84, GCJ02)
# Every map has one layer with exactly one path per grid, drawn with this class (tests count them).
GRID_CLASS = "geogrid-grid"

# Legend keys -> (label, colour). Staffing colours are decided here, not in coverage.
STAFFING = {
    "staffed": ("Leader and worker(s)", "#1a9641"),
    "no_leader": ("No leader", "#fdae61"),
    "no_worker": ("No worker", "#f46d43"),
    "unstaffed": ("No leader, no worker", "#d7191c"),
}
# Households per worker: (upper bound, label, colour), YlOrRd; a grid with no worker has no load.
LOAD_BANDS = (
    (50.0, "under 50", "#ffffb2"),
    (100.0, "50–100", "#fecc5c"),
    (200.0, "100–200", "#fd8d3c"),
    (400.0, "200–400", "#f03b20"),
    (math.inf, "400 and more", "#bd0026"),
)
NO_WORKER = ("no worker", "#969696")
NORM_COLOURS = {"under": "#2c7bb6", "over": "#7b3294"}
GAP_COLOUR = "#252525"
PROBLEM_COLOURS = ("#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#a65628", "#f781bf", "#999999")
SITES = {  # kind -> (label, colour, radius in pixels)
    "centre": ("Community centre", "#d7191c", 9),
    "station": ("Service station", "#2c7bb6", 6),
    "other": ("Other site", "#636363", 5),
}
REACH_COLOUR = "#74add1"
OUTSIDE_COLOUR = "#000000"
OUTLINE_COLOUR = "#555555"
OUTLINE: dict[str, Any] = {"color": OUTLINE_COLOUR, "weight": 1, "fillOpacity": 0.0}
REACH: dict[str, Any] = {"color": REACH_COLOUR, "weight": 1, "fillColor": REACH_COLOUR, "fillOpacity": 0.25}
_ROLES = {str(role): label for role, label in ROLE_LABELS.items()}

Rows = list[tuple[dict[str, Any], Any]]


def build_map(
    kind: str,
    report: CoverageReport,
    *,
    tile_url: str | None = None,
    tile_crs: str = WGS84,
    attribution: str | None = None,
) -> str:
    """Draw one coverage map of ``report`` as a complete, offline HTML page.

    Parameters
    ----------
    kind : str
        ``"responsibility"``, ``"gaps"`` or ``"service"`` (see the module's summary).
    report : CoverageReport
        What :func:`geogrid.coverage.coverage` returns; people's phones are shown as the report has them
        (masked or not: this module never asks for more).
    tile_url : str, optional
        An XYZ tile template for a base map (``GEOGRID_TILE_URL``); none by default.
    tile_crs : str
        ``"wgs84"`` or ``"gcj02"`` (``GEOGRID_TILE_CRS``): with GCJ-02 every overlay is shifted to GCJ-02.
    attribution : str, optional
        The base map's attribution (HTML); defaults to the tile host's name.

    Returns
    -------
    str
        The page: Leaflet and every style inline; no URL outside the page but ``tile_url``.
    """
    if kind not in _BUILDERS:
        raise NotFound(f"no map kind {kind!r}: the kinds are {', '.join(KINDS)}", kind=kind)
    if tile_crs not in TILE_CRSES:
        raise UnknownCRS(
            f"tile_crs must be one of {', '.join(TILE_CRSES)}, not {tile_crs!r}", tile_crs=tile_crs
        )
    reader = _Reader(shift=tile_crs == GCJ02)
    what, layers = _BUILDERS[kind](report, reader)
    title = " · ".join(
        str(p) for p in (getattr(report, "set_name", None), what, getattr(report, "at", None)) if p
    )
    return render(title, layers, reader.bounds(), tile_url=tile_url, attribution=attribution)


def responsibility_map(report: CoverageReport, **kw: Any) -> str:
    """Grids coloured by staffing (and, as a second layer, by households per worker), with their people."""
    return build_map("responsibility", report, **kw)


def gaps_map(report: CoverageReport, **kw: Any) -> str:
    """Land in no grid, grids without full staff or outside the household norm, topology problems."""
    return build_map("gaps", report, **kw)


def service_map(report: CoverageReport, **kw: Any) -> str:
    """Service sites by kind, their walking reach, and the buildings outside every reach."""
    return build_map("service", report, **kw)


# --- the three maps -----------------------------------------------------------------------------------


def _responsibility(report: Any, rows: _Reader) -> tuple[str, list[Layer]]:
    low, high = _norm(report)
    staffing, load = [], []
    for row, geom in rows(report.grids):
        key, code, tip = _staffing(row), row.get("code"), _tip(row)
        staffing.append(
            feature(geom, _fill(STAFFING[key][1]), _grid_popup(row, low, high), tip, key, code=code)
        )
        band, colour = _band(row)
        popup = _lines(
            _head(row),
            f"Households: {_int(row.get('households'))}",
            f"Workers: {_int(row.get('workers'))}",
            f"Households per worker: {_per(row.get('households_per_worker'))}",
        )
        load.append(feature(geom, _fill(colour), popup, tip, band, code=code))
    bands = {label: (label, colour) for _, label, colour in LOAD_BANDS} | {NO_WORKER[0]: NO_WORKER}
    return "Responsibility", [
        Layer("Grids by staffing", GRID_CLASS, staffing, dict(STAFFING)),
        Layer("Grids by households per worker", "geogrid-load", load, bands, show=False),
    ]


def _gaps(report: Any, rows: _Reader) -> tuple[str, list[Layer]]:
    low, high = _norm(report)
    grids, short, norm = [], [], []
    for row, geom in rows(report.grids):
        key, code, tip, popup = _staffing(row), row.get("code"), _tip(row), _grid_popup(row, low, high)
        grids.append(feature(geom, OUTLINE, popup, tip, "grid", code=code))
        if key != "staffed":
            short.append(feature(geom, _fill(STAFFING[key][1]), popup, tip, key, code=code))
        if row.get("norm") in NORM_COLOURS:
            norm.append(feature(geom, _fill(NORM_COLOURS[row["norm"]]), popup, tip, row["norm"], code=code))
    gaps = [
        feature(
            geom,
            _fill(GAP_COLOUR, 0.7),
            _lines("<b>Land in no grid</b>", _area(row)),
            "Land in no grid",
            "gap",
        )
        for row, geom in rows(getattr(report, "gaps", None))
    ]
    problem_rows = rows(getattr(report, "problems", None))
    kinds = sorted({str(row.get("kind") or "problem") for row, _ in problem_rows})
    colours = {k: PROBLEM_COLOURS[i % len(PROBLEM_COLOURS)] for i, k in enumerate(kinds)}
    problems = []
    for row, geom in problem_rows:
        kind, codes = str(row.get("kind") or "problem"), _seq(row.get("codes"))
        popup = _lines(
            f"<b>{escape(kind)}</b>",
            escape(row.get("detail") or ""),
            f"Units: {escape(', '.join(map(str, codes)))}" if codes else "",
            _area(row),
        )
        problems.append(feature(geom, {**_fill(colours[kind]), "weight": 3}, popup, kind, kind))
    norm_labels = {
        "under": (f"under {low:g} households", NORM_COLOURS["under"]),
        "over": (f"over {high:g} households", NORM_COLOURS["over"]),
    }
    return "Gaps", [
        Layer("Grids", GRID_CLASS, grids, {"grid": ("grid", OUTLINE_COLOUR)}, outline=True),
        Layer("Land in no grid", "geogrid-gap", gaps, {"gap": ("land in no grid", GAP_COLOUR)}),
        Layer("Grids outside the household norm", "geogrid-norm", norm, norm_labels),
        Layer(
            "Grids without full staff",
            "geogrid-short",
            short,
            {k: STAFFING[k] for k in STAFFING if k != "staffed"},
        ),
        Layer("Topology problems", "geogrid-problem", problems, {k: (k, c) for k, c in colours.items()}),
    ]


def _service(report: Any, rows: _Reader) -> tuple[str, list[Layer]]:
    grids = []
    for row, geom in rows(report.grids):
        popup = _lines(
            _head(row),
            f"Households: {_int(row.get('households'))}",
            f"Households outside reach: {_int(row.get('households_outside_reach'))}",
        )
        grids.append(feature(geom, OUTLINE, popup, _tip(row), "grid", code=row.get("code")))
    site_rows = rows(getattr(report, "sites", None))
    names = {str(row.get("id")): _text(row.get("name")) for row, _ in site_rows}
    sites = []
    for row, geom in site_rows:
        kind = str(row.get("kind") or "other")
        kind = kind if kind in SITES else "other"
        label, colour, radius = SITES[kind]
        style = {
            "color": "#fff",
            "weight": 2,
            "fill": True,
            "fillColor": colour,
            "fillOpacity": 1,
            "radius": radius,
        }
        popup = _lines(
            f"<b>{escape(_text(row.get('name')) or row.get('id'))}</b>",
            escape(label),
            f"Hours: {escape(row.get('hours') or '-')}",
        )
        sites.append(feature(geom, style, popup, _text(row.get("name")), kind))
    reach = getattr(report, "reach", None)
    areas = []
    for row, geom in rows(getattr(reach, "areas", None)):
        site = str(row.get("id", row.get("site_id", "")))
        popup = _lines("<b>Walking reach</b>", f"Site: {escape(row.get('name') or names.get(site) or site)}")
        areas.append(feature(geom, REACH, popup, "", "reach"))
    outside = []
    for row, geom in rows(getattr(report, "outside", None)):
        style = {"stroke": False, "fill": True, "fillColor": OUTSIDE_COLOUR, "fillOpacity": 0.8, "radius": 3}
        households = int(_number(row.get("households")) or 0)
        popup = _lines(
            f"<b>{escape(row.get('id'))}</b>",
            f"Micro-grid: {escape(row.get('microgrid_code') or '-')}",
            f"Households: {households:,}",
        )
        outside.append(feature(geom, style, popup, "", "outside", households=households))
    minutes, method = getattr(report, "minutes", None), str(getattr(reach, "method", "") or "")
    how = ", ".join(p for p in (f"{minutes:g} min" if minutes else "", method.replace("_", " ")) if p)
    total = sum(f["properties"]["households"] for f in outside)
    return "Service reach", [
        Layer("Grids", GRID_CLASS, grids, {"grid": ("grid", OUTLINE_COLOUR)}, outline=True),
        Layer(
            "Walking reach",
            "geogrid-reach",
            areas,
            {"reach": ("area reached", REACH_COLOUR)},
            note=f"({how})",
        ),
        Layer(
            "Buildings outside every reach",
            "geogrid-outside",
            outside,
            {"outside": ("building", OUTSIDE_COLOUR)},
            points=True,
            note=f"({total:,} households)",
        ),
        Layer(
            "Service sites", "geogrid-site", sites, {k: (v[0], v[1]) for k, v in SITES.items()}, points=True
        ),
    ]


_BUILDERS: dict[str, Callable[[Any, _Reader], tuple[str, list[Layer]]]] = {
    "responsibility": _responsibility,
    "gaps": _gaps,
    "service": _service,
}


# --- rows and popups ------------------------------------------------------------------------------------


class _Reader:
    """Reads frames as drawn: rows with geometry in WGS-84 or GCJ-02, rounded; and the extent of all read."""

    def __init__(self, shift: bool) -> None:
        self.shift = shift
        self.boxes: list[Any] = []

    def __call__(self, frame: Any) -> Rows:
        """The frame's rows (attributes) with their geometry; rows without one are not drawn."""
        if frame is None or len(frame) == 0:
            return []
        if frame.crs is not None and not frame.crs.equals("EPSG:4326"):
            frame = frame.to_crs(4326)
        geoms = np.asarray(frame.geometry.to_numpy(), dtype=object)
        geoms = rounded(transform_geometries(geoms, WGS84, GCJ02) if self.shift else geoms)
        records = frame.drop(columns=frame.geometry.name).to_dict("records")
        out = [(r, g) for r, g in zip(records, geoms, strict=True) if g is not None and not g.is_empty]
        if out:
            self.boxes.append(shapely.total_bounds(np.asarray([g for _, g in out], dtype=object)))
        return out

    def bounds(self) -> list[list[float]] | None:
        """[[south, west], [north, east]] of everything read, or None when nothing was."""
        if not self.boxes:
            return None
        boxes = np.asarray(self.boxes)
        west, south = boxes[:, :2].min(axis=0)
        east, north = boxes[:, 2:].max(axis=0)
        return [[float(south), float(west)], [float(north), float(east)]]


def _fill(colour: str, opacity: float = 0.6) -> dict[str, Any]:
    return {"color": "#333333", "weight": 1, "fillColor": colour, "fillOpacity": opacity}


def _staffing(row: dict[str, Any]) -> str:
    key = str(row.get("staffing") or "unstaffed")
    return key if key in STAFFING else "unstaffed"


def _band(row: dict[str, Any]) -> tuple[str, str]:
    """A grid's households-per-worker band: (label, colour); the label is the legend key."""
    per = _number(row.get("households_per_worker"))
    if per is None or not _number(row.get("workers")):
        return NO_WORKER
    return next((label, colour) for bound, label, colour in LOAD_BANDS if per < bound)


def _grid_popup(row: dict[str, Any], low: float, high: float) -> str:
    """Code, name, staffing, households and norm, leaders, workers, load, reach and the 1+X contacts."""
    names = _people(row.get("worker_names"))
    return _lines(
        _head(row),
        f"Staffing: <b>{escape(STAFFING[_staffing(row)][0])}</b>",
        f"Households: {_int(row.get('households'))} · norm {escape(row.get('norm') or '-')} ({low:g}–{high:g})",
        f"Leader: {_leaders(row) or 'none'}",
        f"Workers: {_int(row.get('workers'))}" + (f" ({names})" if names else ""),
        f"Households per worker: {_per(row.get('households_per_worker'))}",
        f"Households outside reach: {_int(row.get('households_outside_reach'))}",
        _contacts(row.get("contacts")),
    )


def _contacts(contacts: Any) -> str:
    """The 1+X contacts as a small table: name (phone as given), role, buildings, their households."""
    rows = []
    for contact in _seq(contacts):
        c = contact if isinstance(contact, dict) else {"name": contact}
        role, buildings = str(c.get("role") or ""), c.get("buildings")
        count = str(len(_seq(buildings))) if _listlike(buildings) else _int(buildings)
        rows.append(
            f"<tr><td>{_person(c)}</td><td>{escape(_ROLES.get(role, role))}</td><td>{count}</td>"
            f"<td>{_int(c.get('households'))}</td></tr>"
        )
    head = "<tr><th>1+X</th><th>role</th><th>buildings</th><th>households</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>" if rows else ""


def _leaders(row: dict[str, Any]) -> str:
    """The leaders' names, each with its phone from ``leader_phones`` (as the report has it) when given."""
    phones = _seq(row.get("leader_phones"))
    names = _seq(row.get("leaders")) if _listlike(row.get("leaders")) else [row.get("leaders")]
    people = [
        n if isinstance(n, dict) else {"name": n, "phone": phones[i] if i < len(phones) else None}
        for i, n in enumerate(names)
        if n is not None and not (isinstance(n, float) and math.isnan(n))
    ]
    return ", ".join(_person(p) for p in people)


def _people(value: Any) -> str:
    """Names (with phones, masked or not, when the report carries them), comma-separated and escaped."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    items = _seq(value) if _listlike(value) else [value]
    return ", ".join(_person(p if isinstance(p, dict) else {"name": p}) for p in items)


def _person(p: dict[str, Any]) -> str:
    phone = p.get("phone")
    return escape(p.get("name") or "") + (f" {escape(phone)}" if phone else "")


def _head(row: dict[str, Any]) -> str:
    return f"<b>{escape(row.get('code') or '')}</b> {escape(row.get('name') or '')}"


def _tip(row: dict[str, Any]) -> str:
    """Code and name as plain text: :func:`geogrid.maps.page.feature` escapes every tooltip."""
    return f"{row.get('code') or ''} {row.get('name') or ''}".strip()


def _text(value: Any) -> str:
    """A name as text: empty for None or a missing value (NaN) in a frame."""
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _lines(*parts: str) -> str:
    return "<br>".join(p for p in parts if p)


def _area(row: dict[str, Any]) -> str:
    area = _number(row.get("area_m2"))
    return f"Area: {area:,.0f} m²" if area is not None else ""


def _norm(report: Any) -> tuple[float, float]:
    norm = getattr(report, "norm", None) or (300, 500)
    return float(norm[0]), float(norm[1])


def _listlike(value: Any) -> bool:
    return isinstance(value, list | tuple | np.ndarray)


def _seq(value: Any) -> list[Any]:
    return list(value) if _listlike(value) else []


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _int(value: Any) -> str:
    number = _number(value)
    return "-" if number is None else f"{number:,.0f}"


def _per(value: Any) -> str:
    number = _number(value)
    return "-" if number is None else f"{number:,.1f}"
