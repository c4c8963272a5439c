"""What a roster file says, and which of its rows can be taken: CSV and Excel rosters, row by row.

Rosters arrive as CSV (UTF-8 with or without a BOM, or GBK) or Excel ``.xlsx`` with Chinese or English
headers, one row per post; :func:`read_roster` reads them in bounded memory, :func:`validate_rows` checks
every row and says which row and field is at fault (never repeating a phone), and :func:`write_roster`
writes the same layout back, so an export re-imports unchanged.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from geogrid.io.tables import read_table
from geogrid.people import KIND_LABELS, POST_COLUMNS, ROLE_LABELS, ROLE_LEVELS, Kind, Role, overlaps, shown

# Canonical column, then the headers offices use for it (matched ignoring case and spaces).
COLUMNS: dict[str, tuple[str, ...]] = {
    "person_id": ("人员编号", "工号", "人员id", "编号"),
    "name": ("姓名", "名字"),
    "phone": ("手机号", "联系电话", "电话", "手机", "手机号码"),
    "kind": ("人员类别", "类别", "人员类型"),
    "role": ("岗位", "职务", "职责"),
    "unit_code": ("单位编码", "网格编码", "编码", "unit", "code"),
    "valid_from": ("起始日期", "任职日期", "开始日期", "from"),
    "valid_to": ("结束日期", "离任日期", "截止日期", "to"),
    "buildings": ("包保楼栋", "联系楼栋", "楼栋"),
}
REQUIRED = ("name", "phone", "kind", "role", "unit_code", "valid_from")
HEADERS_ZH = (
    "人员编号",
    "姓名",
    "手机号",
    "人员类别",
    "岗位",
    "单位编码",
    "起始日期",
    "结束日期",
    "包保楼栋",
)
MOBILE = re.compile(r"1[3-9]\d{9}", re.ASCII)
LANDLINE = re.compile(r"0\d{2,3}-?\d{7,8}", re.ASCII)
MAX_ROWS = 100_000  # a county's roster is thousands of rows; more is not a roster


@dataclass(frozen=True)
class RowError:
    """One row of a roster that cannot be taken, and why (never repeating a phone number)."""

    row: int
    field: str
    message: str
    person_id: str | None = None

    def __str__(self) -> str:
        who = f" ({self.person_id})" if self.person_id else ""
        return f"row {self.row}, {self.field}{who}: {self.message}"


def normalize_phone(value: str) -> str | None:
    """A phone as stored (digits, one dash in a landline), or None when it is not a Chinese phone number.

    >>> normalize_phone(" +86 138 1234 1234 ")
    '13812341234'
    >>> normalize_phone("12345") is None
    True
    """
    text = re.sub(r"[\s()（）]", "", value)
    text = re.sub(r"^(\+86|0086|86(?=1[3-9]\d{9}$))-?", "", text)
    if MOBILE.fullmatch(text) or LANDLINE.fullmatch(text):
        return text
    return None


def parse_kind(value: str) -> Kind | None:
    """The Kind named by its English name or its Chinese label, or None."""
    return _parse(value, Kind, KIND_LABELS)


def parse_role(value: str) -> Role | None:
    """The Role named by its English name or its Chinese label, or None."""
    return _parse(value, Role, ROLE_LABELS)


def _parse(value: str, enum_type: Any, labels: Mapping[Any, str]) -> Any:
    text = value.strip()
    for member in enum_type:
        if text.lower() == member.value or text == labels[member]:
            return member
    if enum_type is Role and text in {"专职网格员", "兼职网格员"}:
        return Role.worker
    return None


def parse_date(value: Any) -> dt.date | None:
    """A date from a roster cell: ISO ``2026-03-01``, ``2026/3/1``, ``2026.3.1`` or an Excel date."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    match = re.fullmatch(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?", str(value).strip())
    if not match:
        return None
    try:
        return dt.date(*(int(g) for g in match.groups()))
    except ValueError:
        return None


def split_buildings(value: str) -> list[str]:
    """Building ids of a "1+X" cell, separated by ``;``, ``；``, ``、`` or ``,``."""
    return [b.strip() for b in re.split(r"[;；、,，\n]", value) if b.strip()]


def derived_person_id(name: str, phone: str) -> str:
    """A stable id for a roster row without one (from name and phone, which it does not reveal)."""
    return "H" + hashlib.sha256(f"{name}|{phone}".encode()).hexdigest()[:12]


# ---- reading --------------------------------------------------------------------------------------
def read_roster(source: str | Path | bytes, *, filename: str | None = None) -> pd.DataFrame:
    """Read a roster file (CSV or ``.xlsx``) into text columns named as :data:`COLUMNS`, plus ``row``.

    ``row`` numbers data rows from 1 (the header is not a row), as errors name them. ``source`` is a path
    or the file's bytes (then ``filename`` tells CSV from XLSX; bytes starting ``PK`` are read as XLSX).
    """
    return read_table(source, COLUMNS, REQUIRED, filename=filename, what="roster", max_rows=MAX_ROWS)


# ---- checking -------------------------------------------------------------------------------------
def validate_rows(
    rows: pd.DataFrame,
    units: Mapping[str, str],
    existing: pd.DataFrame | None = None,
    buildings: Mapping[str, str] | None = None,
) -> tuple[pd.DataFrame, list[RowError]]:
    """Check roster rows: the good ones as posts (with an ``action``), and an error per bad row.

    ``units`` maps unit code to level; ``existing`` holds stored posts (posts frame); ``buildings`` maps
    building id to micro-grid code. ``action`` is ``new``, ``unchanged`` (the same post is stored) or
    ``end`` (a stored open post the row closes with its ``valid_to``).
    """
    errors: list[RowError] = []
    good: list[dict[str, Any]] = []
    seen: dict[str, tuple[str, str, int]] = {}  # person_id -> (name, phone, row) in this file
    held = _held(existing)
    for rec in rows.to_dict("records"):
        post, error = _check_row(rec, units, buildings, seen)
        if error is None:
            assert post is not None
            post["action"], error = _against(post, held)
        if error is not None:
            errors.append(error)
            continue
        assert post is not None
        held.setdefault((post["person_id"], post["role"], post["unit_code"]), []).append(
            (post["valid_from"], post["valid_to"], f"row {post['row']}", post)
        )
        good.append(post)
    frame = pd.DataFrame(good, columns=["row", *POST_COLUMNS[1:], "action"])
    return frame, errors


def _check_row(
    rec: Mapping[str, Any],
    units: Mapping[str, str],
    buildings: Mapping[str, str] | None,
    seen: dict[str, tuple[str, str, int]],
) -> tuple[dict[str, Any] | None, RowError | None]:
    row = int(rec["row"])
    pid = str(rec.get("person_id") or "").strip() or None

    def bad(field: str, message: str) -> tuple[None, RowError]:
        return None, RowError(row, field, message, pid)

    for field in REQUIRED:
        if rec.get(field) in (None, ""):
            return bad(field, f"empty ({COLUMNS[field][0]} is required)")
    name = str(rec["name"]).strip()
    if len(name) > 100 or not name.isprintable():
        return bad("name", "not a name (printable, at most 100 characters)")
    phone = normalize_phone(str(rec["phone"]))
    if phone is None:
        return bad("phone", "not a mobile (11 digits from 13-19) or landline (0xxx-xxxxxxx) number")
    pid = pid or derived_person_id(name, phone)
    if len(pid) > 32 or not pid.isprintable():
        return bad("person_id", "not an id (printable, at most 32 characters)")
    kind, role = parse_kind(str(rec["kind"])), parse_role(str(rec["role"]))
    if kind is None:
        return bad("kind", f"unknown kind {shown(rec['kind'])!r}; one of {', '.join(KIND_LABELS.values())}")
    if role is None:
        return bad("role", f"unknown role {shown(rec['role'])!r}; one of {', '.join(ROLE_LABELS.values())}")
    code = str(rec["unit_code"]).strip()
    level = units.get(code)
    if level is None:
        return bad("unit_code", f"no unit {shown(code)!r} in the set")
    if level not in ROLE_LEVELS[role]:
        return bad("unit_code", f"{code} is a {level}; a {ROLE_LABELS[role]} post names a {_levels(role)}")
    valid_from, valid_to = parse_date(rec["valid_from"]), None
    if valid_from is None:
        return bad("valid_from", f"not a date: {shown(rec['valid_from'])!r} (YYYY-MM-DD)")
    if rec.get("valid_to") not in (None, ""):
        valid_to = parse_date(rec["valid_to"])
        if valid_to is None:
            return bad("valid_to", f"not a date: {shown(rec['valid_to'])!r} (YYYY-MM-DD)")
        if valid_to <= valid_from:
            return bad("valid_to", f"{valid_to} is not after valid_from {valid_from}")
    listed = split_buildings(str(rec.get("buildings") or ""))
    for building in listed:
        where = None if buildings is None else buildings.get(building)
        if buildings is not None and where is None:
            return bad("buildings", f"no building {shown(building)!r} in the set")
        if where is not None and not where.startswith(code):
            return bad("buildings", f"building {building} lies in {where}, outside {code}")
    if pid in seen and seen[pid][:2] != (name, phone):
        field = "name" if seen[pid][0] != name else "phone"
        return bad(field, f"{pid} has another {field} in row {seen[pid][2]}")
    seen.setdefault(pid, (name, phone, row))
    post = {
        "row": row,
        "person_id": pid,
        "name": name,
        "phone": phone,
        "kind": kind.value,
        "role": role.value,
        "unit_code": code,
        "valid_from": valid_from,
        "valid_to": valid_to,
        "buildings": listed,
    }
    return post, None


Held = dict[tuple[str, str, str], list[tuple[dt.date, dt.date | None, str, dict[str, Any]]]]


def _held(existing: pd.DataFrame | None) -> Held:
    held: Held = {}
    if existing is None:
        return held
    for rec in existing.to_dict("records"):
        key = (rec["person_id"], rec["role"], rec["unit_code"])
        valid_to = None if pd.isna(rec["valid_to"]) else rec["valid_to"]
        held.setdefault(key, []).append((rec["valid_from"], valid_to, f"stored post {rec['post_id']}", rec))
    return held


def _against(post: dict[str, Any], held: Held) -> tuple[str, RowError | None]:
    """What the row does to the posts already held: new, unchanged, end, or an overlap error."""
    for start, end, where, other in held.get((post["person_id"], post["role"], post["unit_code"]), []):
        stored = where.startswith("stored")
        same_start = start == post["valid_from"] and list(other["buildings"]) == post["buildings"]
        if stored and same_start and end == post["valid_to"]:
            return "unchanged", None
        if stored and same_start and end is None and post["valid_to"] is not None:
            return "end", None
        if overlaps(start, end, post["valid_from"], post["valid_to"]):
            label = ROLE_LABELS[Role(post["role"])]
            message = f"already holds {label} on {post['unit_code']} from {start} ({where}); end that first"
            return "", RowError(post["row"], "valid_from", message, post["person_id"])
    return "new", None


def _levels(role: Role) -> str:
    return " or ".join(sorted(ROLE_LEVELS[role]))


# ---- writing --------------------------------------------------------------------------------------
def roster_rows(posts: pd.DataFrame) -> list[list[str]]:
    """Posts as roster rows under :data:`HEADERS_ZH` (Chinese labels, ISO dates, ``;``-joined buildings)."""
    rows = [list(HEADERS_ZH)]
    for rec in posts.sort_values(["unit_code", "role", "person_id", "valid_from"]).to_dict("records"):
        valid_to = rec["valid_to"]
        rows.append(
            [
                rec["person_id"],
                rec["name"],
                rec["phone"],
                KIND_LABELS[Kind(rec["kind"])],
                ROLE_LABELS[Role(rec["role"])],
                rec["unit_code"],
                rec["valid_from"].isoformat(),
                "" if valid_to is None or pd.isna(valid_to) else valid_to.isoformat(),
                ";".join(rec["buildings"]),
            ]
        )
    return rows


def write_roster(posts: pd.DataFrame, path: str | Path) -> Path:
    """Write posts as a roster file, CSV (UTF-8 with a BOM, as Excel opens it) or ``.xlsx`` by suffix."""
    path = Path(path)
    rows = roster_rows(posts)
    if path.suffix.lower() == ".xlsx":
        from openpyxl import Workbook

        book = Workbook(write_only=True)
        sheet = book.create_sheet("花名册")
        for row in rows:
            sheet.append(row)
        book.save(path)
    else:
        with open(path, "w", encoding="utf-8-sig", newline="") as stream:
            csv.writer(stream).writerows(rows)
    return path
