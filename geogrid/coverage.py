"""Where is nobody: land in no grid, grids without people, the load on each worker, households out of reach.

The coverage report of a boundary set on a date, computed from plain frames (units by level, the posts, the
buildings, sites and roads), so that the database, the CLI, the API and the maps share one answer.

Definitions
-----------
- A grid's **leaders** and **workers** are the distinct people holding a leader or worker post in force on
  the date for the grid itself *or one of its micro-grids*. ``staffing`` is ``staffed`` (both),
  ``no_leader`` (workers only), ``no_worker`` (a leader only) or ``unstaffed`` (neither).
- A grid's **households** are the unit's own figure; a grid without one counts its buildings' households.
  ``norm`` is ``under`` below the low end, ``over`` above the high end, ``within`` otherwise (bounds count
  as within). ``households_per_worker`` is households / workers (NaN in the frame, null in JSON and the
  GeoPackage, without a worker).
- A **worker's load** (``households`` in :attr:`CoverageReport.workers`) is the sum, over the grids the
  person works in, of the grid's households divided evenly among the grid's workers (a grid of 400
  households and 4 workers gives each 100); ``households_per_grid`` holds those shares by grid code. The
  households of the buildings the person answers for by name ("1+X") are apart, as ``households_1x``.
- **Households outside reach** are the households of the buildings outside every site's reach
  (:func:`geogrid.reach.reach`), counted per grid through the building's micro-grid (or, when that is not a
  unit of the set, the grid the building lies in).
- **Gaps** are land of the county (or, without one, the streets or communities) covered by no grid, from
  :func:`geogrid.topology.check`; slivers thinner than its tolerance are listed as ``sliver`` gaps.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geogrid.crs import local_metric_crs
from geogrid.errors import InvalidParameter
from geogrid.people import Role, in_force
from geogrid.reach import Reach, reach
from geogrid.topology import INFO_KINDS, check

DEFAULT_NORM = (300, 500)  # households per grid: the common provincial norm
SPREAD_GRIDS = 4  # a worker in this many grids or more is spread thin
TOP = 10  # how many grids a summary's top lists name
STAFFING = ("staffed", "no_leader", "no_worker", "unstaffed")
# fmt: off
GRID_COLUMNS = [
    "code", "name", "parent_code", "households", "leaders", "leader_phones", "workers", "worker_names",
    "contacts", "staffing", "norm", "households_per_worker", "buildings_outside_reach",
    "households_outside_reach", "geometry",
]
WORKER_COLUMNS = [
    "person_id", "name", "phone", "kind", "grids", "grid_codes", "households", "households_per_grid",
    "buildings_1x", "households_1x",
]
# fmt: on
PROBLEM_COLUMNS = ["kind", "codes", "area_m2", "detail"]  # and geometry: as geogrid.topology reports them
Mask = Callable[[str], str | None]


def parse_norm(value: str | tuple[int, int] | list[int] | None) -> tuple[int, int]:
    """A household norm from ``"300-500"`` or ``(300, 500)`` (None: the default), checked.

    >>> parse_norm("300-500")
    (300, 500)
    """
    if value is None:
        return DEFAULT_NORM
    try:
        low, high = (
            (int(v) for v in value.split("-")) if isinstance(value, str) else (int(value[0]), int(value[1]))
        )
    except (ValueError, TypeError, IndexError):
        raise InvalidParameter(
            f"norm must be LOW-HIGH households, e.g. 300-500, not {value!r}", parameter="norm"
        ) from None
    if not 0 <= low <= high:
        raise InvalidParameter(f"norm {low}-{high}: need 0 <= low <= high", parameter="norm")
    return low, high


@dataclass
class CoverageReport:
    """Who is responsible where, and where nobody is: per grid, community and worker, with the layers."""

    set_name: str
    at: dt.date
    norm: tuple[int, int]
    minutes: float
    speed_kmh: float
    grids: gpd.GeoDataFrame
    communities: gpd.GeoDataFrame
    workers: pd.DataFrame
    gaps: gpd.GeoDataFrame
    problems: gpd.GeoDataFrame
    sites: gpd.GeoDataFrame
    outside: gpd.GeoDataFrame
    reach: Reach

    def codes(self, column: str, value: str) -> list[str]:
        """The codes of the grids whose ``column`` is ``value`` (e.g. ``codes("staffing", "no_leader")``)."""
        return sorted(self.grids.loc[self.grids[column] == value, "code"])

    def summary(self) -> dict[str, Any]:
        """The report's figures as a JSON-able dict (counts, the codes behind them, load and reach)."""
        g, w = self.grids, self.workers
        loads = [float(v) for v in w["households"]] if len(w) else []
        busiest = w.sort_values(["grids", "person_id"], ascending=[False, True]).head(1)
        spread = w[w["grids"] >= SPREAD_GRIDS].sort_values(["grids", "person_id"], ascending=[False, True])
        outside = g[g["households_outside_reach"] > 0].sort_values(
            ["households_outside_reach", "code"], ascending=[False, True]
        )
        silent = self.communities.loc[self.communities["no_secretary"].astype(bool)]
        faults = self.problems[~self.problems["kind"].isin(INFO_KINDS)]
        return {
            "set": self.set_name,
            "at": self.at.isoformat(),
            "grids": len(g),
            "households": int(g["households"].sum()),
            "staffing": {s: _listed(self.codes("staffing", s)) for s in STAFFING},
            "communities": len(self.communities),
            "no_secretary": _listed(sorted(silent["code"])),
            "norm": {
                "low": self.norm[0],
                "high": self.norm[1],
                "under": _listed(self.codes("norm", "under")),
                "over": _listed(self.codes("norm", "over")),
            },
            "workers": {
                "count": len(w),
                "households_per_worker": {
                    "mean": round(statistics.fmean(loads), 2) if loads else None,
                    "median": round(statistics.median(loads), 2) if loads else None,
                    "max": round(max(loads), 2) if loads else None,
                },
                "max_grids": (
                    {k: _plain(v) for k, v in busiest[["person_id", "name", "grids"]].iloc[0].items()}
                    if len(busiest)
                    else None
                ),
                "spread": [
                    {
                        "person_id": r.person_id,
                        "name": r.name,
                        "grids": int(r.grids),
                        "codes": list(r.grid_codes),
                    }
                    for r in spread.itertuples()
                ],
            },
            "reach": {
                "method": self.reach.method,
                "minutes": self.minutes,
                "speed_kmh": self.speed_kmh,
                "sites": len(self.sites),
                "buildings_outside": len(self.outside),
                "households_outside": int(self.outside["households"].sum()) if len(self.outside) else 0,
                "grids": int((g["households_outside_reach"] > 0).sum()),
                "top": [
                    {"code": r.code, "name": r.name, "households_outside": int(r.households_outside_reach)}
                    for r in outside.head(TOP).itertuples()
                ],
            },
            "gaps": {"count": len(self.gaps), "area_m2": round(float(self.gaps["area_m2"].sum()), 1)},
            "problems": {
                "count": len(faults),
                "by_kind": {str(k): int(n) for k, n in faults["kind"].value_counts().sort_index().items()},
            },
        }

    def grid_rows(self) -> list[dict[str, Any]]:
        """One JSON-able dict per grid, without geometry (what the API lists beside the summary)."""
        return json_rows(self.grids)

    def to_gpkg(self, path: str | Path) -> Path:
        """Write the layers (grids, communities, gaps, problems, outside, sites, reach) to one GeoPackage."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        layers = {
            "grids": self.grids,
            "communities": self.communities,
            "gaps": self.gaps,
            "problems": self.problems,
            "outside": self.outside,
            "sites": self.sites,
            "reach": self.reach.areas,
        }
        for name, frame in layers.items():
            _write_layer(frame, path, name)
        return path


def coverage(
    units: Mapping[str, gpd.GeoDataFrame],
    posts: pd.DataFrame,
    buildings: gpd.GeoDataFrame | None,
    sites: gpd.GeoDataFrame | None,
    roads: gpd.GeoDataFrame | None,
    *,
    at: dt.date,
    norm: tuple[int, int] | str | None = DEFAULT_NORM,
    minutes: float = 15.0,
    speed_kmh: float = 5.0,
    set_name: str = "",
    mask: Mask | None = None,
) -> CoverageReport:
    """The coverage report of a set on ``at``.

    Parameters
    ----------
    units
        Units by level name (``county``, ``street``, ``community``, ``grid``, ``microgrid``), WGS-84, with
        ``code``, ``name``, ``parent_code`` and ``households``; missing levels are taken as empty.
    posts
        Posts (``geogrid.people.POST_COLUMNS``); only those in force on ``at`` count.
    buildings, sites, roads
        The layers beside the boundaries; ``roads`` None (or empty) reaches in straight lines.
    norm
        Households per grid (low, high), or ``"300-500"``.
    mask
        Applied to every phone the report carries (e.g. :func:`geogrid.people.mask_phone`).

    Returns
    -------
    CoverageReport
    """
    low, high = parse_norm(norm)
    show: Mask = mask or (lambda phone: phone)
    grids = _units(units.get("grid"))
    micro = _units(units.get("microgrid"))
    codes = grids["code"].tolist()
    known = set(codes)
    grid_of = {c: c for c in codes}
    for code, parent in zip(micro["code"], micro["parent_code"], strict=True):
        up = parent if isinstance(parent, str) and parent else code[:15]
        if up in known:
            grid_of[code] = up

    # buildings: their grid, and whether any site reaches them
    houses = _buildings(buildings)
    houses["grid_code"] = houses["microgrid_code"].map(grid_of)
    loose = houses["grid_code"].isna().to_numpy()
    if loose.any() and len(grids):
        houses.loc[loose, "grid_code"] = _covering(houses.geometry.to_numpy()[loose], grids)
    places = _sites(sites)
    found = reach(
        places,
        houses,
        roads if roads is not None and len(roads) else None,
        minutes=minutes,
        speed_kmh=speed_kmh,
    )
    houses["inside"] = np.asarray(found.inside, dtype=bool)
    out = houses[~houses["inside"]]
    hh_out = out.groupby("grid_code")["households"].sum()
    n_out = out.groupby("grid_code").size()
    hh_of_building = dict(zip(houses["id"], houses["households"], strict=True))
    hh_of_grid_buildings = houses.groupby("grid_code")["households"].sum()

    # posts in force: by grid (through micro-grids) and by community
    live = in_force(posts, at) if len(posts) else posts
    live = live.assign(grid_code=live["unit_code"].map(grid_of)) if len(live) else live.assign(grid_code=[])
    on_grid = live[live["grid_code"].notna()].to_dict("records")  # plain dicts: pandas per grid is slow
    by_grid: dict[str, list[dict[str, Any]]] = {}
    for p in on_grid:
        by_grid.setdefault(p["grid_code"], []).append(p)

    households = [
        int(h) if not pd.isna(h) else int(hh_of_grid_buildings.get(c, 0))
        for c, h in zip(codes, grids["households"], strict=True)
    ]
    rows: list[dict[str, Any]] = []
    for code, hh in zip(codes, households, strict=True):
        mine = by_grid.get(code, [])
        leaders = _people(mine, Role.leader)
        workers = _people(mine, Role.worker)
        contacts = [
            {
                "person_id": p["person_id"],
                "name": p["name"],
                "role": p["role"],
                "phone": show(p["phone"]),
                "buildings": len(p["buildings"]),
                "households": int(sum(hh_of_building.get(b, 0) for b in p["buildings"])),
            }
            for p in mine
            if len(p["buildings"])
        ]
        rows.append(
            {
                "leaders": [p["name"] for p in leaders],
                "leader_phones": [show(p["phone"]) for p in leaders],
                "workers": len(workers),
                "worker_names": [p["name"] for p in workers],
                "contacts": contacts,
                "staffing": STAFFING[(len(leaders) == 0) + 2 * (len(workers) == 0)],
                "norm": "under" if hh < low else "over" if hh > high else "within",
                "households_per_worker": round(hh / len(workers), 2) if len(workers) else None,
                "buildings_outside_reach": int(n_out.get(code, 0)),
                "households_outside_reach": int(hh_out.get(code, 0)),
            }
        )
    table = pd.DataFrame(rows, columns=GRID_COLUMNS[4:-1], index=grids.index)
    grid_frame = gpd.GeoDataFrame(
        pd.concat([grids[["code", "name", "parent_code"]].assign(households=households), table], axis=1),
        geometry=grids.geometry,
        crs=4326,
    )[GRID_COLUMNS]

    share = {c: hh / max(int(r["workers"]), 1) for c, hh, r in zip(codes, households, rows, strict=True)}
    workers_frame = _workers(on_grid, share, hh_of_building, show)
    communities = _communities(_units(units.get("community")), live, grids, show)
    gaps, problems = _gaps(grids, units)
    outside = gpd.GeoDataFrame(
        out[["id", "microgrid_code", "grid_code", "households"]], geometry=out.geometry, crs=4326
    ).reset_index(drop=True)
    return CoverageReport(
        set_name=set_name,
        at=at,
        norm=(low, high),
        minutes=minutes,
        speed_kmh=speed_kmh,
        grids=grid_frame.reset_index(drop=True),
        communities=communities,
        workers=workers_frame,
        gaps=gaps,
        problems=problems,
        sites=places,
        outside=outside,
        reach=found,
    )


# ---- pieces ---------------------------------------------------------------------------------------
def _units(frame: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame:
    """Units with the columns used here (code, name, parent_code, households), WGS-84, ordered by code."""
    out = _layer(frame, ["code", "name", "parent_code", "households"])
    out = out.sort_values("code").reset_index(drop=True)
    out["code"] = out["code"].astype(str)
    return out


def _buildings(frame: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame:
    out = _layer(frame, ["id", "microgrid_code", "households"], keep=True)
    out["id"] = out["id"].astype(str)
    out["households"] = pd.to_numeric(out["households"], errors="coerce").fillna(0).astype(int)
    return out


def _sites(frame: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame:
    return _layer(frame, ["id", "name", "kind", "hours", "unit_code"])


def _layer(frame: gpd.GeoDataFrame | None, columns: list[str], *, keep: bool = False) -> gpd.GeoDataFrame:
    """``frame`` in WGS-84 with ``columns`` (and, with ``keep``, the others), geometry named geometry."""
    if frame is None or not len(frame):
        return gpd.GeoDataFrame({c: pd.Series(dtype=object) for c in columns}, geometry=[], crs=4326)
    frame = frame.to_crs(4326) if frame.crs is not None else frame.set_crs(4326)
    names = [*columns, *(c for c in frame.columns if keep and c not in columns and c != frame.geometry.name)]
    table = (
        pd.DataFrame(frame.drop(columns=frame.geometry.name)).reindex(columns=names).reset_index(drop=True)
    )
    return gpd.GeoDataFrame(table, geometry=frame.geometry.to_numpy(), crs=4326)


def _covering(points: np.ndarray, grids: gpd.GeoDataFrame) -> list[str | None]:
    """The code of the grid covering each point (None outside every grid)."""
    tree = shapely.STRtree(grids.geometry.to_numpy())
    where, which = tree.query(points, predicate="covered_by")
    out: list[str | None] = [None] * len(points)
    for i, j in zip(where.tolist(), which.tolist(), strict=True):
        out[i] = out[i] or str(grids["code"].iat[j])
    return out


def _people(posts: list[dict[str, Any]], role: Role) -> list[dict[str, Any]]:
    """The distinct holders of ``role`` among ``posts`` (the first post of each, in order)."""
    return list({p["person_id"]: p for p in reversed(posts) if p["role"] == role}.values())[::-1]


def _workers(
    on_grid: list[dict[str, Any]], share: Mapping[str, float], hh_of_building: Mapping[str, int], show: Mask
) -> pd.DataFrame:
    """One row per person holding a worker post in force on a grid or micro-grid: grids and load."""
    held: dict[str, list[dict[str, Any]]] = {}
    for p in on_grid:
        if p["role"] == Role.worker:
            held.setdefault(str(p["person_id"]), []).append(p)
    rows: list[dict[str, Any]] = []
    for person_id, mine in sorted(held.items()):
        grid_codes = sorted({p["grid_code"] for p in mine})
        named = sorted({b for p in mine for b in p["buildings"]})
        first = mine[0]
        rows.append(
            {
                "person_id": person_id,
                "name": first["name"],
                "phone": show(first["phone"]),
                "kind": first["kind"],
                "grids": len(grid_codes),
                "grid_codes": grid_codes,
                "households": round(sum(share[c] for c in grid_codes), 2),
                "households_per_grid": {c: round(share[c], 2) for c in grid_codes},
                "buildings_1x": len(named),
                "households_1x": int(sum(hh_of_building.get(b, 0) for b in named)),
            }
        )
    return pd.DataFrame(rows, columns=WORKER_COLUMNS)


def _communities(
    communities: gpd.GeoDataFrame, live: pd.DataFrame, grids: gpd.GeoDataFrame, show: Mask
) -> gpd.GeoDataFrame:
    """Communities with their secretaries in force (names, phones) and their number of grids."""
    held: dict[str, list[dict[str, Any]]] = {}
    for p in live.to_dict("records") if len(live) else []:
        if p["role"] == Role.secretary:
            held.setdefault(p["unit_code"], []).append(p)
    n_grids = grids["parent_code"].value_counts()
    out = communities[["code", "name", "parent_code"]].copy()
    secretaries = [_people(held.get(c, []), Role.secretary) for c in out["code"]]
    out["secretaries"] = [[p["name"] for p in ps] for ps in secretaries]
    out["secretary_phones"] = [[show(p["phone"]) for p in ps] for ps in secretaries]
    out["no_secretary"] = [not s for s in out["secretaries"]]
    out["grids"] = [int(n_grids.get(c, 0)) for c in out["code"]]
    return gpd.GeoDataFrame(out, geometry=communities.geometry, crs=4326)


def _gaps(
    grids: gpd.GeoDataFrame, units: Mapping[str, gpd.GeoDataFrame]
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Land in no grid, and every topology problem of the grid level, from :func:`geogrid.topology.check`."""
    parents = [units[lv] for lv in ("county", "street", "community") if _has(units.get(lv))]
    parent = _units(parents[0]) if parents else None
    if len(grids):
        found = check(grids, parent).problems
    else:  # check needs units; without grids all the parent's land is the gap
        rows: list[tuple[Any, ...]] = []
        if parent is not None:
            whole = shapely.union_all(parent.geometry.to_numpy())
            metric = local_metric_crs(*whole.centroid.coords[0])
            rows.append(
                ("gap", [], float(gpd.GeoSeries([whole], crs=4326).to_crs(metric).area.iat[0]), "", whole)
            )
        found = gpd.GeoDataFrame(rows, columns=[*PROBLEM_COLUMNS, "geometry"], geometry="geometry", crs=4326)
    is_gap = (found["kind"] == "gap") | ((found["kind"] == "sliver") & (found["detail"] == "gap"))
    return found[is_gap].reset_index(drop=True), found.reset_index(drop=True)


def _has(frame: gpd.GeoDataFrame | None) -> bool:
    return frame is not None and len(frame) > 0


def json_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as JSON-able dicts, without geometry (numpy scalars as Python, NaN as None)."""
    if isinstance(frame, gpd.GeoDataFrame):
        frame = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _listed(codes: list[str]) -> dict[str, Any]:
    return {"count": len(codes), "codes": codes}


def _plain(value: Any) -> Any:
    """A value as JSON carries it (numpy scalars to Python, NaN to None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _write_layer(frame: gpd.GeoDataFrame, path: Path, layer: str) -> None:
    """One layer of a GeoPackage: lists and dicts as JSON text; an empty layer still has its fields."""
    out = frame.copy()
    for column in out.columns:
        if column != out.geometry.name and out[column].dtype == object:
            values = out[column].tolist()
            if any(isinstance(v, (list, dict, tuple)) for v in values):
                out[column] = [json.dumps(v, ensure_ascii=False, default=str) for v in values]
            elif not len(out):
                out[column] = out[column].astype(str)
    out.to_file(
        path, layer=layer, driver="GPKG", engine="pyogrio", geometry_type="Unknown" if not len(out) else None
    )
