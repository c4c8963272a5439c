"""The simulation's KPIs, as the service reports them, equal a recount from the exported transition log in
plain pandas — per micro-grid, grid, community, street, department and the county, on both databases."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from geogrid.addresses.matcher import Matcher
from geogrid.addresses.registry import address_text, read_addresses
from geogrid.db import incident_kpis
from geogrid.db.addresses import AddressStore
from geogrid.db.incidents import IncidentStore
from geogrid.incidents import kpis, states
from geogrid.incidents.calendar import default_calendar
from geogrid.incidents.catalogue import catalogue
from geogrid.incidents.simulation import simulate
from geogrid.index import GridIndex
from tests.api.test_geocode import ROWS, STREET, csv_bytes
from tests.conftest import BACKENDS, empty_store, migrated_engine

pytestmark = pytest.mark.xdist_group("incident-kpis")  # one worker: each database's month simulated once

CST = ZoneInfo("Asia/Shanghai")
START = dt.datetime(2026, 9, 21, tzinfo=CST)  # the National Day holiday and its 调休 days inside the month
NOW = START + dt.timedelta(days=31)  # a day after the last report: some still open, some overdue


@pytest.fixture(scope="module", params=BACKENDS)
def run(request, tmp_path_factory, demo_layers):
    """One street published, its addresses, and a simulated month of 1,000 incidents driven through the loop."""
    with migrated_engine(request.param, tmp_path_factory) as db:
        store = empty_store(db)
        for name, level in (
            ("streets", "street"), ("communities", "community"), ("grids", "grid"), ("microgrids", "microgrid")
        ):  # fmt: skip
            frame = demo_layers[name]
            store.import_units("s", frame[frame["code"].str.startswith(STREET)], level, commit=True)
        store.publish("s", dt.date(2026, 1, 1))
        registry = read_addresses(csv_bytes(ROWS), "a.csv")
        AddressStore(db, "test").import_addresses("s", registry, commit=True)
        index = GridIndex.from_version(store, "s")
        micro = demo_layers["microgrids"]
        micro = micro[micro["code"].str.startswith(STREET)]
        points = [(p.x, p.y) for p in micro.geometry.representative_point()]
        incidents = IncidentStore(db, catalogue(), default_calendar())
        texts = [address_text(r) for r in registry.head(300).to_dict("records")]
        summary = simulate(
            incidents, "s", lambda day: index, points=points, catalogue=catalogue(), addresses=texts,
            matcher=Matcher(AddressStore(db).addresses("s")),
            n=1000, start=START, days=30, seed=7, end=NOW,
        )  # fmt: skip
        yield incidents, summary


def recount(
    log: pd.DataFrame, by: str, start: dt.datetime, end: dt.datetime, now: dt.datetime
) -> pd.DataFrame:
    """Every KPI from the raw log alone (pandas, the calendar for working hours): the independent count."""
    calendar = default_calendar()
    log = log.sort_values(["incident_id", "seq"])
    log["detail"] = log["detail"].map(lambda d: d if isinstance(d, dict) else json.loads(d))
    rows = []
    for _, steps in log.groupby("incident_id", sort=False):
        first = steps.iloc[0]
        assert first["action"] == "report"
        if not (start <= first["reported_at"] < end):
            continue
        deadline = pd.Timestamp(first["detail"]["deadline"])
        level = first["detail"]["level"]
        on_time = None
        resolved_at = None
        for _, s in steps.iterrows():
            d = s["detail"]
            if s["action"] == "resolve" and resolved_at is None:
                resolved_at = s["at"]
                escalated = (steps["action"][steps["seq"] < s["seq"]] == "escalate").any()
                on_time = s["at"] <= deadline and not escalated
            if "deadline" in d:
                deadline = pd.Timestamp(d["deadline"])
            if "to_level" in d:
                level = d["to_level"]
        closes = steps[steps["action"] == "close"]
        closed_at = closes["at"].iloc[-1] if len(closes) else None
        rating = closes["detail"].iloc[-1].get("satisfaction") if len(closes) else None
        state = steps["to_state"].iloc[-1]
        rows.append({
            "unit": {"county": "county", "department": level}.get(by) or first[by],
            "void": state == "void",
            "accepted": (steps["action"] == "accept").any(),
            "resolved": resolved_at is not None,
            "on_time": bool(on_time),
            "closed": closed_at is not None,
            "escalations": int((steps["action"] == "escalate").sum()),
            "rated": rating is not None,
            "satisfaction": rating,
            "hours": calendar.working_hours_between(first["reported_at"], closed_at) if closed_at is not None else None,
            "open": state in states.OPEN,
            "overdue": state in states.RUNNING and deadline <= now,
        })  # fmt: skip
    frame = pd.DataFrame(rows)
    if by == "department":
        frame = frame[frame["unit"].str.startswith("department:", na=False)]
    frame = frame.dropna(subset=["unit"])
    out = frame.groupby("unit").agg(
        received=("void", "size"), void=("void", "sum"), accepted=("accepted", "sum"),
        resolved=("resolved", "sum"), on_time=("on_time", "sum"), closed=("closed", "sum"),
        escalations=("escalations", "sum"), rated=("rated", "sum"), satisfaction=("satisfaction", "mean"),
        hours_to_close_mean=("hours", "mean"), hours_to_close_median=("hours", "median"),
        open=("open", "sum"), overdue=("overdue", "sum"),
    )  # fmt: skip
    return out


PERIODS = {  # the simulated month (no tally month whole: every incident counted from its row), and
    # September and October in Beijing time: September (UTC) from the tallies, the rest from the rows
    "the month": (START, START + dt.timedelta(days=30)),
    "whole months": (dt.datetime(2026, 9, 1, tzinfo=CST), dt.datetime(2026, 11, 1, tzinfo=CST)),
    # September's part counted; October's taken whole less its rows after the 17th, closed ones among them
    "less the rest of a month": (dt.datetime(2026, 9, 24, tzinfo=CST), dt.datetime(2026, 10, 18, tzinfo=CST)),
}


@pytest.mark.parametrize("period", PERIODS)
@pytest.mark.parametrize("by", ["microgrid", "grid", "community", "street", "department", "county"])
def test_the_service_kpis_equal_a_recount_from_the_log(run, by, period):
    incidents, summary = run
    assert summary.stored > 950 and summary.actions["close"] > 500 and summary.actions["escalate"] > 20
    assert summary.actions["void"] > 10 and summary.actions["return"] > 10 and summary.actions["park"] > 5
    assert summary.actions["merge"] > 5 and summary.queued < summary.stored  # repeats merged, typos placed
    start, end = PERIODS[period]
    served = pd.DataFrame(incidents.kpis("s", by, start, end, now=NOW)).set_index("unit")
    log = pd.DataFrame(incidents.export_log("s"))
    counted = recount(log, by, start, end, NOW)
    assert len(served) == len(counted) and len(served) >= {"microgrid": 50, "grid": 10, "community": 2}.get(
        by, 1
    )
    for column in kpis.COUNTS:
        assert served[column].astype(int).to_dict() == counted[column].astype(int).to_dict(), column
    for column in ("satisfaction", "hours_to_close_mean", "hours_to_close_median"):
        # as dicts with None for "no value" (a Series would turn None back into NaN, and NaN != NaN)
        want = {u: None if pd.isna(v) else round(float(v), kpis.DIGITS) for u, v in counted[column].items()}
        got = {u: None if v is None or pd.isna(v) else v for u, v in served[column].items()}
        assert got == want, column
    for unit, row in served.iterrows():
        c = counted.loc[unit]
        cases = c["received"] - c["void"]
        assert row["resolution_rate"] == (round(c["closed"] / cases, kpis.DIGITS) if cases else None)


def test_the_tallies_kept_with_every_write_equal_a_rebuild_from_the_incidents(run):
    incidents, summary = run
    with incidents.engine.begin() as conn:
        set_id = incidents._store._set_id(conn, "s")
        kept = incident_kpis.tallies(conn, set_id)
        assert incident_kpis.retally(conn, set_id) == len(kept)
        rebuilt = incident_kpis.tallies(conn, set_id)
        conn.rollback()
    assert sum(counts[0] for counts, _ in kept.values()) == summary.stored
    assert sum(len(hours) for _, hours in kept.values()) == summary.actions["close"]
    assert {m for _, m, *_ in kept} == {202609, 202610}  # the simulated month spans two tally months
    assert kept == rebuilt


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


@pytest.mark.parametrize(
    ("start", "end", "months", "parts"),
    [
        (  # the simulated month: September's part counted, October taken whole less its last 11 days
            "2026-09-21T00:00+08:00", "2026-10-21T00:00+08:00", [202610],
            [("2026-09-20T16:00Z", "2026-10-01T00:00Z", 1), ("2026-10-20T16:00Z", "2026-11-01T00:00Z", -1)],
        ),
        ("2026-09-01T00:00Z", "2026-10-01T00:00Z", [202609], []),
        (  # a Beijing-time year: eight hours either end
            "2026-01-01T00:00+08:00", "2027-01-01T00:00+08:00", [202601 + m for m in range(12)],
            [("2025-12-31T16:00Z", "2026-01-01T00:00Z", 1), ("2026-12-31T16:00Z", "2027-01-01T00:00Z", -1)],
        ),
        ("2026-01-10T00:00Z", "2026-01-12T00:00Z", [], [("2026-01-10T00:00Z", "2026-01-12T00:00Z", 1)]),
    ],
)  # fmt: skip
def test_a_period_takes_whole_tally_months_and_counts_the_shorter_side_of_the_rest(start, end, months, parts):
    planned = incident_kpis._plan(utc(start), utc(end))
    assert planned == (months, [(utc(a), utc(b), sign) for a, b, sign in parts])


def test_hours_taken_away_as_a_multiset():
    values = np.array([3.0, 1.0, 2.0, 2.0, 5.0, 2.0])
    assert incident_kpis._without(values, np.array([2.0, 5.0, 2.0])).tolist() == [1.0, 2.0, 3.0]


def test_shares_held_back_and_never_written_refuse_the_commit(run):
    incidents, _ = run
    with pytest.raises(RuntimeError, match="flush"), incidents.engine.begin() as conn:
        row = {"reported_at": dt.datetime(2026, 11, 3, tzinfo=dt.UTC), "level": "grid", "state": "reported"}
        incident_kpis.defer(conn, [(1, row)])
    with incidents.engine.begin() as conn:  # the next transaction on the connection starts clean
        conn.execute(sa.text("SELECT 1"))


def test_hours_not_held_by_the_tally_are_an_error_not_a_silent_drop():
    with pytest.raises(ValueError, match="disagree"):
        incident_kpis._without(np.array([1.0, 2.0, 3.0]), np.array([2.5]))
    with pytest.raises(ValueError, match="disagree"):
        incident_kpis._without(np.array([1.0, 2.0, 3.0]), np.array([5.0]))


def test_a_ranking_names_best_and_worst_grids(run):
    incidents, _ = run
    rows = incidents.kpis("s", "microgrid", START, START + dt.timedelta(days=30), now=NOW)
    ranked = kpis.ranking(rows, top=3, min_received=5)
    assert len(ranked["red"]) == 3 and len(ranked["black"]) == 3
    assert ranked["red"][0]["score"] >= ranked["red"][-1]["score"] >= ranked["black"][-1]["score"]
    assert ranked["black"][0]["score"] <= ranked["black"][-1]["score"]
    assert not {r["unit"] for r in ranked["red"]} & {r["unit"] for r in ranked["black"]}
