"""The layers beside a set's boundaries: buildings and service sites (points) and roads (lines).

They belong to a boundary set but are not versioned with it: a write replaces one kind's rows for the
set, in one transaction that bumps the set's revision (its ETag) and leaves one audit line (counts, never
contents). Every row is checked before anything is written; an error names the feature (1-based, as the
file counts them) and the field at fault.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import sqlalchemy as sa
from geoalchemy2.shape import from_shape
from sqlalchemy.engine import Engine

from geogrid.db.schema import building, road, site
from geogrid.db.store import Store, write_audit
from geogrid.errors import InvalidCoordinates, InvalidGeometry, InvalidValue, MissingColumn, NotFound
from geogrid.io import echo

LayerKind = Literal["buildings", "sites", "roads"]


@dataclass(frozen=True)
class LayerSpec:
    """What one kind of layer holds: its table, geometry type and columns (required first)."""

    table: sa.Table
    geometry: str  # "Point" | "LineString"
    required: tuple[str, ...]
    optional: tuple[str, ...]
    integers: tuple[str, ...] = ()
    choices: Mapping[str, tuple[str, ...]] | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        """Every attribute column, in the order :meth:`Layers.read` returns them."""
        return tuple(c.name for c in self.table.columns if c.name not in ("set_id", "geom"))


SPECS: dict[str, LayerSpec] = {
    "buildings": LayerSpec(
        building,
        "Point",
        required=("id", "microgrid_code", "households"),
        optional=("name", "population", "floors"),
        integers=("households", "population", "floors"),
    ),
    "sites": LayerSpec(
        site,
        "Point",
        required=("id", "name", "kind"),
        optional=("hours", "unit_code"),
        choices={"kind": ("centre", "station", "other")},
    ),
    "roads": LayerSpec(
        road,
        "LineString",
        required=("id", "kind"),
        optional=("name",),
        choices={"kind": ("arterial", "street", "path")},
    ),
}
INT_MAX = 2**31 - 1


def spec_of(kind: str) -> LayerSpec:
    """The spec of a layer kind, or NotFound naming the kinds there are."""
    if kind not in SPECS:
        raise NotFound(f"no layer kind {echo(kind)!r}: one of {', '.join(SPECS)}", kind=echo(kind))
    return SPECS[kind]


class Layers:
    """Read and replace the buildings, service sites and roads of a boundary set."""

    def __init__(self, engine: Engine, actor: str = "geogrid") -> None:
        self.engine = engine
        self.actor = actor
        self._store = Store(engine, actor)

    def write(
        self,
        set_name: str,
        kind: str,
        frame: gpd.GeoDataFrame,
        *,
        commit: bool = True,
        expect_revision: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, Any]:
        """Replace the set's ``kind`` rows with ``frame`` (checked first); a dry run when not ``commit``.

        Returns counts: ``rows`` (in the frame), ``replaced`` (rows there were), ``committed``. The set must
        exist; ``expect_revision`` refuses the write (VersionConflict) when the set has changed since.
        """
        spec = spec_of(kind)
        rows = prepare(frame, kind)
        with self.engine.begin() as conn:
            set_id, seen = self._store._set_row(conn, set_name, lock=commit)
            table = spec.table
            before = int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(table).where(table.c.set_id == set_id)
                ).scalar_one()
            )
            out = {"set": set_name, "kind": kind, "rows": len(rows), "replaced": before, "committed": False}
            if not commit:
                return out
            self._store._claim(conn, set_id, set_name, seen, expect_revision)
            conn.execute(sa.delete(table).where(table.c.set_id == set_id))
            chunk = 1000
            for start in range(0, len(rows), chunk):
                part = rows[start : start + chunk]
                conn.execute(sa.insert(table), [{**r, "set_id": set_id} for r in part])
                if progress is not None:
                    progress(start + len(part), len(rows))
            write_audit(
                conn,
                self.actor,
                "write_layer",
                {"kind": kind, "rows": len(rows), "replaced": before},
                set_name=set_name,
            )
            out["committed"] = True
        return out

    def read(self, set_name: str, kind: str) -> gpd.GeoDataFrame:
        """The set's ``kind`` layer in WGS-84, ordered by id (as Python orders strings, on either database)."""
        spec = spec_of(kind)
        table = spec.table
        with self.engine.connect() as conn:
            set_id = self._store._set_id(conn, set_name)
            query = sa.select(
                *(table.c[c] for c in spec.columns), sa.func.ST_AsBinary(table.c.geom).label("wkb")
            ).where(table.c.set_id == set_id)
            found = sorted(conn.execute(query).all(), key=lambda r: r[0])
        data = pd.DataFrame([r[:-1] for r in found], columns=list(spec.columns))
        geoms = shapely.from_wkb(np.array([bytes(r[-1]) for r in found], dtype=object)) if found else []
        layer = gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms, crs=4326), crs=4326)
        for column in spec.integers:
            layer[column] = layer[column].astype("Int64")
        return layer

    def counts(self, set_name: str) -> dict[str, int]:
        """How many rows each kind holds for the set."""
        with self.engine.connect() as conn:
            set_id = self._store._set_id(conn, set_name)
            return {
                kind: int(
                    conn.execute(
                        sa.select(sa.func.count()).select_from(s.table).where(s.table.c.set_id == set_id)
                    ).scalar_one()
                )
                for kind, s in SPECS.items()
            }


def prepare(frame: gpd.GeoDataFrame, kind: str) -> list[dict[str, Any]]:
    """Check a layer row by row and return its rows as the table takes them (geometry as EWKB).

    Errors name the feature (1-based) and the field: a missing column, a blank required value, an id
    seen twice, a value outside its choices or not a whole number, a geometry of the wrong type, empty,
    or with coordinates that are not finite WGS-84 longitudes and latitudes.
    """
    spec = spec_of(kind)
    if frame.crs is not None and frame.crs.to_epsg() != 4326:
        frame = frame.to_crs(4326)
    missing = [c for c in spec.required if c not in frame.columns]
    if missing:
        have = ", ".join(str(c) for c in frame.columns if c != frame.geometry.name)
        raise MissingColumn(
            f"the {kind} layer has no {missing[0]!r} column (columns: {echo(have)})", field=missing[0]
        )
    geoms = _geometries(frame.geometry.to_numpy(), spec, kind)
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    records = frame[[c for c in spec.columns if c in frame.columns]].to_dict("records")
    for number, (record, geom) in enumerate(zip(records, geoms, strict=True), start=1):
        row: dict[str, Any] = {}
        for column in spec.columns:
            value = _value(record.get(column), column, spec, kind, number)
            if value is None and column in spec.required:
                raise MissingColumn(f"{kind} feature {number} has no {column}", row=number, field=column)
            row[column] = value
        if row["id"] in seen:
            raise InvalidValue(
                f"{kind} feature {number} repeats the id {echo(row['id'])!r} of feature {seen[row['id']]}",
                row=number,
                field="id",
            )
        seen[row["id"]] = number
        row["geom"] = from_shape(geom, srid=4326, extended=True)
        out.append(row)
    return out


def _geometries(geoms: np.ndarray, spec: LayerSpec, kind: str) -> np.ndarray:
    """Geometries as stored: 2-D, one-part MultiLineStrings unwrapped; refused when wrong or not finite."""
    geoms = shapely.force_2d(np.asarray(geoms, dtype=object))
    for i, geom in enumerate(geoms):
        if geom is not None and geom.geom_type == "MultiLineString" and len(geom.geoms) == 1:
            geoms[i] = geom.geoms[0]
    for i, geom in enumerate(geoms):
        number = i + 1
        if geom is None or geom.is_empty:
            raise InvalidGeometry(f"{kind} feature {number} has no geometry", row=number, field="geometry")
        if geom.geom_type != spec.geometry:
            raise InvalidGeometry(
                f"{kind} feature {number} is a {geom.geom_type}; the {kind} layer needs a {spec.geometry}",
                row=number,
                field="geometry",
            )
        xy = shapely.get_coordinates(geom)
        bad = ~np.isfinite(xy).all(axis=1) | (np.abs(xy[:, 0]) > 180) | (np.abs(xy[:, 1]) > 90)
        if bad.any():
            lon, lat = xy[int(np.flatnonzero(bad)[0])]
            raise InvalidCoordinates(
                f"{kind} feature {number} has a coordinate that is not a WGS-84 longitude, latitude: "
                f"{lon!r}, {lat!r}",
                row=number,
                field="geometry",
            )
    return geoms


def _value(value: Any, column: str, spec: LayerSpec, kind: str, number: int) -> Any:
    """One cell as stored: text stripped (blank is None), whole numbers as int, choices checked."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if column in spec.integers:
        try:
            number_value = float(value)
        except (TypeError, ValueError):
            number_value = math.nan
        if not number_value.is_integer() or not 0 <= number_value <= INT_MAX:
            raise InvalidValue(
                f"{kind} feature {number}: {column} {echo(value)!r} is not a whole number ≥ 0",
                row=number,
                field=column,
            )
        return int(number_value)
    text = f"{value:.0f}" if isinstance(value, float) and value.is_integer() else str(value).strip()
    if not text:
        return None
    length = cast(sa.String, spec.table.c[column].type).length or 0
    if len(text) > length:
        raise InvalidValue(
            f"{kind} feature {number}: {column} is longer than {length} characters", row=number, field=column
        )
    allowed = (spec.choices or {}).get(column)
    if allowed is not None and text not in allowed:
        raise InvalidValue(
            f"{kind} feature {number}: {column} {echo(text)!r} is not one of {', '.join(allowed)}",
            row=number,
            field=column,
        )
    return text
