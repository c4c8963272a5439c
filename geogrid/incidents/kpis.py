"""How did each grid do? Incident figures per unit and period, their rates, and the red/black ranking.

Counted over the incidents **reported** in a period: received, void (作废), accepted (立案), resolved (办结
at least once), resolved on time (the first 办结 by the deadline then in force, never escalated), closed (结案), escalations,
time to close in working hours (mean and median), satisfaction (回访, 1–5: mean and how many rated), and open
and overdue now. The rates: resolution = closed / (received − void); on time = on time / resolved. The
ranking (红黑榜) orders units by a score of resolution rate, on-time rate and satisfaction; units with too
few incidents to judge are left out. Every figure can be recounted from the exported transition log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

BY = ("microgrid", "grid", "community", "street", "department", "county")
COUNTS = (
    "received",
    "void",
    "accepted",
    "resolved",
    "on_time",
    "closed",
    "escalations",
    "rated",
    "open",
    "overdue",
)
WEIGHTS = {"resolution_rate": 0.4, "on_time_rate": 0.4, "satisfaction_score": 0.2}
DIGITS = 4  # rates, means and medians are rounded to this many decimals


def rates(row: Mapping[str, Any]) -> dict[str, Any]:
    """A unit's counts with the rates derived from them (None where nothing to divide by)."""
    out = dict(row)
    cases = row["received"] - row["void"]
    out["resolution_rate"] = round(row["closed"] / cases, DIGITS) if cases else None
    out["on_time_rate"] = round(row["on_time"] / row["resolved"], DIGITS) if row["resolved"] else None
    for key in ("hours_to_close_mean", "hours_to_close_median", "satisfaction"):
        out[key] = round(float(row[key]), DIGITS) if row.get(key) is not None else None
    return out


def score(row: Mapping[str, Any]) -> float | None:
    """A unit's ranking score in [0, 1]: resolution, on time and satisfaction, weighted; None if unrated."""
    parts = {
        "resolution_rate": row.get("resolution_rate"),
        "on_time_rate": row.get("on_time_rate"),
        "satisfaction_score": (row["satisfaction"] - 1) / 4 if row.get("satisfaction") is not None else None,
    }
    given = {k: v for k, v in parts.items() if v is not None}
    if not given:
        return None
    weight = sum(WEIGHTS[k] for k in given)
    return round(sum(WEIGHTS[k] * v for k, v in given.items()) / weight, DIGITS)


def ranking(
    rows: Iterable[Mapping[str, Any]], *, top: int = 10, min_received: int = 5
) -> dict[str, list[dict[str, Any]]]:
    """The red list (best ``top``) and black list (worst ``top``) of units with ≥ ``min_received`` incidents."""
    judged = [
        {**row, "score": s}
        for row in rows
        if row["received"] - row["void"] >= min_received and (s := score(row)) is not None
    ]
    judged.sort(key=lambda r: (-r["score"], str(r["unit"])))
    red = judged[:top]
    black = sorted(
        judged[len(red) :] if len(judged) > top else [], key=lambda r: (r["score"], str(r["unit"]))
    )[:top]
    return {"red": red, "black": black}
