"""Plans: grids redrawn as unions of micro-grids, so that a plan is an assignment of micro-grids to grids
and every edit keeps the tessellation exact — micro-grids moved, grids merged or split — measured against
the household norm and compared with the version it was drawn from. Pure: layers in, layers and tables out."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from libpysal.graph import Graph
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from geogrid.coverage import DEFAULT_NORM
from geogrid.crs import local_metric_crs
from geogrid.errors import InvalidPlan

CODE_DIGITS = 3  # DB11: a grid's code is its community's and three digits


@dataclass(frozen=True)
class Norm:
    """The households a grid should hold (a common norm: 300–500 per basic grid)."""

    floor: int = DEFAULT_NORM[0]
    ceiling: int = DEFAULT_NORM[1]

    def __post_init__(self) -> None:
        if not 0 < self.floor <= self.ceiling:
            raise InvalidPlan(f"the household norm {self.floor}–{self.ceiling} is not 0 < floor ≤ ceiling")

    def judge(self, households: float) -> str:
        """Whether ``households`` is below the floor (low), above the ceiling (high) or within (ok)."""
        return "low" if households < self.floor else "high" if households > self.ceiling else "ok"


class Plan:
    """Grids as unions of micro-grids: the grids (code, name, community) and each micro-grid's grid."""

    def __init__(
        self,
        grids: pd.DataFrame,
        microgrids: gpd.GeoDataFrame,
        assignment: Mapping[str, str] | pd.Series,
        *,
        neighbours: Graph | None = None,
        reserved: Iterable[str] = (),
    ) -> None:
        self.grids = grids  # index: grid code; columns name, parent_code (the community)
        self.microgrids = microgrids  # index: micro-grid code; households, population, geometry (WGS-84)
        self.assignment = pd.Series(assignment, dtype=object).reindex(microgrids.index)
        if self.assignment.isna().any():
            missing = list(self.assignment.index[self.assignment.isna()][:5])
            raise InvalidPlan(f"micro-grids without a grid: {', '.join(missing)}", code=missing[0])
        unknown = sorted(set(self.assignment) - set(grids.index))
        if unknown:
            raise InvalidPlan(f"micro-grids assigned to grids the plan lacks: {', '.join(unknown[:5])}")
        self._neighbours = neighbours
        # every grid code the plan and those it was drawn from used: a code retired is never given again
        self.reserved = frozenset(reserved) | frozenset(grids.index)

    @classmethod
    def from_layers(cls, grids: gpd.GeoDataFrame, microgrids: gpd.GeoDataFrame) -> Plan:
        """The plan of a version as it is: each micro-grid in the grid its ``parent_code`` names."""
        kept = grids.set_index("code")[["name", "parent_code"]].copy()
        micro = microgrids.set_index("code")
        for column in ("households", "population"):
            if column not in micro:
                micro[column] = 0
            micro[column] = pd.to_numeric(micro[column], errors="coerce").fillna(0).astype(int)
        micro = gpd.GeoDataFrame(
            micro[["households", "population"]], geometry=micro.geometry.values, crs=4326
        )
        parents = dict(zip(microgrids["code"], microgrids["parent_code"], strict=True))
        return cls(kept, micro, micro.index.to_series().map(parents))

    # ---- edits: each returns a new plan -----------------------------------------------------------
    def _with(self, grids: pd.DataFrame, assignment: pd.Series) -> Plan:
        used = set(assignment)
        return Plan(grids.loc[[c for c in grids.index if c in used]], self.microgrids, assignment,
                    neighbours=self._neighbours, reserved=self.reserved | set(grids.index))  # fmt: skip

    def community_of(self, grid: str) -> str:
        """The community a grid of the plan lies in."""
        if grid not in self.grids.index:
            raise InvalidPlan(f"no grid {grid} in the plan", code=grid)
        return str(self.grids.at[grid, "parent_code"])

    def move(self, microgrids: Iterable[str], to: str) -> Plan:
        """``microgrids`` moved into grid ``to`` (of the same community: a plan redraws grids, not communities)."""
        codes = list(microgrids)
        unknown = [c for c in codes if c not in self.assignment.index]
        if unknown:
            raise InvalidPlan(f"no micro-grid {unknown[0]} in the plan", code=unknown[0])
        community = self.community_of(to)
        for code in codes:
            if self.community_of(self.assignment[code]) != community:
                raise InvalidPlan(f"micro-grid {code} lies in another community than grid {to}", code=code)
        assignment = self.assignment.copy()
        assignment[codes] = to
        return self._with(self.grids, assignment)

    def merge(self, grids: Sequence[str], into: str | None = None) -> Plan:
        """``grids`` made one, under the code of ``into`` (default the first)."""
        if len(grids) < 2:
            raise InvalidPlan("a merge needs two grids or more")
        into = into or grids[0]
        if into not in grids:
            raise InvalidPlan(f"grid {into} is not among those merged", code=into)
        if len({self.community_of(g) for g in grids}) > 1:
            raise InvalidPlan("the grids merged lie in different communities")
        assignment = self.assignment.where(~self.assignment.isin(list(grids)), into)
        return self._with(self.grids, assignment)

    def split(self, grid: str, parts: Sequence[Iterable[str]], names: Sequence[str] | None = None) -> Plan:
        """Grid ``grid`` split into ``parts`` (its micro-grids, each in one part): the first keeps the code,
        the others get the community's next free codes (named by ``names`` where given)."""
        community = self.community_of(grid)
        own = set(self.assignment.index[self.assignment == grid])
        groups = [list(p) for p in parts]
        taken = [c for g in groups for c in g]
        if any(not g for g in groups) or len(groups) < 2:
            raise InvalidPlan(f"a split of {grid} needs two or more parts, none empty", code=grid)
        if len(taken) != len(set(taken)) or set(taken) != own:
            raise InvalidPlan(
                f"the parts of {grid} must hold each of its {len(own)} micro-grids once", code=grid
            )
        codes = self.free_codes(community, len(groups) - 1)
        grids = self.grids.copy()
        assignment = self.assignment.copy()
        for i, (code, members) in enumerate(zip(codes, groups[1:], strict=True)):
            name = names[i] if names is not None and i < len(names) else ""
            grids.loc[code] = {"name": name, "parent_code": community}
            assignment[members] = code
        return self._with(grids, assignment)

    def free_codes(self, community: str, n: int) -> list[str]:
        """``n`` grid codes of ``community`` that neither the plan nor those it was drawn from used, lowest
        first (a retired code keeps its history: posts and incidents name it)."""
        used = {c for c in self.reserved if c.startswith(community)}
        out = []
        for k in range(1, 10**CODE_DIGITS):
            code = f"{community}{k:0{CODE_DIGITS}d}"
            if code not in used:
                out.append(code)
                if len(out) == n:
                    return out
        raise InvalidPlan(f"community {community} has no {n} free grid codes left", code=community)

    # ---- what the plan is ---------------------------------------------------------------------------
    @property
    def neighbours(self) -> Graph:
        """Micro-grids that share an edge (rook contiguity, not a corner), from their geometry."""
        if self._neighbours is None:
            self._neighbours = Graph.build_contiguity(self.microgrids, rook=True, strict=True)
        return self._neighbours

    def grid_layer(self) -> gpd.GeoDataFrame:
        """The plan's grids: code, name, parent_code, households, population, micro-grids, geometry (the
        union of their micro-grids)."""
        groups = self.microgrids.groupby(self.assignment, sort=True)
        shapes = [shapely.coverage_union_all(g.geometry.values) for _, g in groups]
        sums = groups[["households", "population"]].sum()
        frame = self.grids.loc[sums.index].assign(
            households=sums["households"], population=sums["population"], microgrids=groups.size()
        )
        return gpd.GeoDataFrame(frame.rename_axis("code").reset_index(), geometry=shapes, crs=4326)

    def metrics(self, norm: Norm = Norm(), workers: Mapping[str, int] | None = None) -> pd.DataFrame:
        """Per grid: households and population against the norm, contiguity by shared edges, Polsby–Popper
        compactness (4πA/P², 1 for a disc) and households per worker (where ``workers`` counts them)."""
        layer = self.grid_layer()
        x0, y0, x1, y1 = layer.total_bounds
        metric = layer.to_crs(local_metric_crs((x0 + x1) / 2, (y0 + y1) / 2))
        area, perimeter = metric.geometry.area.to_numpy(), metric.geometry.length.to_numpy()
        counts = [None if workers is None else workers.get(c, 0) for c in layer["code"]]
        out = pd.DataFrame(
            {
                "code": layer["code"],
                "community": layer["parent_code"],
                "households": layer["households"],
                "population": layer["population"],
                "microgrids": layer["microgrids"],
                "norm": [norm.judge(h) for h in layer["households"]],
                "contiguous": layer["code"].map(self.pieces()).eq(1).to_numpy(),
                "polsby_popper": 4 * math.pi * area / np.maximum(perimeter, 1e-9) ** 2,
                "workers": counts,
                "households_per_worker": [
                    None if n is None else (h / n if n else None)
                    for h, n in zip(layer["households"], counts, strict=True)
                ],
            }
        )
        return out

    def pieces(self) -> pd.Series:
        """How many pieces each grid falls into, its micro-grids joined by shared edges (1: contiguous)."""
        adjacency = self.neighbours.adjacency
        focal = adjacency.index.get_level_values(0)
        other = adjacency.index.get_level_values(1)
        position = pd.Series(np.arange(len(self.assignment)), index=self.assignment.index)
        grid = self.assignment.to_numpy()
        i, j = position[focal].to_numpy(), position[other].to_numpy()
        same = grid[i] == grid[j]  # edges inside a grid only
        n = len(position)
        matrix = coo_matrix((np.ones(int(same.sum())), (i[same], j[same])), shape=(n, n))
        piece = connected_components(matrix, directed=False)[1]
        return pd.Series(piece, index=self.assignment.index).groupby(self.assignment).nunique()

    def diff(self, before: Plan) -> PlanDiff:
        """What this plan changes against ``before`` (the version in force): grids added, removed and
        changed, and every micro-grid that changes grid, with its households and population."""
        old = before.assignment
        if not old.index.sort_values().equals(self.assignment.index.sort_values()):
            raise InvalidPlan(
                "the plans hold different micro-grids: compare a plan with the version it was drawn from"
            )
        new = self.assignment.reindex(old.index)
        moved = old.index[old != new]
        table = pd.DataFrame(
            {
                "microgrid": moved,
                "from_grid": old[moved].to_numpy(),
                "to_grid": new[moved].to_numpy(),
                "households": self.microgrids.loc[moved, "households"].to_numpy(),
                "population": self.microgrids.loc[moved, "population"].to_numpy(),
            }
        )
        touched = set(table["from_grid"]) | set(table["to_grid"])
        added = sorted(set(self.grids.index) - set(before.grids.index))
        removed = sorted(set(before.grids.index) - set(self.grids.index))
        changed = sorted(touched - set(added) - set(removed))
        renamed = sorted(
            c for c in set(self.grids.index) & set(before.grids.index)
            if str(self.grids.at[c, "name"] or "") != str(before.grids.at[c, "name"] or "")
        )  # fmt: skip
        return PlanDiff(added, removed, changed, renamed, table, self.microgrids.loc[moved])


@dataclass
class PlanDiff:
    """A plan against the version it was drawn from."""

    added: list[str]
    removed: list[str]
    changed: list[str]  # kept, with other micro-grids
    renamed: list[str]
    moved: pd.DataFrame  # microgrid, from_grid, to_grid, households, population
    shapes: gpd.GeoDataFrame = field(repr=False)

    @property
    def households_moved(self) -> int:
        """Households whose grid changes."""
        return int(self.moved["households"].sum())

    def layer(self) -> gpd.GeoDataFrame:
        """The micro-grids that change grid, with where from and to (a GeoJSON layer or a map's)."""
        return gpd.GeoDataFrame(
            self.moved.reset_index(drop=True), geometry=self.shapes.geometry.to_numpy(), crs=4326
        )
