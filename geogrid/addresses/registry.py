"""What a standard-address registry file says, and which of its rows can be taken.

A registry (标准地址库) arrives as CSV (UTF-8 with or without a BOM, or GBK) or Excel ``.xlsx`` with the
Chinese headers of :data:`COLUMNS`, one address per row: a road and door number and/or a compound and
building (towns), or a village, group and door number (the country), a WGS-84 point, the building's id,
aliases and the dates it is in force. :func:`read_addresses` reads it, :func:`validate_addresses` checks
every row (naming the row and field at fault, never repeating a phone), :func:`write_addresses` writes the
same layout back, so an export re-imports unchanged, and :func:`address_text` gives an address's canonical
text. The micro-grid of an address is never part of it: it comes from the index of the version in force.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from geogrid.io.tables import read_table
from geogrid.people import shown
from geogrid.rosters import RowError, parse_date

# Canonical column, then the headers offices use for it (matched ignoring case, spaces and brackets).
COLUMNS: dict[str, tuple[str, ...]] = {
    "address_id": ("地址编码", "地址代码", "地址编号", "地址id"),
    "township": ("乡镇街道", "乡镇（街道）", "街道乡镇", "乡镇", "街道"),
    "road": ("道路", "街路巷", "路名", "道路名称"),
    "door": ("门牌号", "门牌", "门牌号码", "门牌号码（号）"),
    "compound": ("小区", "小区名称", "住宅小区", "小区（院落）"),
    "building": ("楼栋", "楼号", "楼栋号", "幢号"),
    "entrances": ("单元数", "单元数量"),
    "village": ("村", "行政村", "村（嘎查）", "嘎查村"),
    "group": ("组", "村民小组", "组号"),
    "lon": ("经度", "longitude", "lng"),
    "lat": ("纬度", "latitude"),
    "building_id": ("建筑编号", "建筑物编号", "楼栋编号", "建筑id"),
    "aliases": ("别名", "曾用名", "其他名称"),
    "valid_from": ("启用日期", "生效日期", "起始日期"),
    "valid_to": ("停用日期", "失效日期", "截止日期"),
    "text": ("标准地址", "标准地址名称", "完整地址"),
}
ADDRESS_COLUMNS: tuple[str, ...] = tuple(COLUMNS)
HEADERS_ZH = tuple(names[0] for names in COLUMNS.values())
REQUIRED = ("address_id", "lon", "lat", "valid_from")
PARTS = ("township", "road", "door", "compound", "building", "village", "group")
# Longest value a field may hold (the store's column widths).
LENGTHS = {"address_id": 64, "building_id": 64, "door": 32, "building": 32, "group": 32, "aliases": 500}
LENGTHS |= dict.fromkeys(("township", "road", "compound", "village"), 100)
LON_RANGE, LAT_RANGE = (73.0, 136.0), (3.0, 54.0)  # China, with its islands
ALIAS_SPLIT = re.compile(r"[;；|｜]")
FORMULA = re.compile(r"[=+@]|-[^\d]")  # CSV injection: what Excel runs when it opens an export
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# read_table holds every row while it reads (about 1.4 kB a row): 500,000 rows is ~700 MB, more than a
# county's registry (hundreds of thousands of doors at most) and as much as an upload should cost.
MAX_ROWS = 500_000
GOOD_COLUMNS = ["row", *ADDRESS_COLUMNS]


# ---- reading --------------------------------------------------------------------------------------
def read_addresses(source: str | Path | bytes, filename: str | None = None) -> pd.DataFrame:
    """Read a registry file (CSV or ``.xlsx``) into text columns named as :data:`COLUMNS`, plus ``row``.

    ``row`` numbers data rows from 1 (the header is not a row), as errors name them. ``source`` is a path
    or the file's bytes (then ``filename`` tells CSV from XLSX; bytes starting ``PK`` are read as XLSX).
    """
    return read_table(
        source, COLUMNS, REQUIRED, filename=filename, what="address registry", max_rows=MAX_ROWS
    )


# ---- the canonical text ---------------------------------------------------------------------------
def address_text(row: Mapping[str, Any]) -> str:
    """The canonical text of an address: township, road, door, compound, building, or village, group, door.

    >>> address_text({"township": "薛家湾镇", "road": "迎泽路", "door": "32", "compound": "康和小区",
    ...               "building": "5"})
    '薛家湾镇迎泽路32号康和小区5号楼'
    >>> address_text({"township": "暖水乡", "village": "榆树湾村", "group": "3", "door": "12"})
    '暖水乡榆树湾村3组12号'
    """
    part = {p: _text(row.get(p)) for p in PARTS}
    if part["village"] and part["group"]:
        door = f"{part['door']}号" if part["door"] else ""
        return f"{part['township']}{part['village']}{part['group']}组{door}"
    door = f"{part['door']}号" if part["door"] else ""
    building = f"{part['building']}号楼" if part["building"] else ""
    return f"{part['township']}{part['road']}{door}{part['compound']}{building}"


def split_aliases(value: Any) -> list[str]:
    """Aliases of a ``别名`` cell, separated by ``;``, ``；`` or ``|``."""
    return [a.strip() for a in ALIAS_SPLIT.split(_text(value)) if a.strip()]


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    return str(value).strip()


# ---- checking -------------------------------------------------------------------------------------
def validate_addresses(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[RowError]]:
    """Check registry rows (from :func:`read_addresses`): the good ones typed, and an error per bad row.

    Good rows have :data:`ADDRESS_COLUMNS` plus ``row``: text parts stripped (``None`` when empty; the
    ``号``/``号楼``/``组`` a door, building or group may carry dropped, full-width digits made ASCII), ``lon``
    and ``lat`` floats, ``entrances`` a nullable integer, dates as :class:`datetime.date` (``valid_to``
    ``None`` when open), ``aliases`` joined by ``;`` and ``text`` made by :func:`address_text` (the file's
    is ignored). A bad row is one error naming its row, field and address id: a control character, an
    overlong cell, no address id, neither road+door, compound+building nor village+group+door, a point
    that is not a number or lies outside China, a bad or reversed date, an address id seen before.
    """
    errors: list[RowError] = []
    good: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for number, rec in enumerate(frame.to_dict("records"), start=1):
        address, error = _check_row({"row": number, **rec}, seen)
        if error is not None:
            errors.append(error)
        else:
            assert address is not None
            good.append(address)
    out = pd.DataFrame(good, columns=GOOD_COLUMNS, dtype=object)  # object: an empty part stays None
    out["row"] = out["row"].astype(int)
    out["lon"] = out["lon"].astype(float)
    out["lat"] = out["lat"].astype(float)
    out["entrances"] = out["entrances"].astype("Int64")
    return out, errors


def _check_row(rec: Mapping[str, Any], seen: dict[str, int]) -> tuple[dict[str, Any] | None, RowError | None]:
    row = int(rec["row"])
    aid = _text(rec.get("address_id"))

    def bad(field: str, message: str) -> tuple[None, RowError]:
        return None, RowError(row, field, message, shown(aid) if aid and not CONTROL.search(aid) else None)

    for field in ADDRESS_COLUMNS:
        if field == "text":  # made, not read
            continue
        value = rec.get(field)
        if isinstance(value, str) and CONTROL.search(value):
            return bad(field, "holds a control character (a NUL, tab or line break in a cell)")
        length = LENGTHS.get(field)
        if length is not None and len(_text(value)) > length:
            return bad(field, f"longer than {length} characters")
        if length is not None and FORMULA.match(_text(value)):
            return bad(field, "starts like a spreadsheet formula (=, +, @); an export would run it in Excel")
    if not aid:
        return bad("address_id", f"empty ({COLUMNS['address_id'][0]} is required)")
    part = {p: _part(p, rec.get(p)) for p in PARTS}
    shape = _shape_error(part)
    if shape is not None:
        return bad(*shape)
    point: dict[str, float] = {}
    for field, (low, high), other in (("lon", LON_RANGE, LAT_RANGE), ("lat", LAT_RANGE, LON_RANGE)):
        raw = _text(rec.get(field))
        if not raw:
            return bad(field, f"empty ({COLUMNS[field][0]} is required)")
        try:
            value = float(unicodedata.normalize("NFKC", raw))
        except ValueError:
            return bad(field, f"not a number: {shown(raw)!r}")
        if not low <= value <= high:  # also false for NaN
            swapped = other[0] <= value <= other[1]
            hint = "; are longitude and latitude swapped?" if swapped else ""
            return bad(field, f"{shown(raw)} lies outside China ({low:g}–{high:g}){hint}")
        point[field] = value
    entrances: int | None = None
    raw = unicodedata.normalize("NFKC", _text(rec.get("entrances")))
    if raw:
        if not raw.isdigit() or int(raw) > 999:
            return bad("entrances", f"not a whole number of entrances (0–999): {shown(raw)!r}")
        entrances = int(raw)
    valid_from, valid_to = parse_date(rec.get("valid_from")), None
    if not _text(rec.get("valid_from")):
        return bad("valid_from", f"empty ({COLUMNS['valid_from'][0]} is required)")
    if valid_from is None:
        return bad("valid_from", f"not a date: {shown(rec.get('valid_from'))!r} (YYYY-MM-DD)")
    if _text(rec.get("valid_to")):
        valid_to = parse_date(rec.get("valid_to"))
        if valid_to is None:
            return bad("valid_to", f"not a date: {shown(rec.get('valid_to'))!r} (YYYY-MM-DD)")
        if valid_to <= valid_from:
            return bad("valid_to", f"{valid_to} is not after valid_from {valid_from}")
    if aid in seen:
        return bad("address_id", f"{shown(aid)} is also in row {seen[aid]}; an address id is unique")
    seen[aid] = row
    address: dict[str, Any] = {
        "row": row,
        "address_id": aid,
        **{p: part[p] or None for p in PARTS},
        "entrances": entrances,
        **point,
        "building_id": _text(rec.get("building_id")) or None,
        "aliases": ";".join(split_aliases(rec.get("aliases"))) or None,
        "valid_from": valid_from,
        "valid_to": valid_to,
    }
    address["text"] = address_text(address)
    return {c: address[c] for c in GOOD_COLUMNS}, None


SUFFIXES = {"door": ("号",), "building": ("号楼", "栋", "幢", "座", "号"), "group": ("组",)}


def _part(name: str, value: Any) -> str:
    """A part as stored: stripped; a door, building or group without its suffix, digits ASCII."""
    text = _text(value)
    if name in SUFFIXES:
        text = unicodedata.normalize("NFKC", text).strip()
        for suffix in SUFFIXES[name]:
            if text.endswith(suffix) and len(text) > len(suffix):
                text = text[: -len(suffix)].strip()
                break
    return text


def _shape_error(part: Mapping[str, str]) -> tuple[str, str] | None:
    """The field a record lacks to name a place: road+door, compound+building or village+group+door."""
    if part["village"] or part["group"]:
        for field in ("village", "group", "door"):
            if not part[field]:
                return field, "empty: a rural address has a village (村), group (组) and door number (门牌号)"
        return None
    if (part["road"] and part["door"]) or (part["compound"] and part["building"]):
        return None
    if part["road"]:
        return "door", "empty: a road (道路) needs a door number (门牌号)"
    if part["door"]:
        return "road", "empty: a door number (门牌号) needs its road (道路) or village and group (村, 组)"
    if part["compound"]:
        return "building", "empty: a compound (小区) needs a building (楼栋)"
    if part["building"]:
        return "compound", "empty: a building (楼栋) needs its compound (小区)"
    return "road", "no place: give road+door, compound+building, or village+group+door"


# ---- writing --------------------------------------------------------------------------------------
def address_rows(frame: pd.DataFrame) -> list[list[Any]]:
    """Addresses as registry rows under :data:`HEADERS_ZH` (ISO dates, the canonical text last)."""
    rows: list[list[Any]] = [list(HEADERS_ZH)]
    ordered = frame.sort_values(["address_id", "valid_from"], kind="stable") if len(frame) else frame
    for rec in ordered.to_dict("records"):
        out: list[Any] = []
        for column in ADDRESS_COLUMNS:
            value = rec.get(column)
            if column == "text":
                value = address_text(rec)
            elif column in ("lon", "lat"):
                value = repr(float(value))  # the shortest text that reads back as the same float
            elif isinstance(value, dt.date):
                value = value.isoformat()
            elif column == "entrances":
                value = "" if _text(value) == "" else str(int(value))
            else:
                value = _text(value)
            out.append(value)
        rows.append(out)
    return rows


def write_addresses(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write addresses as a registry file, CSV (UTF-8 with a BOM, as Excel opens it) or ``.xlsx`` by suffix."""
    path = Path(path)
    rows = address_rows(frame)
    if path.suffix.lower() == ".xlsx":
        from openpyxl import Workbook

        book = Workbook(write_only=True)
        sheet = book.create_sheet("标准地址")
        for row in rows:
            sheet.append(row)  # every cell as text: door 32-1 or id 0012 must not become a number or date
        book.save(path)
    else:
        with open(path, "w", encoding="utf-8-sig", newline="") as stream:
            csv.writer(stream).writerows(rows)
    return path
