"""What does a month of incidents look like? A reproducible simulation driven through the real loop.

``simulate`` makes ``n`` reports spread over ``days`` (mixed channels, categories, coordinates in WGS-84,
GCJ-02, BD-09 and CGCS2000, hotline address texts with typos, repeats of open incidents nearby), places
each with :func:`geogrid.incidents.intake.locate` and stores it through the given store, then plays every
incident through the loop in time order with realistic delays: repeats mostly merged into the incident
they repeat, others accepted within the hour, some voided,
dispatched, some returned and dispatched again, started, some parked and resumed, resolved (about one in
eight after its limit), some rejected at verification, verified and closed with a rating. An escalation
job runs every simulated hour and escalates what is overdue, as the service's periodic job does. The store
is any object with the methods of :class:`geogrid.db.incidents.IncidentStore` (``create``, ``act``,
``escalate_overdue``), so the same run feeds a test, a benchmark or a notebook.
"""

from __future__ import annotations

import datetime as dt
import heapq
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from geogrid.addresses.matcher import Matcher
from geogrid.crs import wgs84_to_bd09, wgs84_to_gcj02
from geogrid.errors import GeoGridError
from geogrid.incidents.catalogue import Catalogue
from geogrid.incidents.intake import Report, locate
from geogrid.incidents.placement import Placement
from geogrid.index import GridIndex

HOUR = dt.timedelta(hours=1)
CHANNEL_SHARES = {"app": 0.3, "wechat": 0.25, "hotline": 0.25, "worker": 0.15, "open311": 0.05}
CRS_SHARES = {"wgs84": 0.4, "gcj02": 0.35, "bd09": 0.15, "cgcs2000": 0.1}
NAMES = "张王李赵刘陈杨黄周吴"


class IncidentSink(Protocol):
    """What the simulation needs of a store."""

    def create(
        self, set_name: str, report: Report, placement: Placement, actor: str | None = None
    ) -> tuple[dict[str, Any], bool]: ...

    def act(self, set_name: str, incident_id: int, action: str, **kw: Any) -> dict[str, Any]: ...

    def escalate_overdue(
        self, set_name: str, now: dt.datetime | None = None, actor: str = "system"
    ) -> list[int]: ...


@dataclass
class Summary:
    """What a run did: reports made, stored, refused (with why), queued, and actions taken by kind."""

    reports: int = 0
    stored: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    queued: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    ids: list[int] = field(default_factory=list)


def simulate(
    store: IncidentSink,
    set_name: str,
    index_on: Callable[[dt.date], GridIndex],
    *,
    points: Sequence[tuple[float, float]],
    catalogue: Catalogue,
    matcher: Matcher | None = None,
    addresses: Sequence[str] = (),
    n: int = 50_000,
    start: dt.datetime,
    days: int = 30,
    seed: int = 2026,
    end: dt.datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Summary:
    """Report ``n`` incidents over ``days`` from ``start`` and play them through the loop until ``end``
    (default: ``days`` + 7 days after ``start``), all in time order; the run's Summary."""
    rng = random.Random(seed)
    end = end or start + dt.timedelta(days=days + 7)
    services = list(catalogue)
    weights = [3.0 if s.kind == "event" else 1.0 for s in services]
    summary = Summary()
    heap: list[tuple[dt.datetime, int, int, str]] = []  # (when, tie, incident id, state it was planned for)
    known: dict[int, str] = {}  # incident id → its state as last seen
    opened: list[tuple[int, str, float, float]] = []  # open incidents to repeat: (id, category, lon, lat)
    repeats: dict[int, int] = {}  # incident id → the open incident it reports again
    tie = 0
    times = sorted(start + dt.timedelta(seconds=rng.uniform(0, days * 86_400)) for _ in range(n))
    next_job = start + HOUR

    def plan(incident_id: int, state: str, now: dt.datetime, deadline: dt.datetime | None) -> None:
        nonlocal tie
        left_h = max((deadline - now).total_seconds() / 3600, 0.5) if deadline is not None else 8.0
        delay = {
            "reported": rng.expovariate(2.0),
            "accepted": rng.expovariate(2.0),
            "dispatched": rng.expovariate(1.0),
            "returned": rng.expovariate(1.0),
            "escalated": rng.expovariate(1.0),
            "in_progress": left_h * rng.lognormvariate(-0.5, 0.45),  # about 1 in 8 past the deadline
            "parked": rng.uniform(4, 48),
            "resolved": rng.expovariate(0.5),
            "verified": rng.expovariate(0.5),
        }.get(state)
        if delay is not None:
            tie += 1
            heapq.heappush(heap, (now + dt.timedelta(hours=delay), tie, incident_id, state))

    def step(incident_id: int, state: str, now: dt.datetime) -> None:
        """Take the next action of an incident planned while it was ``state`` (if it still is)."""
        if known.get(incident_id) != state:
            return  # the escalation job moved it meanwhile: it was planned again then
        roll = rng.random()
        first = repeats.get(incident_id)
        if state == "reported" and first is not None and roll < 0.7:  # a commander merges the repeat
            try:
                after = store.act(
                    set_name,
                    incident_id,
                    "void",
                    actor="sim-merge",
                    at=now,
                    note="重复上报",
                    duplicate_of=first,
                )
            except GeoGridError:  # the first one was closed or voided meanwhile: a case of its own
                pass
            else:
                summary.actions["merge"] += 1
                known[incident_id] = after["state"]
                return
            roll = 1.0
        action, extra = {
            "reported": ("void", {}) if roll < 0.03 else ("accept", {}),
            "accepted": ("dispatch", {}),
            "returned": ("dispatch", {}),
            "escalated": ("dispatch", {}),
            "dispatched": ("return", {}) if roll < 0.05 else ("start", {}),
            "in_progress": ("park", {}) if roll < 0.02 else ("resolve", {}),
            "parked": ("resume", {}),
            "resolved": ("reject", {}) if roll < 0.05 else ("verify", {}),
            "verified": ("close", {"satisfaction": rng.choices([5, 4, 3, 2, 1], [60, 25, 8, 4, 3])[0]}),
        }[state]
        try:
            after = store.act(
                set_name, incident_id, action, actor=f"sim-{action}", at=now, note=f"{action} (sim)", **extra
            )
        except GeoGridError:
            return
        summary.actions[action] += 1
        known[incident_id] = after["state"]
        plan(incident_id, after["state"], now, after["deadline"])

    def run_until(moment: dt.datetime) -> None:
        nonlocal next_job
        while True:
            when = heap[0][0] if heap else None
            if next_job <= moment and (when is None or next_job <= when):
                for incident_id in store.escalate_overdue(set_name, now=next_job):
                    summary.actions["escalate"] += 1
                    if incident_id in known:
                        known[incident_id] = "escalated"
                        plan(incident_id, "escalated", next_job, None)
                next_job += HOUR
            elif when is not None and when <= moment:
                _, _, incident_id, state = heapq.heappop(heap)
                step(incident_id, state, when)
            else:
                return

    for i, at in enumerate(times):
        run_until(at)
        service = rng.choices(services, weights)[0]
        report, repeat_of = _report(rng, at, service.code, points, addresses, opened)
        summary.reports += 1
        try:
            placement = locate(report, index_on, matcher, now=at + dt.timedelta(minutes=1))
        except GeoGridError as exc:
            summary.refused[type(exc).__name__] += 1
            continue
        item, _ = store.create(set_name, report, placement, actor=f"sim-{report.channel}")
        summary.stored += 1
        summary.ids.append(item["id"])
        summary.queued += placement.placed_by == "queue"
        known[item["id"]] = item["state"]
        if repeat_of is not None:
            repeats[item["id"]] = repeat_of
        if placement.lon is not None and placement.lat is not None and rng.random() < 0.3:
            opened.append((item["id"], service.code, placement.lon, placement.lat))
            if len(opened) > 200:
                opened.pop(0)
        plan(item["id"], "reported", at, item["deadline"])
        if progress is not None and (i + 1) % 500 == 0:
            progress(i + 1, n)
    run_until(end)
    return summary


def _report(
    rng: random.Random,
    at: dt.datetime,
    category: str,
    points: Sequence[tuple[float, float]],
    addresses: Sequence[str],
    opened: list[tuple[int, str, float, float]],
) -> tuple[Report, int | None]:
    """One report: a point in some CRS, an address text (now and then with a typo), or both; now and then a
    repeat of an open one (with its id)."""
    channel = rng.choices(list(CHANNEL_SHARES), list(CHANNEL_SHARES.values()))[0]
    name = rng.choice(NAMES) + rng.choice("伟芳娜敏静丽强磊军洋")
    phone = f"1{rng.choice('3578')}{rng.randrange(10**9):09d}"
    common: dict[str, Any] = {"channel": channel, "reporter_name": name, "reporter_phone": phone}
    if opened and rng.random() < 0.05:  # the same thing reported again, a few metres away
        first, category, lon, lat = rng.choice(opened)
        lon, lat = lon + rng.uniform(-1e-4, 1e-4), lat + rng.uniform(-1e-4, 1e-4)
        return Report(category, "同一处又有人反映", at, x=lon, y=lat, crs="wgs84", **common), first
    if channel == "hotline" and addresses:
        return Report(
            category, "市民来电反映", at, address=_misheard(rng, rng.choice(addresses)), **common
        ), None
    lon, lat = rng.choice(points)
    lon, lat = lon + rng.uniform(-2e-4, 2e-4), lat + rng.uniform(-2e-4, 2e-4)
    crs = rng.choices(list(CRS_SHARES), list(CRS_SHARES.values()))[0]
    if crs == "gcj02":
        gx, gy = wgs84_to_gcj02(lon, lat)
        lon, lat = float(gx), float(gy)
    elif crs == "bd09":
        bx, by = wgs84_to_bd09(lon, lat)
        lon, lat = float(bx), float(by)
    address = rng.choice(addresses) if addresses and rng.random() < 0.2 else None
    return Report(category, "现场发现问题", at, x=lon, y=lat, crs=crs, address=address, **common), None


def _misheard(rng: random.Random, text: str) -> str:
    """An address as an operator types it on the phone: one in five with a character dropped or doubled,
    or 号 written 号楼."""
    roll = rng.random()
    if roll >= 0.2 or len(text) < 6:
        return text
    i = rng.randrange(3, len(text) - 1)
    if roll < 0.08:
        return text[:i] + text[i + 1 :]
    if roll < 0.16:
        return text[:i] + text[i] + text[i:]
    return text.replace("号", "号楼", 1) if "号楼" not in text else text
