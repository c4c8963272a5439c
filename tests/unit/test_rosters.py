"""Roster files and posts: every encoding and Excel, each bad-row kind by row and field, as of a date."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from openpyxl import Workbook

from geogrid import people, rosters
from geogrid.errors import MissingColumn, UnreadableFile

UNITS = {"150622001": "street", "150622001001": "community", "150622001001001": "grid"}
UNITS |= {"150622001001001001": "microgrid"}
BUILDINGS = {"150622001001001001-01": "150622001001001001", "150622001001002001-01": "150622001001002001"}
HEADER = ["人员编号", "姓名", "手机号", "人员类别", "岗位", "单位编码", "起始日期", "结束日期", "包保楼栋"]
GOOD = [
    ["P1", "张伟", "13812341234", "网格长", "网格长", "150622001001001", "2026-01-01", "", ""],
    [
        "P2",
        "李娜",
        "13900001111",
        "专职网格员",
        "网格员",
        "150622001001001",
        "2026/1/1",
        "",
        "150622001001001001-01",
    ],
    ["P3", "王芳", "0477-1234567", "社区书记", "社区书记", "150622001001", "2025-03-01", "2026-11-30", ""],
]


def csv_bytes(rows: list[list[str]], encoding: str) -> bytes:
    return "\r\n".join(",".join(r) for r in [HEADER, *rows]).encode(encoding) + b"\r\n"


def xlsx_bytes(rows: list[list[object]], tmp_path) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.append(["某某社区网格员花名册"])  # a title row above the header, as offices make them
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    path = tmp_path / "roster.xlsx"
    book.save(path)
    return path.read_bytes()


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
def test_csv_in_every_encoding_reads_the_same(encoding: str) -> None:
    frame = rosters.read_roster(csv_bytes(GOOD, encoding), filename="r.csv")
    assert frame["name"].tolist() == ["张伟", "李娜", "王芳"]
    assert frame["row"].tolist() == [1, 2, 3]
    good, errors = rosters.validate_rows(frame, UNITS, buildings=BUILDINGS)
    assert errors == []
    assert good["role"].tolist() == ["leader", "worker", "secretary"]
    assert good["valid_from"].tolist()[1] == dt.date(2026, 1, 1)
    assert good["buildings"].tolist()[1] == ["150622001001001001-01"]


def test_xlsx_with_numbers_and_dates_as_excel_stores_them(tmp_path) -> None:
    rows: list[list[object]] = [[c for c in r] for r in GOOD]
    rows[0][2] = 13812341234  # Excel keeps a phone typed in a cell as a number
    rows[0][6] = dt.datetime(2026, 1, 1)
    frame = rosters.read_roster(xlsx_bytes(rows, tmp_path), filename="r.xlsx")
    good, errors = rosters.validate_rows(frame, UNITS, buildings=BUILDINGS)
    assert errors == []
    assert good["phone"].tolist()[0] == "13812341234"
    assert good["valid_from"].tolist()[0] == dt.date(2026, 1, 1)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({5: "150622999"}, "unit_code"),  # unknown unit code
        ({2: "1381234"}, "phone"),  # malformed phone
        ({2: "23812341234"}, "phone"),
        ({4: "网格长", 5: "150622001001"}, "unit_code"),  # a leader names a grid, not a community
        ({6: "2026-13-01"}, "valid_from"),
        ({7: "2025-01-01"}, "valid_to"),  # ends before it starts
        ({3: "队长"}, "kind"),
        ({4: "队长"}, "role"),
        ({8: "150622001001002001-01"}, "buildings"),  # a building of another grid
        ({8: "nowhere-01"}, "buildings"),
    ],
)
def test_each_bad_row_is_named_by_row_and_field(change: dict[int, str], field: str) -> None:
    bad = list(GOOD[1])
    for i, value in change.items():
        bad[i] = value
    frame = rosters.read_roster(csv_bytes([GOOD[0], bad], "utf-8"), filename="r.csv")
    good, errors = rosters.validate_rows(frame, UNITS, buildings=BUILDINGS)
    assert [(e.row, e.field) for e in errors] == [(2, field)]
    assert good["row"].tolist() == [1]  # the good row beside it is kept
    assert "1381234" not in str(errors[0]) or field != "phone"


def test_a_person_holding_the_same_role_twice_at_once() -> None:
    twice = [GOOD[1], [*GOOD[1][:6], "2026-06-01", "", ""]]
    frame = rosters.read_roster(csv_bytes(twice, "utf-8"), filename="r.csv")
    good, errors = rosters.validate_rows(frame, UNITS)
    assert [(e.row, e.field, e.person_id) for e in errors] == [(2, "valid_from", "P2")]
    assert "13900001111" not in str(errors[0])
    # ... and against a stored post: the same row again is unchanged, an ended one an end, a new start an error
    stored = good.assign(post_id=[7]).drop(columns=["row", "action"])
    again = rosters.read_roster(
        csv_bytes([GOOD[1], [*GOOD[1][:6], "2026-03-01", "", ""]], "utf-8"), filename="r"
    )
    good2, errors2 = rosters.validate_rows(again, UNITS, existing=stored)
    assert good2["action"].tolist() == ["unchanged"]
    assert [(e.row, "stored post 7" in e.message) for e in errors2] == [(2, True)]
    ended = rosters.read_roster(csv_bytes([[*GOOD[1][:7], "2026-12-01", GOOD[1][8]]], "utf-8"), filename="r")
    assert rosters.validate_rows(ended, UNITS, existing=stored)[0]["action"].tolist() == ["end"]


def test_one_person_with_two_phones_is_refused() -> None:
    rows = [GOOD[0], [*GOOD[0][:2], "13700000000", *GOOD[0][3:5], "150622001001001001", *GOOD[0][6:]]]
    _, errors = rosters.validate_rows(rosters.read_roster(csv_bytes(rows, "utf-8"), filename="r"), UNITS)
    assert [(e.row, e.field) for e in errors] == [(2, "phone")]


def test_missing_columns_and_unreadable_files() -> None:
    with pytest.raises(MissingColumn, match="phone"):
        rosters.read_roster(
            "姓名,岗位,单位编码,起始日期,人员类别\n张伟,网格长,1,2026-01-01,网格长\n".encode(), filename="r"
        )
    with pytest.raises(MissingColumn):
        rosters.read_roster(b"a,b\n1,2\n", filename="r.csv")
    with pytest.raises(UnreadableFile):
        rosters.read_roster(b"PK\x03\x04not a zip", filename="r.xlsx")


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_an_export_reimports_unchanged(tmp_path, suffix: str) -> None:
    frame = rosters.read_roster(csv_bytes(GOOD, "gbk"), filename="r.csv")
    good, _ = rosters.validate_rows(frame, UNITS, buildings=BUILDINGS)
    stored = good.assign(post_id=range(1, 4)).drop(columns=["row", "action"])
    path = rosters.write_roster(stored, tmp_path / f"out{suffix}")
    again, errors = rosters.validate_rows(
        rosters.read_roster(path), UNITS, existing=stored, buildings=BUILDINGS
    )
    assert errors == [] and set(again["action"]) == {"unchanged"}


def test_as_of_a_date_and_masking() -> None:
    frame = rosters.read_roster(csv_bytes(GOOD, "utf-8"), filename="r.csv")
    good, _ = rosters.validate_rows(frame, UNITS)
    assert people.in_force(good, dt.date(2026, 11, 29))["person_id"].tolist() == ["P1", "P2", "P3"]
    assert people.in_force(good, dt.date(2026, 11, 30))["person_id"].tolist() == ["P1", "P2"]
    assert people.in_force(good, dt.date(2025, 12, 31))["person_id"].tolist() == ["P3"]
    assert people.masked(good)["phone"].tolist() == ["138****1234", "139****1111", "047*****4567"]
    assert people.mask_phone("") == "" and people.mask_phone(None) is None
    assert isinstance(good, pd.DataFrame)


def _peak_mb(fn) -> float:
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def test_a_sheet_declaring_a_huge_range_reads_only_its_cells(tmp_path) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(HEADER)
    sheet.append(GOOD[0])
    sheet.cell(row=3000, column=16000, value="x")  # one far cell: the sheet's range is A1:WNP3000
    path = tmp_path / "wide.xlsx"
    book.save(path)
    frame: list[pd.DataFrame] = []
    peak = _peak_mb(lambda: frame.append(rosters.read_roster(path)))
    assert frame[0]["name"].tolist() == ["张伟"]
    assert peak < 30  # 3,000 rows x 16,000 padded cells would take hundreds of MB


def test_too_many_rows_are_refused_while_reading(monkeypatch) -> None:
    monkeypatch.setattr(rosters, "MAX_ROWS", 1000)
    data = "\n".join(["姓名,手机号,人员类别,岗位,单位编码,起始日期", *["a,b,c,d,e,f"] * 1_000_000]).encode()

    def read() -> None:
        with pytest.raises(UnreadableFile, match="more than 1,000 rows"):
            rosters.read_roster(data, filename="r.csv")

    assert _peak_mb(read) < 40  # the text once, not a million rows (~100 MB as lists)


def test_a_zip_bomb_workbook_is_refused(tmp_path) -> None:
    import io
    import zipfile

    from geogrid.errors import ArchiveTooLarge

    data = io.BytesIO()
    with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * 50_000_000)  # packs ~1000 to 1
    with pytest.raises(ArchiveTooLarge):
        rosters.read_roster(data.getvalue(), filename="r.xlsx")


def test_errors_never_repeat_a_phone_even_in_another_column() -> None:
    bad = [*GOOD[1][:5], "13812341234", *GOOD[1][6:]]  # a phone pasted into the unit code
    frame = rosters.read_roster(csv_bytes([bad], "utf-8"), filename="r.csv")
    _, errors = rosters.validate_rows(frame, UNITS)
    assert [e.field for e in errors] == ["unit_code"]
    assert "13812341234" not in str(errors[0]) and "138****1234" in str(errors[0])
