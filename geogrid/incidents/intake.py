"""What did a channel report, and where? A report as received, checked, and placed on the day it was made.

Every channel (the JSON API, Open311, a hotline export) turns what it received into a :class:`Report`
and calls :func:`locate` with the indexes of the boundary versions by date: the report's coordinates (any
CRS the lookup takes) and address text are placed with the index of the version in force on the day it
was reported (in the calendar's time zone), so a backdated report gets the grids of its date.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson

from geogrid.addresses.matcher import Match, Matcher
from geogrid.crs import WGS84, earth_point, normalize_crs, transform
from geogrid.errors import GeoGridError, InvalidAddress, InvalidCoordinates, InvalidIncident
from geogrid.incidents.placement import Placed, Placement, place_columns
from geogrid.index import GridIndex

CHANNELS = ("api", "app", "wechat", "hotline", "worker", "open311", "import")
MAX_MEDIA = 20
FUTURE_SLACK = dt.timedelta(minutes=5)  # clocks differ: a report this far ahead of ours is still taken


@dataclass(frozen=True)
class Report:
    """An incident as a channel received it (coordinates as given; where it lies is a Placement)."""

    category: str
    description: str
    reported_at: dt.datetime
    channel: str = "api"
    crs: str | None = None
    x: float | None = None
    y: float | None = None
    address: str | None = None
    media: tuple[str, ...] = ()
    reporter_name: str | None = None
    reporter_phone: str | None = None
    key: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.reported_at.tzinfo is None:
            raise InvalidIncident(
                "reported_at needs a time zone (2026-12-03T09:30:00+08:00)", field="reported_at"
            )
        if self.channel not in CHANNELS:
            raise InvalidIncident(
                f"channel {self.channel[:20]!r} is not one of {', '.join(CHANNELS)}", field="channel"
            )
        if not self.description.strip():
            raise InvalidIncident("description is empty", field="description")
        for name in TEXTS:  # no database stores it in text (PostgreSQL refuses it)
            if "\x00" in (getattr(self, name) or ""):
                raise InvalidIncident(f"{name} holds a NUL character (\\0)", field=name)
        if (self.x is None) != (self.y is None):
            raise InvalidCoordinates("give both coordinates or neither", field="x" if self.x is None else "y")
        if self.x is not None and not (math.isfinite(self.x) and math.isfinite(self.y or 0.0)):
            raise InvalidCoordinates("coordinates must be finite numbers", field="coordinates")
        if len(self.media) > MAX_MEDIA:
            raise InvalidIncident(f"{len(self.media)} media URLs; at most {MAX_MEDIA}", field="media")
        for i, url in enumerate(self.media):
            if not url.startswith(("http://", "https://")) or len(url) > 2000 or not url.isprintable():
                raise InvalidIncident(f"media[{i}] is not an http(s) URL", field=f"media[{i}]")

    def fingerprint(self) -> str:
        """A hash of what the report says (not its key): a reused key must come with the same report."""
        return _fingerprint(
            self.category, self.description, self.reported_at, self.channel, self.crs, self.x, self.y,
            self.address, self.media, self.reporter_name, self.reporter_phone, self.extra,
        )  # fmt: skip


FIELDS = [f for f in Report.__dataclass_fields__]
TEXTS = ("category", "description", "channel", "crs", "address", "reporter_name", "reporter_phone", "key")


def _fingerprint(*values: Any) -> str:
    """:meth:`Report.fingerprint` of a report's fields, in their order."""
    data = list(values)  # not dataclasses.asdict: it deep-copies, and an import hashes every row
    data[2] = data[2].astimezone(dt.UTC).isoformat()
    data[8], data[11] = list(data[8]), dict(data[11])
    return hashlib.sha256(
        orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    ).hexdigest()


@dataclass
class ReportColumns:
    """Many reports, column by column (a hotline chunk): what :class:`Report` holds, without an object a
    row. Rows put in here directly must hold what ``Report`` checks (hotline's quick reading does)."""

    category: list[str]
    description: list[str]
    reported_at: list[dt.datetime]
    channel: list[str]
    crs: list[str | None]
    x: list[float | None]
    y: list[float | None]
    address: list[str | None]
    media: list[tuple[str, ...]]
    reporter_name: list[str | None]
    reporter_phone: list[str | None]
    key: list[str | None]
    extra: list[Mapping[str, Any]]

    @classmethod
    def of(cls, reports: Sequence[Report]) -> ReportColumns:
        """``reports`` column by column."""
        return cls(*([getattr(r, f) for r in reports] for f in FIELDS))

    def __len__(self) -> int:
        return len(self.category)

    def report(self, i: int) -> Report:
        """Row ``i`` as a Report."""
        return Report(*(getattr(self, f)[i] for f in FIELDS))

    def take(self, rows: Sequence[int]) -> ReportColumns:
        """Rows ``rows``, in that order."""
        return ReportColumns(*([getattr(self, f)[i] for i in rows] for f in FIELDS))

    def fingerprints(self) -> list[str]:
        """Each row's :meth:`Report.fingerprint`."""
        return [_fingerprint(*values) for values in zip(*(getattr(self, f) for f in PRINTED), strict=True)]


PRINTED = [f for f in FIELDS if f != "key"]
assert FIELDS.index("key") == len(FIELDS) - 2, "the fingerprint takes every field but the key, in order"


def wgs84_point(x: float, y: float, crs: str | None) -> tuple[float, float]:
    """(x, y) in ``crs`` (default WGS-84) as a WGS-84 (lon, lat); InvalidCoordinates if it is no point."""
    name = normalize_crs(crs or WGS84)
    if name in (WGS84, "gcj02", "bd09", "cgcs2000") and not (abs(x) <= 180 and abs(y) <= 90):
        raise InvalidCoordinates(f"({x}, {y}) is not a longitude, latitude in {name}", field="coordinates")
    point = (x, y) if name == WGS84 else earth_point(x, y, name)
    if point is None:
        raise InvalidCoordinates(f"({x}, {y}) is not a point in {name}", field="coordinates")
    return point


def locate(
    report: Report,
    index_on: Callable[[dt.date], GridIndex],
    matcher: Matcher | None,
    *,
    tz: str = "Asia/Shanghai",
    now: dt.datetime | None = None,
    disagree_m: float = 200.0,
    near_m: float = 20.0,
    outside: str = "refuse",
    matched: Mapping[str, Match | InvalidAddress] | None = None,
) -> Placement:
    """Where ``report`` lies, with the index of the version in force on its day (``index_on(date)``);
    ``matched``: address texts already matched (a batch matches its texts at once)."""
    found = locate_many(
        [report], index_on, matcher, tz=tz, now=now, disagree_m=disagree_m, near_m=near_m, outside=outside,
        matched=matched,
    )[0]  # fmt: skip
    if isinstance(found, GeoGridError):
        raise found
    return found


def locate_many(
    reports: Sequence[Report],
    index_on: Callable[[dt.date], GridIndex],
    matcher: Matcher | None,
    **options: Any,
) -> list[Placement | GeoGridError]:
    """:func:`locate` for many reports: :func:`locate_columns`, each one's Placement or error in its place."""
    return locate_columns(ReportColumns.of(reports), index_on, matcher, **options).items()  # type: ignore[return-value]


def locate_columns(
    reports: ReportColumns,
    index_on: Callable[[dt.date], GridIndex],
    matcher: Matcher | None,
    *,
    tz: str = "Asia/Shanghai",
    now: dt.datetime | None = None,
    disagree_m: float = 200.0,
    near_m: float = 20.0,
    outside: str = "refuse",
    matched: Mapping[str, Match | InvalidAddress] | None = None,
) -> Placed:
    """:func:`locate` for many reports (a hotline export's chunk): the same answers, the errors among the
    Placed's; coordinates converted per CRS and located per boundary version as arrays."""
    now = now or dt.datetime.now(dt.UTC)
    n = len(reports)
    errors: dict[int, Exception] = {}
    lon, lat = np.full(n, np.nan), np.full(n, np.nan)
    by_crs: dict[str, list[int]] = {}
    latest = now + FUTURE_SLACK
    for i, (when, x, text, crs) in enumerate(
        zip(reports.reported_at, reports.x, reports.address, reports.crs, strict=True)
    ):
        if when > latest:
            errors[i] = InvalidIncident(
                f"reported_at {when.isoformat()} is in the future", field="reported_at"
            )
        elif x is None and not text:
            errors[i] = InvalidIncident("give coordinates (x, y, crs) or an address", field="coordinates")
        elif x is not None:
            by_crs.setdefault(crs or WGS84, []).append(i)
    for crs, rows in by_crs.items():
        _to_wgs84(reports, rows, crs, lon, lat, errors)
    matches: list[Match | None] = [None] * n
    for i, text in enumerate(reports.address):
        if not text or i in errors:
            continue
        if matcher is None:
            errors[i] = InvalidIncident(
                "this set has no address registry to place an address with", field="address"
            )
            continue
        found = matched.get(text) if matched is not None else None
        try:
            if isinstance(found, InvalidAddress):
                raise found
            matches[i] = found if found is not None else matcher.match(text)
        except InvalidAddress as exc:
            if np.isnan(lon[i]):
                errors[i] = InvalidAddress(exc.detail, field="address")
    zone = ZoneInfo(tz)
    by_day: dict[dt.date, list[int]] = {}
    for i, when in enumerate(reports.reported_at):
        if i not in errors:
            by_day.setdefault(when.astimezone(zone).date(), []).append(i)
    by_index: dict[int, tuple[GridIndex, list[int]]] = {}
    for day, rows in by_day.items():
        try:
            index = index_on(day)
        except GeoGridError as exc:
            if exc.status != 404:
                raise
            for i in rows:
                errors[i] = InvalidIncident(
                    f"no boundary version was in force on {day.isoformat()}, the day it was reported",
                    field="reported_at",
                )
            continue
        by_index.setdefault(id(index), (index, []))[1].extend(rows)
    out = Placed.empty(n)
    for index, rows in by_index.values():
        rows.sort()
        picked = np.array(rows)
        part = place_columns(
            index, lon[picked], lat[picked], [matches[i] for i in rows],
            disagree_m=disagree_m, near_m=near_m, outside=outside,
        )  # fmt: skip
        out.put(rows, part)
    out.errors.update(errors)
    return out


def _to_wgs84(
    reports: ReportColumns,
    rows: list[int],
    crs: str,
    lon: np.ndarray,
    lat: np.ndarray,
    errors: dict[int, Exception],
) -> None:
    """The points of ``rows`` (all in ``crs``) as WGS-84 into ``lon``/``lat``; an error in ``errors`` for each bad one."""
    try:
        name = normalize_crs(crs)
    except GeoGridError as exc:
        for i in rows:
            errors[i] = exc
        return
    xs, ys = reports.x, reports.y
    if name not in (WGS84, "gcj02", "bd09", "cgcs2000"):  # a projected CRS: the careful one-by-one way
        for i in rows:
            try:
                lon[i], lat[i] = wgs84_point(xs[i], ys[i], name)  # type: ignore[arg-type]
            except GeoGridError as exc:
                errors[i] = exc
        return
    x = np.array([xs[i] for i in rows], dtype=np.float64)
    y = np.array([ys[i] for i in rows], dtype=np.float64)
    ok = (np.abs(x) <= 180) & (np.abs(y) <= 90)
    for k in np.flatnonzero(~ok).tolist():
        errors[rows[k]] = InvalidCoordinates(
            f"({x[k]}, {y[k]}) is not a longitude, latitude in {name}", field="coordinates"
        )
    good = np.flatnonzero(ok)
    if not len(good):
        return
    gx, gy = (x[good], y[good]) if name == WGS84 else transform(x[good], y[good], name, WGS84)
    index = np.array(rows)[good]
    lon[index], lat[index] = gx, gy
