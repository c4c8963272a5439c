"""geogrid incidents import on both databases: a hotline export as UTF-8 CSV, GBK CSV and .xlsx; a dry run
writes nothing; good rows kept beside bad ones (each named by row and column, phones never repeated);
importing the same file again creates nothing; a changed work order is a row error; kpis and escalate."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt

import pytest
import sqlalchemy as sa
from openpyxl import Workbook
from typer.testing import CliRunner

from geogrid.addresses.registry import read_addresses
from geogrid.cli import app
from geogrid.db import Store, incident_imports, incident_kpis
from geogrid.db.addresses import AddressStore
from geogrid.db.incident_imports import MEMO_KEYS, VersionIndexes, import_hotline
from geogrid.db.incidents import IncidentStore
from geogrid.errors import ImportCollision
from geogrid.incidents import hotline
from geogrid.incidents.calendar import default_calendar
from geogrid.incidents.catalogue import catalogue
from geogrid.incidents.intake import locate
from tests.api.test_geocode import HOME, ROWS, STREET, csv_bytes
from tests.conftest import BACKENDS, empty_store, migrated_engine

runner = CliRunner()
HEADER = [
    "工单编号",
    "受理时间",
    "事件类型",
    "诉求内容",
    "事发地址",
    "经度",
    "纬度",
    "坐标系",
    "来电人",
    "联系电话",
]
PHONE = "13812341234"


@pytest.fixture(scope="module", params=BACKENDS)
def url(request, tmp_path_factory, demo_layers):
    """A database of its own (incidents are kept forever: no other module may empty it) with one street."""
    with migrated_engine(request.param, tmp_path_factory) as db:
        store = empty_store(db)
        for name, level in (("communities", "community"), ("grids", "grid"), ("microgrids", "microgrid")):
            frame = demo_layers[name]
            store.import_units("s", frame[frame["code"].str.startswith(STREET)], level, commit=True)
        store.publish("s", dt.date(2026, 1, 1))
        AddressStore(db, "t").import_addresses("s", read_addresses(csv_bytes(ROWS), "a.csv"), commit=True)
        micro = demo_layers["microgrids"]
        point = micro[micro["code"].str.startswith(HOME)].geometry.iloc[0].representative_point()
        yield db.url.render_as_string(hide_password=False), db, (point.x, point.y)


def geogrid(url, *args):
    return runner.invoke(app, ["--database-url", url, "--actor", "clerk-zhang", *args])


def rows(point, prefix):
    """Five good rows (coordinates in two CRSs, an address, no work order number) and three bad ones."""
    lon, lat = point
    compound = next(r for r in ROWS if r["小区"] and r["楼栋"] and r["地址编码"][1:].startswith(HOME))
    return [
        [f"{prefix}-1", "2026-11-03 09:30:00", "E0102", "路边垃圾", "", lon, lat, "wgs84", "张伟", PHONE],
        [f"{prefix}-2", "2026/11/03 10:00", "暴露垃圾", "垃圾", "", lon, lat, "", "", ""],
        [f"{prefix}-3", "2026-11-03T11:00:00+08:00", "E0601", "邻里纠纷", f"{compound['小区']}{compound['楼栋']}号楼", "", "", "", "李娜", ""],
        [f"{prefix}-4", "2026-11-04 08:00", "C0104", "路灯不亮", "", lon, lat, "cgcs2000", "", ""],
        ["", "2026-11-04 09:00", "E0503", f"乱停车 {prefix}", "", lon, lat, "wgs84", "", ""],
        [f"{prefix}-bad-1", "昨天", "E0102", "时间不对", "", lon, lat, "", "", PHONE],
        [f"{prefix}-bad-2", "2026-11-04 09:00", "飞碟", "类别不对", "", lon, lat, "", "", ""],
        [f"{prefix}-bad-3", "2026-11-04 09:00", "E0102", "不在县里", "", 0.5, 0.5, "", "", ""],
    ]  # fmt: skip


def write(path, data, encoding="utf-8"):
    if path.suffix == ".xlsx":
        book = Workbook()
        sheet = book.active
        sheet.append(["12345 热线工单导出"])  # a title above the header, as offices do
        sheet.append(HEADER)
        for row in data:
            sheet.append(row)
        book.save(path)
        return path
    with open(path, "w", encoding=encoding, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(data)
    return path


def count(db, where="1=1"):
    with db.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM incident WHERE {where}")).scalar()


@pytest.mark.parametrize(("suffix", "encoding"), [(".csv", "utf-8"), (".csv", "gbk"), (".xlsx", None)])
def test_a_hotline_export_imports_once_keeping_good_rows(url, tmp_path, suffix, encoding):
    database_url, db, point = url
    prefix = f"{suffix[1:]}{encoding or ''}"
    path = write(tmp_path / f"工单{suffix}", rows(point, prefix), encoding or "utf-8")
    before = count(db)
    dry = geogrid(database_url, "incidents", "import", str(path), "--set", "s")
    assert dry.exit_code == 1 and "Dry run" in dry.output and count(db) == before
    errors = tmp_path / "errors.csv"
    done = geogrid(
        database_url, "incidents", "import", str(path), "--set", "s", "--commit", "--errors", str(errors)
    )
    assert done.exit_code == 1, done.output  # bad rows refused, good ones written
    assert count(db) == before + 5
    assert count(db, f"idem_key = 'hotline:{prefix}-3' AND placed_by = 'address'") == 1
    assert count(db, f"idem_key = 'hotline:{prefix}-4' AND crs = 'cgcs2000' AND microgrid IS NOT NULL") == 1
    incidents = IncidentStore(db, catalogue(), default_calendar())
    with db.connect() as conn:
        one = conn.execute(
            sa.text(f"SELECT id FROM incident WHERE idem_key = 'hotline:{prefix}-1'")
        ).scalar_one()
    item, line = incidents.get("s", one), incidents.log("s", one)[0]
    assert item["flags"] == [] and item["media"] == [] and item["reporter_phone"] == PHONE
    assert line["action"] == "report" and line["detail"]["placement"]["microgrid"] == item["microgrid"]
    assert item["reported_at"] == dt.datetime(2026, 11, 3, 1, 30, tzinfo=dt.UTC)  # 09:30 in Beijing
    with open(errors, encoding="utf-8-sig") as f:
        refused = {int(r["行号"]): r for r in csv.DictReader(f)}
    first = 3 if suffix == ".xlsx" else 2  # the title row above the header
    assert set(refused) == {first + 5, first + 6, first + 7}, refused
    assert refused[first + 5]["列"] == "受理时间" and refused[first + 6]["列"] == "事件类型"
    assert PHONE not in done.output and PHONE not in errors.read_text(encoding="utf-8-sig")
    again = geogrid(database_url, "incidents", "import", str(path), "--set", "s", "--commit")
    assert count(db) == before + 5, again.output  # nothing twice
    assert "5" in again.output  # seen before
    changed = rows(point, prefix)
    changed[0][3] = "内容被改过"
    refused_again = geogrid(
        database_url,
        "incidents",
        "import",
        str(write(tmp_path / f"改{suffix}", changed, encoding or "utf-8")),
        "--set",
        "s",
        "--commit",
    )
    assert "imported before with other content" in refused_again.output and count(db) == before + 5
    with db.begin() as conn:  # the imports' tallies, held back to their commits, equal a rebuild
        set_id = conn.execute(sa.text("SELECT id FROM boundary_set WHERE name = 's'")).scalar_one()
        kept = incident_kpis.tallies(conn, set_id)
        incident_kpis.retally(conn, set_id)
        assert kept and incident_kpis.tallies(conn, set_id) == kept
        conn.rollback()


def test_a_renamed_copy_imports_as_the_same_and_an_overlong_cell_is_a_row_error(url, tmp_path):
    database_url, db, point = url
    data = rows(point, "copy")[:2]
    write(tmp_path / "工单.csv", data)
    first = geogrid(database_url, "incidents", "import", str(tmp_path / "工单.csv"), "--set", "s", "--commit")
    assert first.exit_code == 0, first.output
    before = count(db)
    write(tmp_path / "工单(1).csv", data)  # downloaded again
    again = geogrid(
        database_url, "incidents", "import", str(tmp_path / "工单(1).csv"), "--set", "s", "--commit"
    )
    assert again.exit_code == 0 and count(db) == before, again.output
    long_phone = [
        [
            "copy-9",
            "2026-11-04 09:00",
            "E0102",
            "两个电话",
            "",
            point[0],
            point[1],
            "",
            "",
            f"{PHONE}（本人）13900002222（家属）13700003333（邻居）",
        ]
    ]
    write(tmp_path / "long.csv", long_phone + rows(point, "copy2")[:1])
    mixed = geogrid(database_url, "incidents", "import", str(tmp_path / "long.csv"), "--set", "s", "--commit")
    assert mixed.exit_code == 1 and "联系电话 is longer than 40" in mixed.output and PHONE not in mixed.output
    assert count(db) == before + 1  # the good row beside it kept, on both databases
    nul = [["copy-10", "2026-11-04 09:00", "E0102", "路边\x00垃圾", "", point[0], point[1], "", "", ""]]
    write(tmp_path / "nul.csv", nul + rows(point, "copy3")[:1])  # a NUL byte from a broken export
    held = geogrid(database_url, "incidents", "import", str(tmp_path / "nul.csv"), "--set", "s", "--commit")
    assert held.exit_code == 1 and "诉求内容 holds a NUL character" in held.output, held.output
    assert count(db) == before + 2  # a row error, not the database's refusal of the whole COPY


def test_figures_and_escalation_from_the_command_line(url, tmp_path):
    database_url, db, point = url
    write(tmp_path / "k.csv", rows(point, "kpi"))
    geogrid(database_url, "incidents", "import", str(tmp_path / "k.csv"), "--set", "s", "--commit")
    out = tmp_path / "kpis.csv"
    got = geogrid(
        database_url,
        "incidents",
        "kpis",
        "--set",
        "s",
        "--start",
        "2026-11-01",
        "--end",
        "2026-12-01",
        "--by",
        "community",
        "--out",
        str(out),
    )
    assert got.exit_code == 0, got.output
    with open(out, encoding="utf-8-sig") as f:
        figures = {r["unit"]: r for r in csv.DictReader(f)}
    assert int(figures[HOME]["received"]) >= 5
    escalated = geogrid(database_url, "incidents", "escalate", "--set", "s")
    assert escalated.exit_code == 0 and "Escalated" in escalated.output
    assert count(db, "state = 'escalated'") > 0  # November's limits passed long ago


def import_file(db, path, chunk_rows=3):
    """import_hotline with commit, ``chunk_rows`` a chunk (the CLI's path, small chunks)."""
    incidents = IncidentStore(db, catalogue(), default_calendar(), actor="clerk-zhang")
    index_on = VersionIndexes(Store(db), "s")
    made = import_hotline(
        incidents, "s", path, index_on, None, commit=True, chunk_rows=chunk_rows, actor="clerk-zhang"
    )
    return incidents, index_on, made


@pytest.mark.parametrize("memo", [MEMO_KEYS, 1])
def test_imported_rows_are_stored_as_reports_made_one_by_one(url, tmp_path, monkeypatch, memo):
    """Column by column through COPY (text with tabs, newlines, backslashes and quotes), each chunk beside
    the next, a work order repeated in a later chunk and one changed: each incident and its first log line
    as IncidentStore.create makes them; with memo 1 the import finds its own rows in its transaction."""
    _, db, (lon, lat) = url
    monkeypatch.setattr(incident_imports, "MEMO_KEYS", memo)
    prefix = f"exact{memo}"
    said = 'tab\there "quoted" back\\slash\nnew line\r\n中文'
    data = [
        [f"{prefix}-{i}", f"2026-11-05 {i:02d}:15", ("E0102", "C0104")[i % 2], f"{said} {i}", "", lon, lat,
         ("wgs84", "gcj02", "cgcs2000")[i % 3], "王五" if i == 2 else "", PHONE if i == 4 else ""]
        for i in range(14)
    ]  # fmt: skip  # more than the rows read with the header: the repeats fall in later chunks
    data.append(list(data[1]))  # the same work order again, in the last chunk: seen before
    data.append([*data[3][:3], "改过了", *data[3][4:]])  # imported before with other content
    path = write(tmp_path / "exact.csv", data)
    incidents, index_on, report = import_file(db, path)
    assert (report.new, report.seen_before) == (14, 1)
    assert [(e.row, e.field) for e in report.errors] == [(17, "工单编号")]
    with open(path, encoding="utf-8", newline="") as f:
        cells = list(csv.reader(f))
    _, good, _ = hotline.read(cells[0], cells[1:15], 2, catalogue(), source=path.name)
    skip = {"id", "received_at", "updated_at", "idem_key"}
    for i, incident_id in enumerate(report.ids):
        got = incidents.get("s", incident_id)
        mine = good.report(i)
        twin = dataclasses.replace(mine, key=f"twin-{prefix}-{i}")
        made, _ = incidents.create("s", twin, locate(mine, index_on, None), "clerk-zhang")
        assert got["description"] == f"{said} {i}"
        assert {k: v for k, v in got.items() if k not in skip} == {
            k: v for k, v in made.items() if k not in skip
        }
        line, twin_line = incidents.log("s", incident_id)[0], incidents.log("s", made["id"])[0]
        assert line["detail"] == twin_line["detail"]
        assert {k: line[k] for k in ("seq", "action", "from_state", "to_state", "actor", "attachments")} == {
            k: twin_line[k] for k in ("seq", "action", "from_state", "to_state", "actor", "attachments")
        }


def test_keys_taken_between_look_up_and_write_fail_the_import_whole(url, tmp_path, monkeypatch):
    """Another writer taking a key after the import looked it up: 409, and nothing of the file kept."""
    _, db, point = url
    path = write(tmp_path / "taken.csv", rows(point, "taken")[:4])
    import_file(db, path)
    before = count(db)
    fresh = write(tmp_path / "taken2.csv", rows(point, "taken-new")[:4] + rows(point, "taken")[:1])
    monkeypatch.setattr(incident_imports._Rows, "_known", lambda self, keys: {})  # as if looked up too early
    with pytest.raises(ImportCollision) as caught:
        import_file(db, fresh, chunk_rows=2)
    assert caught.value.status == 409 and count(db) == before
