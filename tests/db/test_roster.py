"""Rosters on both databases: CSV (UTF-8, BOM, GBK) and XLSX with Chinese headers, each bad-row kind by row
and field, dry runs that write nothing, commits that write all or nothing, posts as of a date, history."""

from __future__ import annotations

import datetime as dt
import json

import geopandas as gpd
import pandas as pd
import pytest
import sqlalchemy as sa
from openpyxl import Workbook
from typer.testing import CliRunner

from geogrid.cli import app
from geogrid.db import Store
from geogrid.db import posts as db_posts
from geogrid.db.layers import Layers
from geogrid.db.people import Roster
from geogrid.errors import InvalidCode, InvalidPost, NotFound, OutOfScope, VersionConflict
from geogrid.people import POST_COLUMNS
from geogrid.rosters import read_roster, write_roster
from tests.conftest import BACKENDS, migrated_engine, published_demo

HEADER = ["人员编号", "姓名", "手机号", "人员类别", "岗位", "单位编码", "起始日期", "结束日期", "包保楼栋"]
TODAY = dt.date.today()
PHONES = ("13812341234", "13900001111", "0477-1234567", "13700002222")


@pytest.fixture(scope="module", params=BACKENDS)
def db(request, demo_layers, tmp_path_factory):
    """The demo's communities, grids and micro-grids published from 2026-01-01, once per backend."""
    with migrated_engine(request.param, tmp_path_factory) as engine:
        layers = (("communities", "community"), ("grids", "grid"), ("microgrids", "microgrid"))
        published_demo(engine, demo_layers, layers)
        yield engine


@pytest.fixture
def roster(db) -> Roster:
    """A roster with no people yet (the published units stay)."""
    with db.begin() as conn:
        for table in ("post", "person", "building", "site", "road"):
            conn.execute(sa.text(f"DELETE FROM {table}"))
        conn.execute(sa.text("DELETE FROM boundary_set WHERE name <> 'demo'"))
    return Roster(db, actor="tester")


@pytest.fixture(scope="module")
def units(demo_layers):
    """A community, two of its grids and a micro-grid of the first."""
    grids = demo_layers["grids"].sort_values("code")
    community = grids["parent_code"].iloc[0]
    mine = grids[grids["parent_code"] == community]["code"].tolist()
    micro = demo_layers["microgrids"]
    first_micro = sorted(micro[micro["parent_code"] == mine[0]]["code"])[0]
    other = sorted(set(grids["parent_code"]) - {community})[0]  # another community (outside a scope)
    return {"community": community, "grid": mine[0], "grid2": mine[1], "micro": first_micro, "other": other}


def good_rows(u) -> list[list[str]]:
    return [
        ["P1", "张伟", PHONES[0], "网格长", "网格长", u["grid"], "2020-01-01", "", ""],
        ["P2", "李娜", PHONES[1], "专职网格员", "网格员", u["grid"], "2026-01-01", "", ""],
        ["P3", "王芳", PHONES[2], "社区书记", "社区书记", u["community"], "2025-03-01", "2026-11-30", ""],
        ["P2", "李娜", PHONES[1], "专职网格员", "网格员", u["grid2"], "2026/2/1", "", ""],
    ]


def csv_file(rows, encoding="utf-8-sig") -> bytes:
    return "\r\n".join(",".join(r) for r in [HEADER, *rows]).encode(encoding) + b"\r\n"


def xlsx_file(rows, tmp_path) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.append(["某社区网格员花名册（2026年）"])  # the title row offices put above the header
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    book.save(tmp_path / "r.xlsx")
    return (tmp_path / "r.xlsx").read_bytes()


def load(data: bytes, name="r.csv") -> pd.DataFrame:
    return read_roster(data, filename=name)


def counts(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (
            conn.execute(sa.text("SELECT count(*) FROM person")).scalar_one(),
            conn.execute(sa.text("SELECT count(*) FROM post")).scalar_one(),
        )


def audit_text(engine) -> str:
    return json.dumps(Store(engine).audit(), ensure_ascii=False, default=str)


# ---- files -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["utf-8", "utf-8-sig", "gbk", "xlsx"])
def test_every_encoding_and_excel_import_the_same_posts(roster, units, form, tmp_path):
    rows = good_rows(units)
    data = xlsx_file(rows, tmp_path) if form == "xlsx" else csv_file(rows, form)
    report = roster.import_roster("demo", load(data, "r.xlsx" if form == "xlsx" else "r.csv"), commit=True)
    assert report.errors == [] and report.committed
    assert len(report.new) == 4 and report.people_added == 3
    posts = roster.posts("demo")
    assert list(posts.columns) == POST_COLUMNS
    got = sorted(zip(posts["person_id"], posts["name"], posts["role"], posts["unit_code"], strict=True))
    assert got == sorted(
        [
            ("P1", "张伟", "leader", units["grid"]),
            ("P2", "李娜", "worker", units["grid"]),
            ("P2", "李娜", "worker", units["grid2"]),
            ("P3", "王芳", "secretary", units["community"]),
        ]
    )
    p3 = posts[posts["person_id"] == "P3"].iloc[0]
    assert p3["valid_from"] == dt.date(2025, 3, 1) and p3["valid_to"] == dt.date(2026, 11, 30)
    assert p3["phone"] == PHONES[2] and p3["kind"] == "secretary" and p3["buildings"] == []


# ---- bad rows --------------------------------------------------------------------------------------
def test_each_bad_row_kind_is_reported_with_row_and_field_and_no_phone(roster, units):
    rows = [
        *good_rows(units),
        ["P5", "赵六", "13812340000", "网格长", "网格长", "150622999999999", "2026-01-01", "", ""],  # row 5
        ["P1", "张伟", PHONES[0], "网格长", "网格长", units["grid"], "2024-06-01", "", ""],  # row 6: twice
        ["P6", "钱七", "1381234", "专职网格员", "网格员", units["grid"], "2026-01-01", "", ""],  # row 7
        ["P7", "孙八", "13812345678", "网格长", "网格长", units["community"], "2026-01-01", "", ""],  # row 8
    ]
    report = roster.import_roster("demo", load(csv_file(rows)), commit=False)
    found = {(e.row, e.field, e.person_id) for e in report.errors}
    assert found == {
        (5, "unit_code", "P5"),  # unknown unit code
        (6, "valid_from", "P1"),  # the same role on the same unit twice at once (in the file)
        (7, "phone", "P6"),  # malformed phone
        (8, "unit_code", "P7"),  # a leader names a grid, not a community
    }
    assert "150622999999999" in next(e.message for e in report.errors if e.row == 5)
    assert "1381234" not in json.dumps(report.summary(), ensure_ascii=False)  # not even the bad phone
    assert all(p not in json.dumps(report.summary(), ensure_ascii=False) for p in PHONES)
    assert len(report.new) == 4


def test_the_same_role_twice_against_stored_posts(roster, units):
    roster.import_roster("demo", load(csv_file(good_rows(units))), commit=True)
    again = [["P1", "张伟", PHONES[0], "网格长", "网格长", units["grid"], "2026-05-01", "", ""]]
    report = roster.import_roster("demo", load(csv_file(again)), commit=True)
    (error,) = report.errors
    assert (error.row, error.field, error.person_id) == (1, "valid_from", "P1")
    assert "stored post" in error.message and not report.new
    assert counts(roster.engine) == (3, 4)


def test_a_scoped_import_refuses_rows_outside_its_scope_as_row_errors(roster, units):
    rows = good_rows(units)
    other = [["P9", "周九", "13812349999", "网格长", "网格长", "150622002001001", "2026-01-01", "", ""]]
    report = roster.import_roster("demo", load(csv_file(rows + other)), commit=True, scope=units["community"])
    assert [(e.row, e.field) for e in report.errors] == [(5, "unit_code")]
    assert "outside" in report.errors[0].message and len(report.new) == 4


def test_units_are_those_of_the_version_in_force_on_valid_from(db, demo_layers, roster):
    """A unit removed by a later version may be named by posts starting before it, not after."""
    store = Store(db)
    grids = demo_layers["grids"][demo_layers["grids"]["code"].str.startswith("150622001001")]
    store.import_units("two", grids, "grid", commit=True)
    store.publish("two", dt.date(2026, 1, 1))
    gone = grids["code"].iloc[-1]
    store.import_units("two", grids.iloc[:-1], "grid", commit=True)
    store.publish("two", dt.date(2026, 6, 1), force="a grid merged away (test)")
    rows = [
        ["P1", "张伟", PHONES[0], "网格长", "网格长", gone, "2026-02-01", "2026-06-01", ""],
        ["P2", "李娜", PHONES[1], "网格长", "网格长", gone, "2026-07-01", "", ""],
        ["P3", "王芳", PHONES[3], "网格长", "网格长", gone, "2025-01-01", "2026-01-01", ""],  # before v1: v1
    ]
    report = roster.import_roster("two", load(csv_file(rows)), commit=False)
    assert [(e.row, e.field) for e in report.errors] == [(2, "unit_code")]
    assert "2026-06-01" in report.errors[0].message


# ---- dry runs and commits --------------------------------------------------------------------------
def test_a_dry_run_writes_nothing(roster, units):
    store = Store(roster.engine)
    revision, lines = store.revision("demo"), len(store.audit("demo"))
    report = roster.import_roster("demo", load(csv_file(good_rows(units))), commit=False)
    assert len(report.new) == 4 and not report.committed
    assert counts(roster.engine) == (0, 0)
    assert store.revision("demo") == revision and len(store.audit("demo")) == lines


def test_a_commit_writes_all_or_nothing(roster, units, monkeypatch):
    store = Store(roster.engine)
    revision, lines = store.revision("demo"), len(store.audit("demo"))
    real = db_posts.insert_posts

    def insert_then_fail(conn, rows):
        real(conn, rows)  # the first insert lands in the transaction ...
        raise RuntimeError("the disk is full")  # ... and then the write fails

    monkeypatch.setattr(db_posts, "insert_posts", insert_then_fail)
    with pytest.raises(RuntimeError, match="disk is full"):
        roster.import_roster("demo", load(csv_file(good_rows(units))), commit=True)
    assert counts(roster.engine) == (0, 0)  # neither the people nor the first posts were kept
    assert store.revision("demo") == revision
    assert len(store.audit("demo")) == lines


def test_a_database_error_while_writing_repeats_no_phone(roster, units, monkeypatch):
    def fail(conn, rows):
        raise sa.exc.IntegrityError("INSERT INTO post ...", rows, Exception("the database said no"))

    monkeypatch.setattr(db_posts, "insert_posts", fail)
    with pytest.raises(sa.exc.IntegrityError) as caught:
        roster.import_roster("demo", load(csv_file(good_rows(units))), commit=True)
    assert "the database said no" in str(caught.value) and "hidden" in str(caught.value)
    assert counts(roster.engine) == (0, 0)


def test_good_rows_are_written_beside_bad_ones_with_one_audit_line_and_a_new_revision(roster, units):
    store = Store(roster.engine)
    revision, lines = store.revision("demo"), len(store.audit("demo"))
    bad = [["P6", "钱七", "1381234", "专职网格员", "网格员", units["grid"], "2026-01-01", "", ""]]
    report = roster.import_roster("demo", load(csv_file(good_rows(units) + bad)), commit=True)
    assert report.committed and len(report.errors) == 1 and counts(roster.engine) == (3, 4)
    assert store.revision("demo") == revision + 1 == report.revision
    (line,) = store.audit("demo")[lines:]
    assert line["action"] == "import_roster" and line["actor"] == "tester"
    assert line["detail"]["new"] == 4 and line["detail"]["errors"] == 1
    assert all(p not in audit_text(roster.engine) for p in PHONES)


def test_reimporting_the_same_file_changes_nothing(roster, units):
    data = load(csv_file(good_rows(units)))
    roster.import_roster("demo", data, commit=True)
    revision = Store(roster.engine).revision("demo")
    again = roster.import_roster("demo", data, commit=True)
    assert again.unchanged == 4 and not again.new and not again.errors and again.people_added == 0
    assert counts(roster.engine) == (3, 4) and Store(roster.engine).revision("demo") == revision


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_an_export_reimports_unchanged(roster, units, tmp_path, suffix):
    roster.import_roster("demo", load(csv_file(good_rows(units))), commit=True)
    path = write_roster(roster.posts("demo"), tmp_path / f"out{suffix}")
    again = roster.import_roster("demo", read_roster(path), commit=True)
    assert again.unchanged == 4 and not again.new and not again.errors


def test_a_file_ends_a_stored_post_and_changes_a_phone_audited_masked(roster, units):
    roster.import_roster("demo", load(csv_file(good_rows(units))), commit=True)
    rows = good_rows(units)
    rows[1][7] = "2026-09-01"  # P2's post on the first grid ends
    rows[0][2] = PHONES[3]  # P1 has a new phone
    report = roster.import_roster("demo", load(csv_file(rows)), commit=True)
    assert [c["person_id"] for c in report.ended] == ["P2"] and report.people_changed == ["P1"]
    posts = roster.posts("demo")
    ended = posts[(posts["person_id"] == "P2") & (posts["unit_code"] == units["grid"])]
    assert ended["valid_to"].tolist() == [dt.date(2026, 9, 1)] and len(posts) == 4  # ended, not removed
    assert roster.person("demo", "P1")["phone"] == PHONES[3]
    line = Store(roster.engine).audit("demo")[-1]
    change = line["detail"]["people"]["changed"][0]
    assert change["phone"] == {"old": "138****1234", "new": "137****2222"}
    assert all(p not in audit_text(roster.engine) for p in PHONES)


# ---- as of a date, history -------------------------------------------------------------------------
def test_a_post_that_ended_yesterday_is_gone_today_and_there_last_week(roster, units):
    roster.import_roster("demo", load(csv_file(good_rows(units))), commit=True)
    p1 = roster.posts("demo", unit=units["grid"])
    post_id = int(p1[p1["person_id"] == "P1"]["post_id"].iloc[0])
    ended = roster.end_post("demo", post_id, TODAY).post  # in force until yesterday, the last day
    assert ended["valid_to"] == TODAY
    assert "P1" not in set(roster.posts("demo", TODAY)["person_id"])
    assert "P1" in set(roster.posts("demo", TODAY - dt.timedelta(days=7))["person_id"])
    assert "P1" in set(roster.posts("demo", TODAY - dt.timedelta(days=1))["person_id"])
    history = roster.person("demo", "P1")["posts"]  # history is never lost
    assert [(p["post_id"], p["valid_to"]) for p in history] == [(post_id, TODAY)]
    assert len(roster.posts("demo")) == 4


def test_ending_a_post_refuses_what_would_rewrite_history(roster, units):
    roster.import_roster("demo", load(csv_file(good_rows(units))), commit=True)
    posts = roster.posts("demo")
    open_id = int(posts[posts["person_id"] == "P1"]["post_id"].iloc[0])
    closed_id = int(posts[posts["person_id"] == "P3"]["post_id"].iloc[0])
    with pytest.raises(VersionConflict, match="must be after") as caught:
        roster.end_post("demo", open_id, dt.date(2020, 1, 1))
    assert caught.value.status == 409 and caught.value.where["field"] == "valid_to"
    with pytest.raises(VersionConflict, match="already ended"):
        roster.end_post("demo", closed_id, dt.date(2026, 12, 1))
    with pytest.raises(NotFound):
        roster.end_post("demo", 10**6, TODAY)
    with pytest.raises(OutOfScope):
        roster.end_post("demo", open_id, TODAY, scope="150622002")
    with pytest.raises(VersionConflict):
        roster.end_post("demo", open_id, TODAY, expect_revision=Store(roster.engine).revision("demo") - 1)
    roster.end_post("demo", open_id, TODAY)
    line = Store(roster.engine).audit("demo")[-1]
    assert line["action"] == "end_post" and line["detail"]["post_id"] == open_id


# ---- single posts ----------------------------------------------------------------------------------
def post_fields(units, **change):
    fields = {
        "person_id": "P8",
        "name": "吴九",
        "phone": "13812348888",
        "kind": "worker_parttime",
        "role": "worker",
        "unit_code": units["micro"],
        "valid_from": dt.date(2026, 3, 1),
    }
    return {**fields, **change}


def test_create_a_post_and_the_refusals_name_the_field(roster, units):
    made = roster.create_post("demo", **post_fields(units)).post
    assert made["post_id"] > 0 and made["person_id"] == "P8" and made["valid_to"] is None
    assert list(made) == POST_COLUMNS
    with pytest.raises(VersionConflict, match="already holds") as caught:
        roster.create_post("demo", **post_fields(units, valid_from=dt.date(2026, 4, 1)))
    assert caught.value.where == {"field": "valid_from", "person_id": "P8"}
    with pytest.raises(VersionConflict, match="already stored"):
        roster.create_post("demo", **post_fields(units))
    with pytest.raises(InvalidCode) as caught:
        roster.create_post("demo", **post_fields(units, unit_code="150622999"))
    assert caught.value.where["field"] == "unit_code"
    with pytest.raises(InvalidPost) as caught:
        roster.create_post("demo", **post_fields(units, person_id="P9", phone="1381234567x"))
    assert caught.value.where["field"] == "phone" and "1381234567x" not in str(caught.value)
    with pytest.raises(OutOfScope):
        roster.create_post("demo", **post_fields(units, person_id="P9"), scope="150622002")
    line = Store(roster.engine).audit("demo")[-1]
    assert line["action"] == "create_post" and "13812348888" not in audit_text(roster.engine)


def test_reads_people_person_and_posts_under_a_unit(roster, units):
    roster.import_roster("demo", load(csv_file(good_rows(units))), commit=True)
    everyone = roster.people("demo")
    assert everyone["person_id"].tolist() == ["P1", "P2", "P3"] and everyone["posts"].tolist() == [1, 2, 1]
    assert roster.people("demo", dt.date(2026, 12, 1))["person_id"].tolist() == ["P1", "P2"]
    assert roster.people("demo", unit=units["grid2"])["person_id"].tolist() == ["P2"]
    assert set(roster.posts("demo", unit=units["community"])["person_id"]) == {"P1", "P2", "P3"}
    assert roster.posts("demo", unit=units["grid2"])["unit_code"].tolist() == [units["grid2"]]
    p2 = roster.person("demo", "P2")
    assert p2["name"] == "李娜" and [p["unit_code"] for p in p2["posts"]] == [units["grid"], units["grid2"]]
    with pytest.raises(NotFound):
        roster.person("demo", "nobody")
    with pytest.raises(NotFound):
        roster.posts("nowhere")
    assert roster.posts("demo", TODAY).empty is False


def test_building_ids_are_checked_once_the_buildings_are_loaded(roster, units, demo_dir):
    buildings = gpd.read_file(demo_dir / "buildings.geojson")
    mine = buildings[buildings["microgrid_code"] == units["micro"]]
    Layers(roster.engine).write("demo", "buildings", mine)
    inside = mine["id"].iloc[0]
    rows = [
        ["P1", "张伟", PHONES[0], "楼栋长", "楼栋长", units["micro"], "2026-01-01", "", inside],
        ["P2", "李娜", PHONES[1], "楼栋长", "楼栋长", units["micro"], "2026-01-01", "", "nowhere-01"],
    ]
    report = roster.import_roster("demo", load(csv_file(rows)), commit=True)
    assert [(e.row, e.field) for e in report.errors] == [(2, "buildings")]
    assert roster.posts("demo")["buildings"].tolist() == [[inside]]


def test_create_and_end_a_post_return_the_revision_they_wrote(roster, units):
    store = Store(roster.engine)
    before = store.revision("demo")
    made = roster.create_post("demo", **post_fields(units))
    assert made.revision == before + 1 == store.revision("demo")
    assert made.post["person_id"] == "P8" and list(made.post) == POST_COLUMNS
    ended = roster.end_post("demo", made.post["post_id"], dt.date(2026, 6, 1))
    assert ended.revision == before + 2 == store.revision("demo")
    assert ended.post["valid_to"] == dt.date(2026, 6, 1)


# ---- scope and the people a scoped key may change --------------------------------------------------
NEW_PHONE = "13666666666"


def outsider_rows(units) -> list[list[str]]:
    """P3 is another community's secretary (a post now ended: held, not holding); P1 is only inside."""
    return [
        ["P1", "张伟", PHONES[0], "网格长", "网格长", units["grid"], "2020-01-01", "", ""],
        ["P3", "王芳", PHONES[2], "社区书记", "社区书记", units["other"], "2020-01-01", "2026-02-01", ""],
    ]


def test_a_scoped_post_cannot_rewrite_a_person_who_holds_a_post_outside_its_scope(roster, units):
    roster.import_roster("demo", load(csv_file(outsider_rows(units))), commit=True)
    revision = Store(roster.engine).revision("demo")
    p3 = {"person_id": "P3", "name": "王芳", "phone": PHONES[2], "kind": "secretary", "role": "worker"}
    fields = post_fields(units, **p3, unit_code=units["grid"])
    for change in ({"phone": NEW_PHONE}, {"name": "王小芳"}, {"kind": "worker_fulltime"}):
        field_name = next(iter(change))
        with pytest.raises(OutOfScope) as caught:
            roster.create_post("demo", **{**fields, **change}, scope=units["community"])
        assert caught.value.status == 403
        assert caught.value.where == {"field": field_name, "person_id": "P3"}
        assert NEW_PHONE not in str(caught.value) and PHONES[2] not in str(caught.value)
    person = roster.person("demo", "P3")
    assert (person["name"], person["phone"], person["kind"]) == ("王芳", PHONES[2], "secretary")
    assert Store(roster.engine).revision("demo") == revision and counts(roster.engine) == (2, 2)
    # the same person with unchanged details may be given a post inside the scope
    made = roster.create_post("demo", **fields, scope=units["community"])
    assert made.post["person_id"] == "P3" and made.post["unit_code"] == units["grid"]
    # a person with posts only inside the scope may still be changed by it; unscoped, anyone may
    p1 = {"person_id": "P1", "name": "张伟", "phone": NEW_PHONE, "kind": "leader", "role": "worker"}
    roster.create_post("demo", **post_fields(units, **p1), scope=units["community"])
    assert roster.person("demo", "P1")["phone"] == NEW_PHONE
    roster.create_post("demo", **{**fields, "role": "liaison", "phone": NEW_PHONE})
    assert roster.person("demo", "P3")["phone"] == NEW_PHONE


def test_a_scoped_import_cannot_rewrite_a_person_who_held_a_post_outside_its_scope(roster, units):
    roster.import_roster("demo", load(csv_file(outsider_rows(units))), commit=True)
    rows = [
        ["P3", "王芳", NEW_PHONE, "社区书记", "网格员", units["grid"], "2026-03-01", "", ""],  # row 1
        ["P3", "王芳", NEW_PHONE, "社区书记", "网格员", units["grid2"], "2026-03-01", "", ""],  # row 2
        ["P1", "张伟", PHONES[3], "网格长", "网格长", units["grid"], "2020-01-01", "", ""],  # row 3: inside
        ["P2", "李娜", PHONES[1], "专职网格员", "网格员", units["grid"], "2026-01-01", "", ""],  # row 4
    ]
    report = roster.import_roster("demo", load(csv_file(rows)), commit=True, scope=units["community"])
    assert [(e.row, e.field, e.person_id) for e in report.errors] == [(1, "phone", "P3"), (2, "phone", "P3")]
    assert all("outside" in e.message and units["community"] in e.message for e in report.errors)
    text = json.dumps(report.summary(), ensure_ascii=False)
    assert NEW_PHONE not in text and all(p not in text for p in PHONES)
    assert report.people_changed == ["P1"] and report.people_added == 1 and len(report.new) == 1
    assert roster.person("demo", "P3")["phone"] == PHONES[2]  # untouched
    assert roster.person("demo", "P1")["phone"] == PHONES[3]
    renamed = [["P3", "王小芳", PHONES[2], "社区书记", "网格员", units["grid"], "2026-03-01", "", ""]]
    report = roster.import_roster("demo", load(csv_file(renamed)), commit=False, scope=units["community"])
    assert [(e.row, e.field, e.person_id) for e in report.errors] == [(1, "name", "P3")]
    same = [["P3", "王芳", PHONES[2], "社区书记", "网格员", units["grid"], "2026-03-01", "", ""]]
    report = roster.import_roster("demo", load(csv_file(same)), commit=True, scope=units["community"])
    assert not report.errors and len(report.new) == 1 and not report.people_changed


def test_writing_people_with_a_scope_refuses_a_change_to_a_person_outside_it(roster, units):
    """The guard where people are written, whatever plan reaches it."""
    roster.import_roster("demo", load(csv_file(outsider_rows(units))), commit=True)
    p3 = {"person_id": "P3", "name": "王芳", "phone": NEW_PHONE, "kind": "secretary"}
    with roster.engine.begin() as conn:
        set_id = Store(roster.engine)._set_row(conn, "demo")[0]
        with pytest.raises(OutOfScope) as caught:
            db_posts.write_people(conn, set_id, [p3], scope=units["community"])
        assert caught.value.where["field"] == "phone" and NEW_PHONE not in str(caught.value)
        same = db_posts.write_people(conn, set_id, [{**p3, "phone": PHONES[2]}], scope=units["community"])
        assert same == {"added": 0, "changed": []}
        p1 = {"person_id": "P1", "name": "张伟", "phone": NEW_PHONE, "kind": "leader"}
        assert db_posts.write_people(conn, set_id, [p1], scope=units["community"])["changed"]
    assert roster.person("demo", "P3")["phone"] == PHONES[2]


# ---- the same person, with and without an id -------------------------------------------------------
def test_a_row_without_an_id_is_the_stored_person_with_its_name_and_phone(roster, units):
    roster.import_roster("demo", load(csv_file(good_rows(units))), commit=True)
    again = [["", "张伟", "+86 138 1234 1234", "网格长", "网格长", units["grid"], "2026-05-01", "", ""]]
    report = roster.import_roster("demo", load(csv_file(again)), commit=True)
    assert [(e.row, e.field, e.person_id) for e in report.errors] == [(1, "valid_from", "P1")]
    assert "stored post" in report.errors[0].message and not report.new
    elsewhere = [["", "张伟", PHONES[0], "网格长", "网格长", units["grid2"], "2026-05-01", "", ""]]
    report = roster.import_roster("demo", load(csv_file(elsewhere)), commit=True)
    assert not report.errors and report.people_added == 0 and [c["person_id"] for c in report.new] == ["P1"]
    assert counts(roster.engine) == (3, 5)
    with pytest.raises(VersionConflict, match="already holds") as caught:
        roster.create_post(
            "demo",
            **post_fields(units, person_id=None, name="张伟", phone=PHONES[0], unit_code=units["grid"])
            | {"kind": "leader", "role": "leader"},
        )
    assert caught.value.where["person_id"] == "P1"


@pytest.mark.parametrize("order", ["id first", "id last"])
def test_a_row_without_an_id_is_the_file_row_with_its_name_and_phone(roster, units, order):
    with_id = ["P1", "张伟", PHONES[0], "网格长", "网格长", units["grid"], "2026-01-01", "", ""]
    without = ["", "张伟", PHONES[0], "网格长", "网格长", units["grid"], "2026-01-01", "", ""]
    rows = [with_id, without] if order == "id first" else [without, with_id]
    report = roster.import_roster("demo", load(csv_file(rows)), commit=True)
    assert [(e.row, e.field, e.person_id) for e in report.errors] == [(2, "valid_from", "P1")]
    assert report.people_added == 1 and counts(roster.engine) == (1, 1)


def test_a_row_without_an_id_matching_nobody_or_two_people_stays_apart(roster, units):
    rows = [
        ["P1", "张伟", PHONES[0], "网格长", "网格长", units["grid"], "2026-01-01", "", ""],
        ["P9", "张伟", PHONES[0], "网格长", "网格长", units["grid2"], "2026-01-01", "", ""],  # a namesake
        ["", "张伟", PHONES[0], "专职网格员", "网格员", units["grid"], "2026-01-01", "", ""],  # which one?
        ["", "赵六", PHONES[3], "专职网格员", "网格员", units["grid"], "2026-01-01", "", ""],  # nobody yet
    ]
    report = roster.import_roster("demo", load(csv_file(rows)), commit=True)
    assert not report.errors and report.people_added == 4
    ids = [c["person_id"] for c in report.new]
    assert ids[:2] == ["P1", "P9"] and all(i.startswith("H") for i in ids[2:])
    (warning,) = [w for w in report.warnings if "row 3" in w]
    assert "P1" in warning and "P9" in warning and PHONES[0] not in warning


def test_the_same_role_on_a_unit_and_its_parent_or_child_at_once_is_warned(roster, units):
    rows = [
        ["P2", "李娜", PHONES[1], "专职网格员", "网格员", units["grid"], "2026-01-01", "", ""],
        ["P2", "李娜", PHONES[1], "专职网格员", "网格员", units["micro"], "2026-03-01", "", ""],  # child
        ["P1", "张伟", PHONES[0], "网格长", "网格长", units["grid"], "2026-01-01", "2026-02-01", ""],
        ["P1", "张伟", PHONES[0], "网格长", "网格长", units["micro"], "2026-02-01", "", ""],  # after: fine
        ["P1", "张伟", PHONES[0], "网格长", "网格员", units["micro"], "2026-01-01", "", ""],  # another role
    ]
    report = roster.import_roster("demo", load(csv_file(rows)), commit=True)
    assert not report.errors and len(report.new) == 5
    (warning,) = report.warnings
    assert warning.startswith("row 2: P2") and units["grid"] in warning and units["micro"] in warning
    assert all(p not in warning for p in PHONES)
    later = [["P2", "李娜", PHONES[1], "专职网格员", "网格员", units["grid2"], "2026-01-01", "", ""]]
    assert not roster.import_roster("demo", load(csv_file(later)), commit=False).warnings
    parent = [["P1", "张伟", PHONES[0], "网格长", "网格长", units["grid"], "2026-06-01", "", ""]]
    report = roster.import_roster("demo", load(csv_file(parent)), commit=False)  # against stored posts
    (warning,) = report.warnings
    assert warning.startswith("row 1: P1") and "stored post" in warning


# ---- the command line ------------------------------------------------------------------------------
runner = CliRunner()


def geogrid(engine, *args: str):
    url = engine.url.render_as_string(hide_password=False)
    return runner.invoke(app, ["--database-url", url, "--actor", "planner-li", *args], env={"COLUMNS": "200"})


def test_cli_import_is_a_dry_run_until_commit_and_exits_1_on_row_errors(roster, units, tmp_path):
    bad = [["P6", "钱七", "1381234", "专职网格员", "网格员", units["grid"], "2026-01-01", "", ""]]
    path = tmp_path / "花名册.csv"
    path.write_bytes(csv_file(good_rows(units) + bad, "gbk"))
    dry = geogrid(roster.engine, "people", "import", str(path), "--set", "demo")
    assert dry.exit_code == 1, dry.output
    assert "Dry run" in dry.output and "Nothing was written" in dry.output
    assert "row 5, 手机号 (phone) (P6)" in dry.output and "1381234" not in dry.output
    assert counts(roster.engine) == (0, 0)
    done = geogrid(roster.engine, "people", "import", str(path), "--set", "demo", "--commit")
    assert done.exit_code == 1 and "Written: 4 new post(s)" in done.output
    assert counts(roster.engine) == (3, 4)
    assert Store(roster.engine).audit("demo")[-1]["actor"] == "planner-li"


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_cli_export_reimports_and_list_masks_phones(roster, units, tmp_path, suffix):
    roster.import_roster("demo", load(csv_file(good_rows(units))), commit=True)
    out = tmp_path / f"export{suffix}"
    exported = geogrid(roster.engine, "people", "export", "--set", "demo", "--out", str(out))
    assert exported.exit_code == 0 and "Wrote 4 post(s)" in exported.output
    again = geogrid(roster.engine, "people", "import", str(out), "--set", "demo", "--commit")
    assert again.exit_code == 0, again.output
    assert read_roster(out)["phone"].tolist().count(PHONES[1]) == 2  # phones in full in an export
    listed = geogrid(
        roster.engine, "people", "list", "--set", "demo", "--at", "2026-12-01", "--unit", units["grid"]
    )
    assert listed.exit_code == 0 and "2 post(s)" in listed.output
    assert "138****1234" in listed.output and PHONES[0] not in listed.output
    full = geogrid(roster.engine, "people", "list", "--set", "demo", "--full-phones")
    assert PHONES[0] in full.output and "4 post(s)" in full.output
    assert "in full" in geogrid(roster.engine, "people", "export", "--help").output


def test_demo_loads_layers_and_roster_once_and_warns_of_missing_files(
    roster, demo_layers, demo_dir, tmp_path
):
    """``geogrid demo`` on a one-street county: buildings, sites and the roster loaded, roads missing."""
    street = demo_layers["streets"][demo_layers["streets"]["code"] == "150622001"]
    county = demo_layers["county"].copy()
    county["geometry"] = list(street.geometry)
    county.to_file(tmp_path / "county.geojson")
    street.to_file(tmp_path / "streets.geojson")
    for name in ("communities", "grids", "microgrids"):
        frame = demo_layers[name]
        frame[frame["code"].str.startswith("150622001")].to_file(tmp_path / f"{name}.geojson")
    buildings = gpd.read_file(demo_dir / "buildings.geojson")
    buildings[buildings["microgrid_code"].str.startswith("150622001001")].to_file(
        tmp_path / "buildings.geojson"
    )
    sites().to_file(tmp_path / "sites.geojson")
    u = {"grid": "150622001001001", "grid2": "150622001001002", "community": "150622001001"}
    (tmp_path / "roster.csv").write_bytes(csv_file(good_rows(u)))
    first = geogrid(roster.engine, "demo", "--set", "demo2", "--path", str(tmp_path))
    assert first.exit_code == 0, first.output
    assert "no roads.geojson" in first.output and "Imported: roster.csv → demo2" in first.output
    assert Layers(roster.engine).counts("demo2") == {
        "buildings": int(buildings["microgrid_code"].str.startswith("150622001001").sum()),
        "sites": 3,
        "roads": 0,
    }
    revision = Store(roster.engine).revision("demo2")
    again = geogrid(roster.engine, "demo", "--set", "demo2", "--path", str(tmp_path))
    assert again.exit_code == 0, again.output
    assert (
        "buildings are already loaded" in again.output
        and "roster is already loaded (4 posts)" in again.output
    )
    assert Store(roster.engine).revision("demo2") == revision and len(roster.posts("demo2")) == 4


def sites() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"id": ["S1", "S2", "S3"], "name": ["中心", "站一", "站二"], "kind": ["centre", "station", "other"]},
        geometry=gpd.points_from_xy([111.2, 111.21, 111.22], [39.9, 39.91, 39.92]),
        crs=4326,
    )
