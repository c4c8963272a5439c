"""Registry files: every encoding and Excel, each bad-row kind by row and field, typed good rows, the
canonical text, and exports that read back unchanged."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from openpyxl import Workbook

from geogrid.addresses import registry
from geogrid.addresses.registry import address_text, read_addresses, validate_addresses, write_addresses
from geogrid.errors import MissingColumn

HEADER = list(registry.HEADERS_ZH)
GOOD = [
    # id, township, road, door, compound, building, entrances, village, group, lon, lat, building id,
    # aliases, from, to, text
    [
        "A1",
        "薛家湾镇",
        "迎泽路",
        "32",
        "康和小区",
        "5",
        "3",
        "",
        "",
        "111.2123",
        "39.9312",
        "B-01",
        "康安苑",
        "2026-01-01",
    ],
    ["A2", "薛家湾镇", "迎泽路", "34-1", "", "", "", "", "", "111.2125", "39.9314", "", "", "2026/1/1"],
    ["A3", "薛家湾镇", "", "", "康和小区", "6", "0", "", "", "111.2127", "39.9316", "", "", "2026.1.1"],
    [
        "A4",
        "暖水乡",
        "",
        "12",
        "",
        "",
        "",
        "榆树湾村",
        "3",
        "111.05",
        "39.71",
        "",
        "",
        "2026-01-01",
        "2027-01-01",
    ],
]
PHONE = "13812341234"


def rows_of(rows: list[list[str]]) -> list[list[str]]:
    return [r + [""] * (len(HEADER) - len(r)) for r in rows]


def csv_bytes(rows: list[list[str]], encoding: str = "utf-8-sig") -> bytes:
    return "\r\n".join(",".join(r) for r in [HEADER, *rows_of(rows)]).encode(encoding) + b"\r\n"


def checked(rows: list[list[str]]) -> tuple[pd.DataFrame, list]:
    return validate_addresses(read_addresses(csv_bytes(rows), filename="地址.csv"))


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
def test_csv_in_every_encoding_reads_the_same_typed_rows(encoding: str) -> None:
    good, errors = validate_addresses(read_addresses(csv_bytes(GOOD, encoding), filename="地址.csv"))
    assert errors == [] and good["row"].tolist() == [1, 2, 3, 4]
    assert list(good.columns) == ["row", *registry.ADDRESS_COLUMNS]
    first = good.iloc[0]
    assert (first["lon"], first["lat"], first["entrances"]) == (111.2123, 39.9312, 3)
    assert first["aliases"] == "康安苑" and first["village"] is None and first["valid_to"] is None
    assert good["valid_from"].tolist() == [dt.date(2026, 1, 1)] * 4
    assert good["valid_to"].tolist()[3] == dt.date(2027, 1, 1)
    assert pd.isna(good["entrances"].iloc[1]) and good["entrances"].iloc[2] == 0
    assert good["text"].tolist() == [
        "薛家湾镇迎泽路32号康和小区5号楼",
        "薛家湾镇迎泽路34-1号",
        "薛家湾镇康和小区6号楼",
        "暖水乡榆树湾村3组12号",
    ]


def test_xlsx_with_a_title_row_numbers_and_dates_as_excel_stores_them(tmp_path) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["准格尔旗标准地址库（2026年）"])
    sheet.append(HEADER)
    for row in rows_of(GOOD):
        cells: list[object] = list(row)
        cells[3] = int(row[3]) if row[3].isdigit() else row[3]  # a door typed as a number
        cells[9], cells[10] = float(row[9]), float(row[10])
        cells[13] = dt.datetime(2026, 1, 1)
        sheet.append(cells)
    book.save(tmp_path / "地址.xlsx")
    good, errors = validate_addresses(read_addresses(tmp_path / "地址.xlsx"))
    assert errors == [] and good["door"].tolist() == ["32", "34-1", None, "12"]
    assert good["lon"].tolist()[0] == 111.2123 and good["valid_from"].tolist()[0] == dt.date(2026, 1, 1)


def test_english_headers_and_suffixes_written_into_the_parts() -> None:
    text = "address_id,road,door,compound,building,group,village,lon,lat,valid_from\n"
    text += "A1,迎泽路,３２号,康和小区,5号楼,,,111.2,39.9,2026-01-01\n"
    text += "A2,,7号,,,3组,榆树湾村,111.2,39.9,2026-01-01\n"
    good, errors = validate_addresses(read_addresses(text.encode(), filename="a.csv"))
    assert errors == []
    assert good["door"].tolist() == ["32", "7"] and good["building"].tolist() == ["5", None]
    assert good["group"].tolist() == [None, "3"]
    assert good["text"].tolist() == ["迎泽路32号康和小区5号楼", "榆树湾村3组7号"]


def test_a_file_without_a_required_column_is_refused_naming_it() -> None:
    text = "地址编码,道路,门牌号,经度,启用日期\nA1,迎泽路,32,111.2,2026-01-01\n"
    with pytest.raises(MissingColumn, match="纬度"):
        read_addresses(text.encode(), filename="a.csv")


def test_an_id_seen_twice_names_the_first_row() -> None:
    good, errors = checked(
        [*GOOD, ["A1", "薛家湾镇", "迎泽路", "36", "", "", "", "", "", "111.2", "39.9", "", "", "2026-01-01"]]
    )
    (error,) = errors
    assert (error.row, error.field, error.person_id) == (5, "address_id", "A1") and "row 1" in error.message
    assert len(good) == 4


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({0: ""}, "address_id", "empty"),
        ({2: "", 3: "", 4: "", 5: ""}, "road", "no place"),
        ({3: ""}, "door", "door number"),  # a road without its door, no building either
        ({2: ""}, "road", "road"),  # a door without its road
        ({2: "", 3: "", 4: "康和小区"}, "building", "building"),  # a compound without its building
        ({7: "榆树湾村"}, "group", "rural"),  # a village without its group
        ({9: "东经111度"}, "lon", "not a number"),
        ({9: ""}, "lon", "empty"),
        ({10: "60.5"}, "lat", "outside China"),
        ({9: "39.9", 10: "111.2"}, "lon", "swapped"),
        ({9: "nan"}, "lon", "outside China"),
        ({6: "三"}, "entrances", "whole number"),
        ({6: "-1"}, "entrances", "whole number"),
        ({13: ""}, "valid_from", "empty"),
        ({13: "2026-02-30"}, "valid_from", "not a date"),
        ({14: "2025-12-31"}, "valid_to", "not after"),
        ({14: "2026-01-01"}, "valid_to", "not after"),
        ({14: "soon"}, "valid_to", "not a date"),
        ({2: "迎泽\x00路"}, "road", "control character"),
        ({4: "康和\n小区"}, "compound", "control character"),
        ({4: "康" * 101}, "compound", "longer than 100"),
        ({0: "A" * 65}, "address_id", "longer than 64"),
        ({3: "3" * 33}, "door", "longer than 32"),
        ({12: "别名;" * 200}, "aliases", "longer than 500"),
        ({2: '=HYPERLINK("http://x","迎泽路")'}, "road", "formula"),
        ({12: "@SUM(1)"}, "aliases", "formula"),
        ({15: "迎泽\x00路34号"}, "", ""),  # the text column is made, not read: nothing wrong
    ],
)
def test_each_bad_row_kind_names_row_and_field(change: dict[int, str], field: str, words: str) -> None:
    bad = list(rows_of(GOOD)[1])
    bad[4], bad[5] = "", ""  # a road address only: road and door alone name it
    for i, value in change.items():
        bad[i] = value
    good, errors = validate_addresses(
        pd.DataFrame([dict(zip(["row", *registry.ADDRESS_COLUMNS], [9, *bad], strict=True))])
    )
    if not field:
        assert errors == [] and good["text"].tolist() == ["薛家湾镇迎泽路34-1号"]
        return
    (error,) = errors
    assert (error.row, error.field) == (9, field) and words in error.message
    assert good.empty


def test_rows_without_a_row_number_are_numbered_from_one() -> None:
    frame = pd.DataFrame(rows_of(GOOD), columns=list(registry.ADDRESS_COLUMNS))
    frame.loc[2, "lat"] = "north"
    good, errors = validate_addresses(frame)
    assert good["row"].tolist() == [1, 2, 4] and [(e.row, e.field) for e in errors] == [(3, "lat")]


def test_an_error_repeats_no_phone() -> None:
    bad = rows_of(GOOD)[0]
    bad[9] = PHONE  # a phone pasted into the longitude
    _, errors = checked([bad])
    (error,) = errors
    assert error.field == "lon" and PHONE not in str(error) and "138****1234" in error.message


def test_good_rows_are_kept_beside_bad_ones() -> None:
    bad = rows_of(GOOD)[0]
    bad[0], bad[10] = "A9", "not a latitude"
    good, errors = checked([*GOOD, bad])
    assert good["address_id"].tolist() == ["A1", "A2", "A3", "A4"]
    assert [(e.row, e.field, e.person_id) for e in errors] == [(5, "lat", "A9")]


def test_the_canonical_text() -> None:
    assert address_text({"road": "迎泽路", "door": "32"}) == "迎泽路32号"
    assert (
        address_text({"compound": "康和小区", "building": "5", "township": "薛家湾镇"})
        == "薛家湾镇康和小区5号楼"
    )
    assert (
        address_text({"village": "榆树湾村", "group": "3", "door": "7", "road": "迎泽路"}) == "榆树湾村3组7号"
    )
    assert address_text(pd.Series({"road": "迎泽路", "door": "32", "compound": float("nan")})) == "迎泽路32号"


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_an_export_reads_back_unchanged(tmp_path, suffix: str) -> None:
    good, _ = checked(GOOD)
    path = write_addresses(good.iloc[::-1], tmp_path / f"地址{suffix}")
    again, errors = validate_addresses(read_addresses(path))
    assert errors == []
    assert again.drop(columns="row").equals(good.drop(columns="row"))  # ordered by id, every value the same
    if suffix == ".csv":
        data = path.read_bytes()
        assert data.startswith(b"\xef\xbb\xbf" + "地址编码".encode())  # a BOM, as Excel opens it
        assert "薛家湾镇迎泽路32号康和小区5号楼" in data.decode("utf-8-sig")


def test_full_precision_points_read_back_exactly(tmp_path) -> None:
    good, _ = checked(GOOD)
    good.loc[0, "lon"], good.loc[0, "lat"] = 111.21223740000001, 0.1 + 39.8
    for suffix in (".csv", ".xlsx"):
        again, _ = validate_addresses(read_addresses(write_addresses(good, tmp_path / f"p{suffix}")))
        assert (again["lon"].iloc[0], again["lat"].iloc[0]) == (good["lon"].iloc[0], good["lat"].iloc[0])
