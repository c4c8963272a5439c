"""Which level is this unit, who is its parent, what is its code?

Codes follow the Beijing DB11 unit-grid scheme: a 6-digit county administrative code, then 3 digits for
the street (township), 3 for the community and 3 for the grid (15 digits in all), plus a 3-digit
micro-grid suffix (18). A unit's parent is derived from its code, and :func:`check_parents` checks it
against the geometry rather than trusting it.

>>> parent_code("150622001002003004")
'150622001002003'
>>> level_of("150622001002").name
'community'
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from geogrid import deadline
from geogrid.crs import local_metric_crs
from geogrid.errors import InvalidCode, InvalidGeometry, NotFound, TooManyVertices
from geogrid.io import as_multipolygons, echo


class Level(enum.IntEnum):
    """Levels of the grid hierarchy, outermost first; the value is the length of their codes."""

    county = 6
    street = 9
    community = 12
    grid = 15
    microgrid = 18

    @property
    def parent(self) -> Level | None:
        """The level above, or None for the county."""
        order = list(Level)
        i = order.index(self)
        return order[i - 1] if i else None

    @property
    def child(self) -> Level | None:
        """The level below, or None for the micro-grid."""
        order = list(Level)
        i = order.index(self)
        return order[i + 1] if i + 1 < len(order) else None

    @property
    def label(self) -> str:
        """The Chinese name of the level."""
        return {6: "县/旗/区", 9: "街道/乡镇", 12: "社区", 15: "网格", 18: "微网格"}[self.value]


LEVEL_ALIASES = {
    "county": Level.county,
    "district": Level.county,
    "banner": Level.county,
    "street": Level.street,
    "township": Level.street,
    "town": Level.street,
    "community": Level.community,
    "village": Level.community,
    "grid": Level.grid,
    "basic-grid": Level.grid,
    "microgrid": Level.microgrid,
    "micro-grid": Level.microgrid,
    "micro_grid": Level.microgrid,
}


def parse_level(value: str | int | Level) -> Level:
    """Return the Level named by ``value`` (``street``, ``micro-grid``, 15 ...)."""
    if isinstance(value, Level):
        return value
    if isinstance(value, int) or str(value).isdigit():
        try:
            return Level(int(value))
        except ValueError:
            pass
    key = str(value).strip().lower()
    if key in LEVEL_ALIASES:
        return LEVEL_ALIASES[key]
    names = ", ".join(level.name for level in Level)
    raise InvalidCode(f"unknown level {echo(value)!r}; use one of {names}", field="level")


def level_of(code: str) -> Level:
    """Return the level a code belongs to, by its length; raise InvalidCode if it fits none."""
    if not code.isdigit():
        raise InvalidCode(f"code {echo(code)!r} must be digits only", code=echo(code))
    try:
        return Level(len(code))
    except ValueError:
        raise InvalidCode(
            f"code {echo(code)!r} has {len(code)} digits; codes have 6 (county), 9 (street), 12 (community), "
            "15 (grid) or 18 (micro-grid)",
            code=echo(code),
        ) from None


def parent_code(code: str) -> str | None:
    """Return the code of the unit's parent, derived from its own code (None for a county)."""
    parent = level_of(code).parent
    return code[: parent.value] if parent else None


def validate_codes(codes: list[str], level: Level) -> None:
    """Raise InvalidCode naming the first row whose code is not a well-formed code of ``level``."""
    for row, code in enumerate(codes, start=1):
        if not code.isdigit() or len(code) != level.value:
            raise InvalidCode(
                f"row {row}: code {echo(code)!r} is not a {level.name} code ({level.value} digits)",
                row=row,
                code=echo(code),
                field="code",
            )
        if level.value > 6 and code[level.value - 3 :] == "000":
            raise InvalidCode(
                f"row {row}: code {echo(code)!r} ends in 000, which no unit may use",
                row=row,
                code=echo(code),
                field="code",
            )
    seen: dict[str, int] = {}
    for row, code in enumerate(codes, start=1):
        if code in seen:
            raise InvalidCode(
                f"row {row}: code {echo(code)!r} repeats row {seen[code]}",
                row=row,
                code=echo(code),
                field="code",
            )
        seen[code] = row


@dataclass(frozen=True)
class ParentViolation:
    """A unit that does not lie in the parent its code names (or whose parent is missing)."""

    code: str
    parent_code: str
    reason: str
    outside_m2: float

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"


def check_parents(
    children: gpd.GeoDataFrame,
    parents: gpd.GeoDataFrame,
    *,
    tolerance_m2: float = 1.0,
    parent_level: Level | None = None,
) -> list[ParentViolation]:
    """Check that each child lies in the parent its code names, by geometry.

    A child may stick out of its parent by at most ``tolerance_m2`` square metres (digitising noise).
    Children whose parent code is absent from ``parents`` are reported too. ``parent_level`` checks
    against an ancestor further up (its code is the matching prefix) instead of the direct parent.
    Children their (prepared) parent covers are passed at once; only the others are projected and cut,
    so the cost follows the units that stick out, not the size of the layer.
    """
    if children.empty:
        return []
    by_code = dict(zip(parents["code"], parents.geometry, strict=True))
    child_geoms = children.geometry.to_numpy()
    if parent_level is None:
        parent_codes = [parent_code(str(c)) or "" for c in children["code"]]
    else:
        parent_codes = [str(c)[: parent_level.value] for c in children["code"]]
    parent_geoms = np.array([by_code.get(p) for p in parent_codes], dtype=object)
    have = ~shapely.is_missing(parent_geoms)
    out: list[ParentViolation] = []
    outside = np.zeros(len(children))
    # Covered in WGS-84 (where units and parents were drawn, sharing vertices exactly): inside, no cost.
    shapely.prepare(parent_geoms[have])
    loose = have.copy()
    loose[have] = ~shapely.covers(parent_geoms[have], child_geoms[have])
    deadline.check()  # before the costly part, in a request whose client was told it timed out
    if loose.any():
        x0, y0, x1, y1 = shapely.total_bounds(child_geoms[loose])
        metric = local_metric_crs((x0 + x1) / 2, (y0 + y1) / 2)
        child_m = gpd.GeoSeries(child_geoms[loose], crs=4326).to_crs(metric).to_numpy()
        parent_m = gpd.GeoSeries(parent_geoms[loose], crs=4326).to_crs(metric).to_numpy()
        outside[loose] = shapely.area(shapely.difference(child_m, parent_m))
    for i, code in enumerate(children["code"]):
        pc = parent_codes[i]
        if not have[i]:
            out.append(ParentViolation(str(code), pc, f"parent {pc} does not exist", float("nan")))
        elif outside[i] > tolerance_m2:
            out.append(
                ParentViolation(
                    str(code), pc, f"{outside[i]:.1f} m² lies outside its parent {pc}", float(outside[i])
                )
            )
    return out


UNIT_COLUMNS = ("code", "name", "level", "parent_code", "households", "population")
MAX_NAME_CHARS = 200  # the unit table's name column
MAX_COUNT = 2**31 - 1  # households and population are INTEGER columns (PostgreSQL: 32 bits)
MAX_VERTICES = 100_000  # per unit; SpatiaLite's EWKT parser gives up (a NULL geometry) near 400,000


def prepare_units(
    frame: gpd.GeoDataFrame, level: str | Level, *, max_vertices: int = MAX_VERTICES
) -> gpd.GeoDataFrame:
    """Type and check a boundary layer as units of ``level``: the frame every store write takes.

    Returns columns ``code, name, level, parent_code, households, population, attributes, geometry``;
    ``parent_code`` is derived from the code, and a ``parent_code`` column in the file must agree with
    it. ``level`` is the one given: a file's own ``level`` column (Amap's 区县) is data, kept in
    ``attributes`` unless it merely names ``level``. Every other column goes into ``attributes`` (a dict
    per row). A unit of more than ``max_vertices`` vertices is refused (TooManyVertices) before any other
    work. ``households``, ``population`` and ``parent_code`` are matched whatever their case
    (``HOUSEHOLDS`` from ArcGIS). An ``attributes`` column of dicts (a frame from
    :meth:`geogrid.db.Store.units`) gives each unit those attributes, beside its other columns. Errors
    name the row.
    """
    level = parse_level(level)
    frame = _canonical_columns(frame)
    codes = [str(c) for c in frame["code"]]
    vertices = shapely.get_num_coordinates(frame.geometry.to_numpy())
    if len(vertices) and int(vertices.max()) > max_vertices:
        row = int(np.argmax(vertices)) + 1
        raise TooManyVertices(
            f"row {row}: unit {echo(codes[row - 1])} has {int(vertices[row - 1]):,} vertices; at most "
            f"{max_vertices:,} are allowed per unit (simplify it, e.g. in QGIS, or split it)",
            row=row,
            code=echo(codes[row - 1]),
            field="geometry",
            vertices=int(vertices[row - 1]),
            limit=max_vertices,
        )
    validate_codes(codes, level)
    names = frame["name"] if "name" in frame.columns else [None] * len(frame)
    for row, name in enumerate(names, start=1):
        if name is None or (isinstance(name, float) and np.isnan(name)) or not str(name).strip():
            raise InvalidCode(
                f"row {row}: unit {codes[row - 1]} has no name", row=row, field="name", code=codes[row - 1]
            )
        text = str(name).strip()
        # What the database cannot keep is refused in the dry run too (PostgreSQL: no NUL, 200 characters).
        if "\x00" in text or len(text) > MAX_NAME_CHARS:
            what = (
                "a NUL character"
                if "\x00" in text
                else f"{len(text):,} characters (at most {MAX_NAME_CHARS})"
            )
            raise InvalidCode(
                f"row {row}: the name of unit {codes[row - 1]} has {what}: {echo(repr(text))}",
                row=row,
                field="name",
                code=codes[row - 1],
            )
    parents = [parent_code(c) for c in codes]
    if "parent_code" in frame.columns:
        for row, (given, derived) in enumerate(zip(frame["parent_code"], parents, strict=True), start=1):
            if given is not None and str(given).strip() not in ("", "None", "nan") and str(given) != derived:
                raise InvalidCode(
                    f"row {row}: parent_code {echo(given)!r} contradicts the code, whose parent is {derived}",
                    row=row,
                    field="parent_code",
                    code=codes[row - 1],
                )
    geoms = as_multipolygons(frame.geometry.to_numpy())
    wrong = shapely.get_type_id(geoms) != 6
    if wrong.any():
        row = int(np.flatnonzero(wrong)[0]) + 1
        kind = "no geometry" if geoms[row - 1] is None else f"a {geoms[row - 1].geom_type}"
        raise InvalidGeometry(
            f"row {row}: unit {codes[row - 1]} has {kind}; units are polygons",
            row=row,
            code=codes[row - 1],
            field="geometry",
        )
    _check_rings(geoms, codes)
    counts = {field: _counts(frame, field, codes) for field in ("households", "population")}
    extra = [c for c in frame.columns if c not in (*UNIT_COLUMNS, "attributes", frame.geometry.name)]
    if "level" in frame.columns and not _names_level(frame["level"], level):
        extra.append("level")
    records = frame[extra].to_dict("records") if extra else [{} for _ in codes]
    if "attributes" in frame.columns:  # a frame from Store.units: its attributes are the unit's, not one
        records = [
            {**(a if isinstance(a, dict) else {} if _blank(a) else {"attributes": a}), **r}
            for a, r in zip(frame["attributes"], records, strict=True)
        ]
    return gpd.GeoDataFrame(
        {
            "code": codes,
            "name": [str(n).strip() for n in names],
            "level": level.name,
            "parent_code": parents,
            "households": counts["households"],
            "population": counts["population"],
            "attributes": [_json_safe(r) for r in records],
        },
        geometry=geoms,
        crs=4326,
    )


CANONICAL_COLUMNS = ("households", "population", "parent_code")  # matched whatever their case


def _canonical_columns(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """A file's ``HOUSEHOLDS`` or ``Population`` (ArcGIS writes upper case) is the unit field it names.

    As with ``code`` and ``name``, case does not matter; a column spelt exactly wins over the others,
    which stay attributes. :func:`geogrid.changes.carry_over` reads a file's columns the same way.
    """
    renames: dict[Any, str] = {}
    for column in frame.columns:
        key = str(column).lower()
        if key in CANONICAL_COLUMNS and key not in frame.columns and key not in renames.values():
            renames[column] = key
    return frame.rename(columns=renames) if renames else frame


def _check_rings(geoms: np.ndarray, codes: list[str]) -> None:
    """Refuse what no database stores: a unit with no area, a ring of fewer than four positions, or a
    coordinate that is not a finite longitude/latitude (SpatiaLite would write a NULL geometry)."""
    parts, owner = shapely.get_parts(geoms, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    short = shapely.get_num_coordinates(rings) < 4
    xy, point_ring = shapely.get_coordinates(rings, return_index=True)
    bad = ~(np.isfinite(xy).all(axis=1) & (np.abs(xy[:, 0]) <= 180) & (np.abs(xy[:, 1]) <= 90))
    faults = [
        (int(owner[ring_part[i]]), "a ring of fewer than four positions") for i in np.flatnonzero(short)[:1]
    ]
    faults += [
        (
            int(owner[ring_part[point_ring[i]]]),
            f"a coordinate that is no longitude/latitude: {xy[i].tolist()}",
        )
        for i in np.flatnonzero(bad)[:1]
    ]
    empty = np.flatnonzero(shapely.is_empty(geoms))
    faults += [(int(i), "an empty geometry") for i in empty[:1]]
    if faults:
        i, what = min(faults)
        raise InvalidGeometry(
            f"row {i + 1}: unit {codes[i]} has {what}", row=i + 1, code=codes[i], field="geometry"
        )


def _blank(value: Any) -> bool:
    """True for a missing cell: None, NaN, or text that is only spaces."""
    return value is None or (isinstance(value, float) and np.isnan(value)) or not str(value).strip()


def _names_level(values: Any, level: Level) -> bool:
    """True when every value of a file's ``level`` column is blank or names ``level`` (a GeoGrid export)."""
    for value in values:
        if value is None or (isinstance(value, float) and np.isnan(value)) or not str(value).strip():
            continue
        try:
            if parse_level(str(value)) != level:
                return False
        except InvalidCode:
            return False
    return True


def _counts(frame: gpd.GeoDataFrame, field: str, codes: list[str]) -> list[int | None]:
    if field not in frame.columns:
        return [None] * len(frame)
    out: list[int | None] = []
    for row, value in enumerate(frame[field], start=1):
        if value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == "":
            out.append(None)
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if not np.isfinite(number) or number < 0 or number != int(number) or number > MAX_COUNT:
            raise InvalidCode(
                f"row {row}: {field} must be a whole number from 0 to {MAX_COUNT:,}, not {echo(repr(value))}",
                row=row,
                field=field,
                code=codes[row - 1],
            )
        out.append(int(number))
    return out


def _json_safe(record: dict) -> dict:
    out = {}
    for key, value in record.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not np.isfinite(value):
            value = None
        elif hasattr(value, "isoformat"):
            value = value.isoformat()
        elif value is not None and not isinstance(value, (str, int, float, bool)):
            value = str(value)
        out[str(key)] = value
    return out


@dataclass(frozen=True)
class ParentCorrection:
    """A unit whose code names one parent while its geometry lies in another (or in none)."""

    code: str
    level: str
    code_says: str
    geometry_says: str | None
    outside_m2: float


def split_levels(
    frame: gpd.GeoDataFrame, level: str | Level | None
) -> list[tuple[Level | None, gpd.GeoDataFrame]]:
    """The frame's levels, outermost first, ending with the one to index."""
    if "level" not in frame.columns:
        return [(None, frame)]
    present = sorted({parse_level(v) for v in frame["level"].dropna().unique()})
    target = parse_level(level) if level is not None else present[-1]
    if target not in present:
        raise NotFound(f"no units of level {target.name} to index", level=target.name)
    layers = [(lvl, frame[frame["level"] == lvl.name]) for lvl in present if lvl < target]
    return [*layers, (target, frame[frame["level"] == target.name])]


def link_ancestors(
    layers: list[tuple[Level | None, gpd.GeoDataFrame]], code: str, name: str | None, tolerance_m2: float
) -> tuple[dict[str, tuple[dict[str, str], dict[str, str]]], list[ParentCorrection]]:
    """For each ancestor level: leaf code -> ancestor code and leaf code -> ancestor name, by geometry."""
    leaf_level, leaf = layers[-1]
    if leaf_level is None or len(layers) == 1:
        return {}, []
    corrections: list[ParentCorrection] = []
    # Walk up from the indexed level: each level's units are linked to the next level present above.
    child_level, children = leaf_level, leaf
    chain: dict[str, str] = {}  # unit code -> its parent's code (corrected), across all levels
    for parent_level, parents in reversed(layers[:-1]):
        assert parent_level is not None
        codes = children[code].astype(str).to_numpy()
        linked = {c: c[: parent_level.value] for c in codes}
        check = gpd.GeoDataFrame({"code": codes}, geometry=children.geometry.to_numpy(), crs=4326)
        parent_frame = gpd.GeoDataFrame(
            {"code": parents[code].astype(str).to_numpy()}, geometry=parents.geometry.to_numpy(), crs=4326
        )
        violations = check_parents(check, parent_frame, tolerance_m2=tolerance_m2, parent_level=parent_level)
        if violations:
            tree = shapely.STRtree(parent_frame.geometry.to_numpy())
            by_code = dict(zip(codes, children.geometry.to_numpy(), strict=True))
            for v in violations:
                geom = by_code[v.code]
                hits = tree.query(geom, predicate="intersects")
                areas = shapely.area(shapely.intersection(parent_frame.geometry.to_numpy()[hits], geom))
                best = str(parent_frame["code"].iloc[hits[int(np.argmax(areas))]]) if len(hits) else None
                linked[v.code] = best or ""
                corrections.append(
                    ParentCorrection(v.code, child_level.name, v.parent_code, best, v.outside_m2)
                )
        chain.update(linked)
        child_level, children = parent_level, parents
    names: dict[str, str] = {}
    for _, frame in layers[:-1]:
        values = frame[name].astype(str) if name and name in frame.columns else frame[code].astype(str)
        names.update(zip(frame[code].astype(str), values, strict=True))
    leaf_codes = leaf[code].astype(str).to_numpy()
    result: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
    current = {c: c for c in leaf_codes}
    for lvl, _ in reversed(layers[:-1]):
        assert lvl is not None
        current = {c: chain.get(p, "") if p else "" for c, p in current.items()}
        result[lvl.name] = (dict(current), {c: names.get(p, "") for c, p in current.items()})
    return result, corrections
