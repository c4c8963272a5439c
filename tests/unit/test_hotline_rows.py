"""hotline.reports reads a chunk column by column: the same reports and row errors as reading each row
the long way (hotline._report), for good rows, bad ones of every kind, blank and short rows."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from geogrid.errors import GeoGridError
from geogrid.incidents import hotline
from geogrid.incidents.catalogue import catalogue
from geogrid.people import shown
from tests.db.test_cli_incidents import HEADER

ROWS: list[list[object]] = [
    [
        "GD-1",
        "2026-11-03 09:30:00",
        "E0102",
        "路边垃圾",
        "",
        "111.2",
        "39.85",
        "wgs84",
        "张伟",
        "13812341234",
    ],
    ["GD-2", "2026/11/03 10:00", "暴露垃圾", " 垃圾 ", "", 111.2, 39.85, "", "", ""],
    ["GD-3", "2026-11-03T11:00:00+08:00", "E0601", "邻里纠纷", "康安苑3号楼", "", "", "", "李娜", ""],
    ["", "2026-11-04 09:00", "E0503", "乱停车", "", "111.2", "39.85", "wgs84", "", ""],
    ["GD-5", "昨天", "E0102", "时间不对", "", "111.2", "39.85", "", "", "13812341234"],
    ["GD-6", "2026-11-04 09:00", "飞碟", "类别不对", "", "111.2", "39.85", "", "", ""],
    ["GD-7", "2026-11-04 09:00", "E0102", "", "", "111.2", "39.85", "", "", ""],
    ["GD-8", "2026-11-04 09:00", "E0102", "坐标不对", "", "东经", "39.85", "", "", ""],
    ["GD-9", "2026-11-04 09:00", "E0102", "坐标不全", "", "111.2", "", "", "", ""],
    ["GD-10", "2026-11-04 09:00", "E0102", "不是数", "", "nan", "39.85", "", "", ""],
    ["GD-11", "2026-11-04 09:00", "E0102", "太长", "", "111.2", "39.85", "", "", "1" * 41],
    ["", "", "", "", "", "", "", "", "", ""],
    ["GD-13", "2026-11-04 09:00", "E0102", "短行"],
    ["GD-14", "2026-11-04 09:00", "E0102", "渠道", "", None, None, None, None, None],
    ["GD-17", "2026-11-04 09:00", "E0102", "路边\x00垃圾", "", "111.2", "39.85", "", "", ""],  # NUL: no text
    ["GD\x0018", "2026-11-04 09:00", "E0102", "工单号", "", "111.2", "39.85", "", "", ""],
]


def test_column_reading_gives_the_answers_of_reading_row_by_row():
    good, errors = hotline.reports(HEADER, ROWS, 3, catalogue(), tz="Asia/Shanghai", source="x.csv")
    columns = hotline.header_map(HEADER)
    want_good, want_errors = [], []
    for n, row in enumerate(ROWS, start=3):
        get = {
            f: str(row[i]).strip() if i < len(row) and row[i] is not None else "" for f, i in columns.items()
        }
        if not any(get.values()):
            continue
        try:
            want_good.append((n, hotline._report(get, catalogue(), ZoneInfo("Asia/Shanghai"), "x.csv")))
        except GeoGridError as exc:
            field = str(exc.where.get("field", ""))
            want_errors.append(
                (n, hotline.COLUMNS.get(field, (field,))[0] if field else "", shown(exc.detail))
            )
    assert good == want_good
    assert [(e.row, e.field, e.message) for e in errors] == want_errors
    assert {n for n, _ in good} == {3, 4, 5, 6, 15, 16}
    nul = {(e.row, e.field) for e in errors if "NUL" in e.message}
    assert nul == {(17, "诉求内容"), (18, "工单编号")}  # refused by name, not by the database's COPY
