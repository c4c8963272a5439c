"""What does a hotline export say? Rows of a 12345 work-order file as reports, and the rows that cannot be.

A hotline platform exports work orders (工单) as CSV or Excel with its own column names; the usual ones are
recognised in Chinese or English (工单编号/order_id, 受理时间/reported_at, 事件类型/category, 诉求内容/
description, 事发地址/address, 经度/lon, 纬度/lat, 坐标系/crs, 来电人/name, 联系电话/phone, 渠道/channel).
Each good row becomes a :class:`~geogrid.incidents.intake.Report` whose idempotency key is the work order
number (or, without one, a hash of the row), so importing the same file again creates nothing twice; a
bad row becomes a RowError naming its row (as numbered in the file) and field, never repeating a phone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from geogrid.errors import GeoGridError, InvalidCoordinates, InvalidIncident
from geogrid.incidents.catalogue import Catalogue
from geogrid.incidents.intake import CHANNELS, FIELDS, Report, ReportColumns
from geogrid.io.tables import key
from geogrid.people import shown
from geogrid.rosters import RowError

COLUMNS: dict[str, tuple[str, ...]] = {
    "order_id": ("工单编号", "工单号", "编号", "order_id", "id"),
    "reported_at": ("受理时间", "来电时间", "上报时间", "reported_at", "time"),
    "category": ("事件类型", "诉求类别", "类别", "事件分类", "category"),
    "description": ("诉求内容", "问题描述", "内容", "description"),
    "address": ("事发地址", "地址", "address"),
    "lon": ("经度", "lon", "longitude", "x"),
    "lat": ("纬度", "lat", "latitude", "y"),
    "crs": ("坐标系", "crs"),
    "name": ("来电人", "姓名", "name"),
    "phone": ("联系电话", "电话", "phone"),
    "channel": ("渠道", "来源", "channel"),
}
REQUIRED = ("reported_at", "category", "description")
WIDTHS = {"order_id": 180, "description": 4000, "address": 200, "name": 100, "phone": 40, "crs": 20}
TIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y年%m月%d日 %H:%M",
)


def header_map(header: Sequence[str]) -> dict[str, int]:
    """Which column of ``header`` holds each field (by its names in :data:`COLUMNS`)."""
    keys = [key(h) for h in header]
    found: dict[str, int] = {}
    for field, names in COLUMNS.items():
        for name in names:
            if key(name) in keys:
                found[field] = keys.index(key(name))
                break
    return found


def missing(columns: Mapping[str, int]) -> list[str]:
    """The required fields a header lacks, by their first (Chinese) name."""
    return [COLUMNS[f][0] for f in REQUIRED if f not in columns]


def reports(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    first_row: int,
    catalogue: Catalogue,
    *,
    tz: str = "Asia/Shanghai",
    source: str = "",
) -> tuple[list[tuple[int, Report]], list[RowError]]:
    """:func:`read`, each good row as (its number in the file, its Report)."""
    numbers, good, errors = read(header, rows, first_row, catalogue, tz=tz, source=source)
    return [(n, good.report(i)) for i, n in enumerate(numbers)], errors


def read(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    first_row: int,
    catalogue: Catalogue,
    *,
    tz: str = "Asia/Shanghai",
    source: str = "",
) -> tuple[list[int], ReportColumns, list[RowError]]:
    """The good rows of ``rows`` (``first_row`` is the file's number of the first): their numbers and their
    reports, column by column; and the row errors.

    Read column by column; a row the quick checks doubt (an empty or too wide field, a category or
    coordinates that do not read, no work order number) is read by :func:`_report`, which names its fault.
    """
    columns = header_map(header)
    zone = ZoneInfo(tz)
    empty = [""] * len(rows)
    text = {f: _texts(rows, i) for f, i in columns.items()}
    order, when, kind, said = (
        text.get(f, empty) for f in ("order_id", "reported_at", "category", "description")
    )
    address, lon, lat, crs = (text.get(f, empty) for f in ("address", "lon", "lat", "crs"))
    name, phone, channel = (text.get(f, empty) for f in ("name", "phone", "channel"))
    doubt = [not (o and t and c and d) for o, t, c, d in zip(order, when, kind, said, strict=True)]
    for field, most in WIDTHS.items():
        for k in [k for k, v in enumerate(text.get(field, ())) if len(v) > most]:
            doubt[k] = True
    for cells in text.values():
        if "\x00" in "".join(cells):  # a NUL character: text cannot carry it
            for k in [k for k, v in enumerate(cells) if "\x00" in v]:
                doubt[k] = True
    codes: dict[str, str | None] = {}
    for value in set(kind):
        try:
            codes[value] = catalogue.get(value).code
        except GeoGridError:
            codes[value] = None  # read again by _report, which names the fault
    numbers: list[int] = []
    good = ReportColumns(*([] for _ in FIELDS))
    columns_out = [getattr(good, f) for f in FIELDS]
    errors: list[RowError] = []
    blank = [not any(cells) for cells in zip(*text.values(), strict=True)] if text else [True] * len(rows)
    for k, n in enumerate(range(first_row, first_row + len(rows))):
        if blank[k]:
            continue  # a blank line
        try:
            quick = None if doubt[k] else _quick(k, zone, codes, when, kind, lon, lat)
            if quick is None:
                report = _report({f: v[k] for f, v in text.items()}, catalogue, zone, source)
                values: tuple[Any, ...] = tuple(getattr(report, f) for f in FIELDS)
            else:
                reported, code, x, y = quick
                ch = channel[k] or "hotline"
                values = (
                    code, said[k], reported, ch if ch in CHANNELS else "hotline",
                    crs[k] or ("wgs84" if x is not None else None), x, y, address[k] or None, (),
                    name[k] or None, phone[k] or None, f"hotline:{order[k]}", {"order_id": order[k]},
                )  # fmt: skip  # in FIELDS' order
        except GeoGridError as exc:
            field = str(exc.where.get("field", ""))
            errors.append(RowError(n, COLUMNS.get(field, (field,))[0] if field else "", shown(exc.detail)))
            continue
        numbers.append(n)
        for column, value in zip(columns_out, values, strict=True):
            column.append(value)
    return numbers, good, errors


def _texts(rows: Sequence[Sequence[Any]], i: int) -> list[str]:
    """Column ``i`` of ``rows`` as stripped text ('' where a row is short or the cell empty)."""
    try:
        cells = [row[i] for row in rows]
    except IndexError:
        cells = [row[i] if i < len(row) else None for row in rows]
    if all(type(c) is str for c in cells):
        return [c.strip() for c in cells]
    return [str(c).strip() if c is not None else "" for c in cells]


def _quick(
    k: int,
    zone: ZoneInfo,
    codes: Mapping[str, str | None],
    when: list[str],
    kind: list[str],
    lon: list[str],
    lat: list[str],
) -> tuple[dt.datetime, str, float | None, float | None] | None:
    """Row ``k``'s time, category code and coordinates when they read plainly; None to read it the long
    way (:func:`_report`); InvalidIncident for a time that is none, as ``_report`` would."""
    code = codes[kind[k]]
    if code is None:
        return None
    reported = _time(when[k], zone)
    x = y = None
    if lon[k] or lat[k]:
        try:
            x, y = float(lon[k]), float(lat[k])
        except ValueError:
            return None
        if not (math.isfinite(x) and math.isfinite(y)):
            return None
    return reported, code, x, y


def _report(get: Mapping[str, str], catalogue: Catalogue, zone: ZoneInfo, source: str) -> Report:
    """One row as a Report; GeoGridError naming the field at fault."""
    for field, value in get.items():
        if "\x00" in value:
            raise InvalidIncident(f"{COLUMNS[field][0]} holds a NUL character (\\0)", field=field)
    for field in REQUIRED:
        if not get.get(field):
            raise InvalidIncident(f"{COLUMNS[field][0]} is empty", field=field)
    for field, most in WIDTHS.items():  # as wide as the columns they are stored in
        if len(get.get(field, "")) > most:
            raise InvalidIncident(f"{COLUMNS[field][0]} is longer than {most} characters", field=field)
    when = _time(get["reported_at"], zone)
    category = catalogue.get(get["category"]).code
    x = y = None
    if get.get("lon") or get.get("lat"):
        try:
            x, y = float(get.get("lon", "")), float(get.get("lat", ""))
        except ValueError as exc:
            raise InvalidCoordinates(
                f"经度/纬度 {get.get('lon', '')!r}, {get.get('lat', '')!r} are not numbers", field="lon"
            ) from exc
    order = get.get("order_id", "")
    if order:
        idem = f"hotline:{order}"
    else:  # no work order number: the row itself is its identity
        idem = (
            "hotline-row:"
            + hashlib.sha256("\x1f".join(f"{k}={v}" for k, v in sorted(get.items())).encode()).hexdigest()[
                :40
            ]
        )
    channel = get.get("channel") or "hotline"
    return Report(
        category=category,
        description=get["description"],
        reported_at=when,
        channel=channel if channel in CHANNELS else "hotline",
        crs=get.get("crs") or ("wgs84" if x is not None else None),
        x=x,
        y=y,
        address=get.get("address") or None,
        reporter_name=get.get("name") or None,
        reporter_phone=get.get("phone") or None,
        key=idem,
        extra={"order_id": order} if order else {},  # not the file's name: a renamed copy is the same export
    )


def _time(text: str, zone: ZoneInfo) -> dt.datetime:
    """A hotline time (2026-11-03 09:30[:00], ISO with or without a zone) as an aware datetime."""
    try:
        value = dt.datetime.fromisoformat(text.replace("/", "-"))
    except ValueError:
        value = None
        for fmt in TIME_FORMATS:
            try:
                value = dt.datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if value is None:
        raise InvalidIncident(
            f"受理时间 {text[:30]!r} is not a time such as 2026-11-03 09:30:00", field="reported_at"
        )
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)
