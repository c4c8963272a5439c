"""Where do two grid layers over the same area disagree? Reconciling several networks into one (多网合一).

Comprehensive-governance, urban-management, party-building grids: each unit of one layer, the units of the
other it overlaps and with what share, the units that disagree beyond a threshold, and a proposed merged
layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geogrid.crs import local_metric_crs
from geogrid.topology import MIN_AREA_M2, polygonal


@dataclass
class Comparison:
    """How two layers over the same area relate: every overlapping pair, the disagreements, a proposal."""

    pairs: pd.DataFrame  # code_a, code_b, area_m2, share_of_a, share_of_b
    disagreements: pd.DataFrame  # layer, code, best_match, share, misfit_m2
    merged: gpd.GeoDataFrame  # a proposed single layer: a's units, split where b cuts them substantially


def compare(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame, *, threshold: float = 0.05) -> Comparison:
    """Compare two layers: for each unit of ``a`` the units of ``b`` it overlaps and with what share.

    A unit disagrees when more than ``threshold`` of its area lies outside its best match in the other
    layer. The proposed merged layer keeps ``a``'s units and splits each where ``b`` cuts off more than
    ``threshold`` of it (pieces coded ``a_code|b_code``); smaller pieces stay with the largest piece.
    """
    fa = a.to_crs(4326) if a.crs is not None else a.set_crs(4326)
    fb = b.to_crs(4326) if b.crs is not None else b.set_crs(4326)
    x0, y0, x1, y1 = shapely.total_bounds(fa.geometry.to_numpy())
    metric = local_metric_crs((x0 + x1) / 2, (y0 + y1) / 2)
    ga, gb = fa.geometry.to_numpy(), fb.geometry.to_numpy()
    ca, cb = fa["code"].astype(str).to_numpy(), fb["code"].astype(str).to_numpy()
    left, right = shapely.STRtree(gb).query(ga, predicate="intersects")
    pieces = np.array([polygonal(g) for g in shapely.intersection(ga[left], gb[right])], dtype=object)
    area_m = gpd.GeoSeries(pieces, crs=4326).to_crs(metric).area.to_numpy()
    area_a = gpd.GeoSeries(ga, crs=4326).to_crs(metric).area.to_numpy()
    area_b = gpd.GeoSeries(gb, crs=4326).to_crs(metric).area.to_numpy()
    keep = area_m > MIN_AREA_M2
    left, right, pieces, area_m = left[keep], right[keep], pieces[keep], area_m[keep]
    pairs = pd.DataFrame(
        {
            "code_a": ca[left],
            "code_b": cb[right],
            "area_m2": area_m,
            "share_of_a": area_m / area_a[left],
            "share_of_b": area_m / area_b[right],
        }
    )
    rows = []
    for layer, codes, areas, key, other, share in (
        ("a", ca, area_a, "code_a", "code_b", "share_of_a"),
        ("b", cb, area_b, "code_b", "code_a", "share_of_b"),
    ):
        best = pairs.sort_values(share, ascending=False).drop_duplicates(key).set_index(key)
        for code, total in zip(codes, areas, strict=True):
            match = best.loc[code] if code in best.index else None
            s = float(match[share]) if match is not None else 0.0
            if s < 1 - threshold:
                rows.append(
                    {
                        "layer": layer,
                        "code": code,
                        "best_match": match[other] if match is not None else None,
                        "share": s,
                        "misfit_m2": float(total * (1 - s)),
                    }
                )
    disagreements = pd.DataFrame(rows, columns=["layer", "code", "best_match", "share", "misfit_m2"])
    merged_rows = []
    for i, code in enumerate(ca):
        mine = np.flatnonzero(left == i)
        big = [k for k in mine if pairs["share_of_a"].iloc[k] > threshold]
        if len(big) <= 1:
            merged_rows.append((code, ga[i]))
            continue
        parts = {k: pieces[k] for k in big}
        largest = max(big, key=lambda k: area_m[k])
        rest = polygonal(shapely.difference(ga[i], shapely.union_all(list(parts.values()))))
        parts[largest] = polygonal(shapely.union(parts[largest], rest))
        merged_rows.extend((f"{code}|{cb[right[k]]}", geom) for k, geom in parts.items())
    merged = gpd.GeoDataFrame(
        {"code": [c for c, _ in merged_rows]}, geometry=[g for _, g in merged_rows], crs=4326
    )
    return Comparison(pairs, disagreements, merged)
