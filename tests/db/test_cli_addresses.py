"""geogrid addresses / geocode / queue on both databases: a registry imported (dry run, commit), listed and
exported (re-imports unchanged); a hotline file geocoded (UTF-8, GBK, .xlsx) into input columns plus the
result columns, bad rows in the errors file, unsure texts queued; the queue listed and resolved (the text
then geocodes by itself)."""

from __future__ import annotations

import csv
import datetime as dt

import pytest
from openpyxl import Workbook
from typer.testing import CliRunner

from geogrid.cli import app
from geogrid.cli.addresses import RESULT_COLUMNS
from geogrid.db.addresses import AddressStore
from tests.conftest import DEMO

runner = CliRunner()
STREET = "150622001"
COMMUNITY = "150622001001"
LEVELS = (("communities", "community"), ("grids", "grid"), ("microgrids", "microgrid"))


def geogrid(database_url: str, *args: str):
    return runner.invoke(app, ["--database-url", database_url, "--actor", "clerk-wang", *args])


def registry_rows() -> list[dict[str, str]]:
    """One community's demo addresses, and two compounds whose names sound alike (康和小区, 康禾小区)."""
    with open(DEMO / "addresses.csv", encoding="utf-8-sig", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["地址编码"][1:].startswith(COMMUNITY)]
    blank = dict.fromkeys(("道路", "门牌号", "别名", "标准地址", "村", "组"), "")
    for k, name in enumerate(("康和小区", "康禾小区")):
        for b in (1, 2, 3):
            rows.append(
                rows[10 * k + b]
                | blank
                | {"地址编码": f"A{COMMUNITY}99{k}00{b}", "小区": name, "楼栋": str(b)}
            )
    return rows


ROWS = registry_rows()
UNSURE = "康合小区2号楼"  # 和, 禾 and 合 sound alike: either compound's building 2


def write_csv(path, header, rows, encoding="utf-8"):
    with open(path, "w", encoding=encoding, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_csv(path):
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def county(database_url, store, demo_layers, tmp_path):
    """One street published as 'c' and one community's registry as a CSV file (not yet imported)."""
    for name, level in LEVELS:
        frame = demo_layers[name]
        store.import_units("c", frame[frame["code"].str.startswith(STREET)], level, commit=True)
    store.publish("c", dt.date(2026, 1, 1))
    header = list(ROWS[0])
    path = write_csv(tmp_path / "地址库.csv", header, [[r[h] for h in header] for r in ROWS])
    yield path
    with store.engine.begin() as conn:  # other modules empty the store without knowing these tables
        for table in ("geocode_queue", "address_alias", "address"):
            conn.exec_driver_sql(f"DELETE FROM {table}")


@pytest.fixture
def registered(database_url, county):
    result = geogrid(database_url, "addresses", "import", str(county), "--set", "c", "--commit")
    assert result.exit_code == 0, result.output
    return county


def test_a_registry_import_is_a_dry_run_until_commit(database_url, store, county, tmp_path):
    dry = geogrid(database_url, "addresses", "import", str(county), "--set", "c")
    assert dry.exit_code == 0, dry.output
    assert "Dry run" in dry.output and "--commit" in dry.output
    addresses = AddressStore(store.engine, "t")
    assert addresses.addresses("c").empty
    done = geogrid(database_url, "addresses", "import", str(county), "--set", "c", "--commit")
    assert done.exit_code == 0, done.output
    assert len(addresses.addresses("c")) == len(ROWS)
    listed = geogrid(database_url, "addresses", "list", "--set", "c", "--limit", "3")
    assert listed.exit_code == 0, listed.output
    assert ROWS[0]["地址编码"] in listed.output and f"{len(ROWS):,} address(es), 3 shown" in listed.output
    for suffix in ("csv", "xlsx"):
        out = tmp_path / f"export.{suffix}"
        exported = geogrid(database_url, "addresses", "export", "--set", "c", "--out", str(out))
        assert exported.exit_code == 0, exported.output
        again = geogrid(database_url, "addresses", "import", str(out), "--set", "c")
        assert again.exit_code == 0, again.output
        assert addresses.import_addresses("c", _read(out)).summary()["unchanged"] == len(ROWS)


def _read(path):
    from geogrid.addresses.registry import read_addresses

    return read_addresses(path)


def test_a_registry_with_a_bad_row_exits_1_naming_it(database_url, store, county, tmp_path):
    header = list(ROWS[0])
    rows = [[r[h] for h in header] for r in ROWS[:3]]
    rows[1][header.index("经度")] = "east"
    bad = write_csv(tmp_path / "bad.csv", header, rows)
    result = geogrid(database_url, "addresses", "import", str(bad), "--set", "c", "--commit")
    assert result.exit_code == 1
    assert "row 2" in result.output and "lon" in result.output
    kept = AddressStore(store.engine, "t").addresses("c")  # the good rows are written, as for rosters
    assert sorted(kept["address_id"]) == sorted([ROWS[0]["地址编码"], ROWS[2]["地址编码"]])


@pytest.mark.parametrize("kind", ["utf-8", "gbk", "xlsx"])
def test_geocode_writes_every_row_with_its_result_and_queues_unsure_texts(
    database_url, store, registered, tmp_path, kind
):
    good, unsure = ROWS[0], UNSURE
    header = ["工单号", "来电时间", "地址"]
    rows = [
        ["W1", "2026-03-01 08:00", good["标准地址"]],
        ["W2", "2026-03-01 08:05", unsure],
        ["W3", "2026-03-01 08:06", "！！！"],
        ["W4", "2026-03-01 08:07", "路" * 900],
        ["W5", "2026-03-01 08:09", "内蒙古准格尔旗" + good["标准地址"]],
        ["W6", "2026-03-01 08:10", unsure],
    ]
    if kind == "xlsx":
        book = Workbook()
        book.active.append(["12345热线工单导出"])  # a title above the header, as offices write them
        book.active.append(header)
        for r in rows:
            book.active.append(r)
        source = tmp_path / "工单.xlsx"
        book.save(source)
    else:
        source = write_csv(tmp_path / "工单.csv", header, rows, encoding=kind)
    out, errors = tmp_path / "placed.csv", tmp_path / "bad.csv"
    result = geogrid(
        database_url, "geocode", str(source), "--set", "c", "--out", str(out), "--errors", str(errors),
        "--chunk-rows", "4",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "6 rows" in result.output and "2 placed" in result.output and "2 queued" in result.output
    placed = read_csv(out)
    assert list(placed[0]) == [*header, *RESULT_COLUMNS]
    assert [p["工单号"] for p in placed] == ["W1", "W2", "W3", "W4", "W5", "W6"]
    assert [p["状态"] for p in placed] == ["placed", "queued", "error", "error", "placed", "queued"]
    first = placed[0]
    assert first["地址编码"] == good["地址编码"] and first["建筑编号"] == good["建筑编号"]
    assert first["微网格"] == good["建筑编号"].split("-")[0] and float(first["置信度"]) >= 0.9
    assert abs(float(first["经度"]) - float(good["经度"])) < 1e-6 and first["匹配"]
    bad = read_csv(errors)
    assert [(b["行号"], "问题" in b) for b in bad] == [("3", True), ("4", True)]
    items = AddressStore(store.engine, "t").queue("c")
    assert len(items) == 1 and int(items.iloc[0]["seen"]) == 2


def test_geocode_without_queue_and_a_missing_column(database_url, store, registered, tmp_path):
    source = write_csv(tmp_path / "in.csv", ["address"], [[UNSURE], [ROWS[1]["标准地址"]]])
    out = tmp_path / "out.csv"
    result = geogrid(
        database_url, "geocode", str(source), "--set", "c", "--out", str(out), "--address-col", "address",
        "--no-queue",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [r["状态"] for r in read_csv(out)] == ["unsure", "placed"]
    assert AddressStore(store.engine, "t").queue("c").empty
    missing = geogrid(database_url, "geocode", str(source), "--set", "c", "--out", str(out))
    assert missing.exit_code != 0
    assert "地址" in missing.output + str(missing.exception)


def test_the_errors_file_names_control_characters_and_masks_phones(database_url, store, registered, tmp_path):
    texts = ["康和小区\x005号楼", "\x07", "13812341234\x00"]
    source = write_csv(tmp_path / "in.csv", ["地址"], [[t] for t in texts])
    out, errors = tmp_path / "out.csv", tmp_path / "bad.csv"
    result = geogrid(
        database_url, "geocode", str(source), "--set", "c", "--out", str(out), "--errors", str(errors)
    )
    assert result.exit_code == 0, result.output
    data = errors.read_bytes()
    assert b"\x00" not in data and b"\x07" not in data and b"13812341234" not in data
    bad = read_csv(errors)
    assert [b["地址"] for b in bad] == ["康和小区\\x005号楼", "\\x07", "138****1234\\x00"]


def test_a_resolved_queue_item_geocodes_by_itself(database_url, store, registered, tmp_path):
    text = "康荷小区二栋"
    source = write_csv(tmp_path / "in.csv", ["地址"], [[text]])
    out = tmp_path / "out.csv"
    first = geogrid(database_url, "geocode", str(source), "--set", "c", "--out", str(out))
    assert first.exit_code == 0, first.output
    assert read_csv(out)[0]["状态"] == "queued"
    listed = geogrid(database_url, "queue", "list", "--set", "c")
    assert listed.exit_code == 0, listed.output
    item = AddressStore(store.engine, "t").queue("c").iloc[0]
    assert str(int(item["id"])) in listed.output
    target = ROWS[2]["地址编码"]
    done = geogrid(database_url, "queue", "resolve", str(int(item["id"])), "--address", target, "--set", "c")
    assert done.exit_code == 0, done.output
    again = geogrid(database_url, "geocode", str(source), "--set", "c", "--out", str(out))
    assert again.exit_code == 0, again.output
    row = read_csv(out)[0]
    assert (row["状态"], row["地址编码"], row["匹配"]) == ("placed", target, "alias=exact")
    assert AddressStore(store.engine, "t").queue("c").empty
    wrong = geogrid(database_url, "queue", "resolve", "1", "--set", "c")
    assert wrong.exit_code == 2 and "--address" in wrong.output


def test_the_demo_registry_geocodes_hotline_renderings_with_the_micro_grid_of_the_index(
    database_url, store, county, demo_dir, tmp_path
):
    """The whole demo registry (9,243 addresses) against a set holding one street: variants of its
    addresses are placed or queued, and a placed one's micro-grid is the index's (none outside the street)."""
    from geogrid.addresses.registry import read_addresses
    from geogrid.addresses.variants import variants

    done = geogrid(
        database_url, "addresses", "import", str(demo_dir / "addresses.csv"), "--set", "c", "--commit"
    )
    assert done.exit_code == 0, done.output
    wanted = variants(read_addresses(demo_dir / "addresses.csv"), 300, seed=4242)
    source = write_csv(tmp_path / "hotline.csv", ["地址", "答案"], [[v.text, v.address_id] for v in wanted])
    out = tmp_path / "placed.csv"
    result = geogrid(database_url, "geocode", str(source), "--set", "c", "--out", str(out), "--no-queue")
    assert result.exit_code == 0, result.output
    rows = read_csv(out)
    assert len(rows) == 300 and {r["状态"] for r in rows} <= {"placed", "unsure"}
    placed = [r for r in rows if r["状态"] == "placed"]
    assert len(placed) >= 270, result.output
    for r in placed:
        code = r["建筑编号"].split("-")[0]
        assert r["微网格"] == (code if code.startswith(STREET) else ""), r
