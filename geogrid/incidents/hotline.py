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
from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo

from geogrid.errors import GeoGridError, InvalidCoordinates, InvalidIncident
from geogrid.incidents.catalogue import Catalogue
from geogrid.incidents.intake import CHANNELS, Report
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
    """The reports of ``rows`` (``first_row`` is the file's number of the first) and the row errors."""
    columns = header_map(header)
    zone = ZoneInfo(tz)
    good: list[tuple[int, Report]] = []
    errors: list[RowError] = []
    for n, row in enumerate(rows, start=first_row):
        get = {
            f: str(row[i]).strip() if i < len(row) and row[i] is not None else "" for f, i in columns.items()
        }
        if not any(get.values()):
            continue  # a blank line
        try:
            good.append((n, _report(get, catalogue, zone, source)))
        except GeoGridError as exc:
            field = str(exc.where.get("field", ""))
            errors.append(RowError(n, COLUMNS.get(field, (field,))[0] if field else "", shown(exc.detail)))
    return good, errors


def _report(get: Mapping[str, str], catalogue: Catalogue, zone: ZoneInfo, source: str) -> Report:
    """One row as a Report; GeoGridError naming the field at fault."""
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
