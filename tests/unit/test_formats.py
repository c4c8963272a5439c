"""Every boundary format the README promises round-trips; encodings are detected; zip bombs are refused."""

from __future__ import annotations

import codecs
import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from geogrid import io
from geogrid.errors import ArchiveTooLarge, UnreadableFile
from geogrid.topology import check, repair

NAMES = ["薛家湾镇幸福社区第1网格", "沙圪堵镇和谐社区第2网格", "准格尔召镇龙凤社区第3网格"]
CODES = ["150622001001001", "150622001001002", "150622001001003"]


@pytest.fixture
def layer() -> gpd.GeoDataFrame:
    """Three Chinese-named grids with holes-free boxes near the demo county."""
    return gpd.GeoDataFrame(
        {"code": CODES, "name": NAMES},
        geometry=[shapely.box(111.2 + i / 100, 39.85, 111.21 + i / 100, 39.86) for i in range(3)],
        crs=4326,
    )


def _zip(folder: Path, stem: str, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for part in folder.glob(f"{stem}.*"):
            z.write(part, part.name)
    return archive


def _shapefile(frame: gpd.GeoDataFrame, folder: Path, *, encoding: str, cpg: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "layer.shp"
    pyogrio.write_dataframe(frame, path, encoding=encoding)
    path.with_suffix(".cpg").unlink(missing_ok=True)
    if cpg:
        path.with_suffix(".cpg").write_text(encoding)
    else:  # no language driver id either: nothing in the file names its encoding
        dbf = path.with_suffix(".dbf")
        data = bytearray(dbf.read_bytes())
        data[29] = 0
        dbf.write_bytes(bytes(data))
    return path


def _csv_lonlat(frame: gpd.GeoDataFrame, path: Path, encoding: str, lon: str, lat: str) -> Path:
    points = frame.geometry.representative_point()
    table = pd.DataFrame({"code": frame["code"], "name": frame["name"], lon: points.x, lat: points.y})
    table.to_csv(path, index=False, encoding=encoding)
    return path


WRITERS: dict[str, Callable[[gpd.GeoDataFrame, Path], Path]] = {
    "geojson": lambda f, d: io.write_layer(f, d / "layer.geojson"),
    "gpkg": lambda f, d: io.write_layer(f, d / "layer.gpkg"),
    "kml": lambda f, d: io.write_layer(f, d / "layer.kml"),
    "shp utf-8 .cpg": lambda f, d: io.write_layer(f, d / "layer.shp"),
    "shp gbk .cpg": lambda f, d: _shapefile(f, d / "s", encoding="GBK", cpg=True),
    "shp gbk detected": lambda f, d: _shapefile(f, d / "s", encoding="GBK", cpg=False),
    "shp utf-8 detected": lambda f, d: _shapefile(f, d / "s", encoding="UTF-8", cpg=False),
    "shp.zip": lambda f, d: io.write_layer(f, d / "layer.shp.zip"),
    "zip gbk detected": lambda f, d: _zip(
        _shapefile(f, d / "s", encoding="GBK", cpg=False).parent, "layer", d / "gbk.zip"
    ),
    "zip gbk .cpg": lambda f, d: _zip(
        _shapefile(f, d / "s", encoding="GBK", cpg=True).parent, "layer", d / "gbk.zip"
    ),
    "csv wkt": lambda f, d: io.write_layer(f, d / "layer.csv"),
    "csv wkt bom": lambda f, d: io.write_layer(f, d / "layer.csv", bom=True),
}


@pytest.mark.parametrize("kind", list(WRITERS))
def test_every_boundary_format_round_trips(layer, tmp_path, kind):
    path = WRITERS[kind](layer, tmp_path)
    back = io.read_boundaries(path, crs="wgs84" if path.suffix == ".csv" else None)
    assert back["code"].tolist() == CODES
    assert back["name"].tolist() == NAMES, kind
    assert set(back.geometry.geom_type) == {"MultiPolygon"}
    assert np.all(
        shapely.equals_exact(
            shapely.normalize(back.geometry.to_numpy()),
            shapely.normalize(io.as_multipolygons(layer.geometry.to_numpy())),
            1e-7,
        )
    )


@pytest.mark.parametrize(
    ("encoding", "lon", "lat"),
    [
        ("utf-8", "lon", "lat"),
        ("utf-8-sig", "lng", "lat"),
        ("gbk", "经度", "纬度"),
        ("gb18030", "经度", "纬度"),
    ],
)
def test_lonlat_csv_in_every_encoding_excel_writes(layer, tmp_path, encoding, lon, lat):
    path = _csv_lonlat(layer, tmp_path / "points.csv", encoding, lon, lat)
    back = io.read_layer(path, crs="wgs84", geometry="point")
    assert back["name"].tolist() == NAMES
    assert back.attrs["bom"] == (encoding == "utf-8-sig")
    expected = layer.geometry.representative_point()
    assert np.allclose(back.geometry.x, expected.x) and np.allclose(back.geometry.y, expected.y)
    # written back, a CSV keeps the byte-order mark Excel needs, and only then
    out = io.write_layer(back, tmp_path / "again.csv")
    assert out.read_bytes().startswith(codecs.BOM_UTF8) == (encoding == "utf-8-sig")
    assert pd.read_csv(out, encoding="utf-8-sig")["name"].tolist() == NAMES


def test_text_encoding_is_guessed_from_a_sample_cut_mid_character():
    text = "经度,纬度,名称\n111.2,39.85,薛家湾镇\n"
    assert io.text_encoding(text.encode("utf-8")[:-4]) == ("utf-8", False)  # cut inside 镇
    assert io.text_encoding(text.encode("gbk")) == ("gb18030", False)
    assert io.text_encoding(codecs.BOM_UTF8 + text.encode("utf-8")) == ("utf-8-sig", True)


def test_an_explicit_encoding_wins(layer, tmp_path):
    path = _csv_lonlat(layer, tmp_path / "points.csv", "gbk", "经度", "纬度")
    assert io.read_layer(path, crs="wgs84", encoding="gbk")["name"].tolist() == NAMES
    with pytest.raises(UnreadableFile, match="unknown encoding"):
        io.read_layer(path, crs="wgs84", encoding="klingon")


# ---- zip bombs: refused from the archive's directory, before anything is unpacked --------------------


def make_bomb(path: Path, unpacked: int, *, with_cpg: bool = False) -> Path:
    """A zipped shapefile whose .dbf declares ``unpacked`` bytes of records, all zeros (~1000:1)."""
    small = gpd.GeoDataFrame({"code": ["150622"]}, geometry=[shapely.box(111, 39, 112, 40)], crs=4326)
    folder = path.parent / "bomb-parts"
    folder.mkdir(exist_ok=True)
    pyogrio.write_dataframe(small, folder / "bomb.shp")
    dbf = bytearray((folder / "bomb.dbf").read_bytes())
    header_len = int.from_bytes(dbf[8:10], "little")
    record_len = int.from_bytes(dbf[10:12], "little")
    dbf[4:8] = (unpacked // record_len).to_bytes(4, "little")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for suffix in (".shp", ".shx", ".prj"):
            z.write(folder / f"bomb{suffix}", f"bomb{suffix}")
        if with_cpg:
            z.writestr("bomb.cpg", "UTF-8")
        with z.open("bomb.dbf", "w", force_zip64=True) as member:  # streamed: the test stays small too
            member.write(bytes(dbf[:header_len]))
            block = bytes(1 << 20)
            for _ in range(unpacked // len(block)):
                member.write(block)
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1.5 MB zip that unpacks to 1.5 GB."""
    return make_bomb(tmp_path_factory.mktemp("bomb") / "bomb.zip", 1500 << 20)


def test_a_zip_bomb_is_refused_by_size_and_ratio(bomb):
    assert bomb.stat().st_size < 3_000_000
    with pytest.raises(ArchiveTooLarge, match="would unpack to 1,573 MB") as info:
        io.read_boundaries(bomb)
    assert info.value.status == 413 and info.value.where["file"] == "bomb.zip"
    with pytest.raises(ArchiveTooLarge, match="unpacks 1,0[0-9]{2} times its packed size") as info:
        io.read_boundaries(bomb, max_unpacked_mb=10_000)
    assert info.value.where["field"] == "bomb.dbf"


def test_an_ordinary_zipped_shapefile_passes_the_check(layer, tmp_path):
    path = io.write_layer(layer, tmp_path / "layer.shp.zip")
    io.check_archive(path, max_unpacked_mb=1, max_ratio=100)
    with pytest.raises(ArchiveTooLarge):
        io.check_archive(path, max_unpacked_mb=0.0001)


PEAK = """
import json, sys
from geogrid import io

def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

path, call = sys.argv[1], sys.argv[2]
before = peak()
outcome = "returned"
try:
    if call == "read_boundaries":
        io.read_boundaries(path)
    else:
        outcome = repr(io.shapefile_encoding(path))
except Exception as exc:
    outcome = type(exc).__name__
print(json.dumps({"rise": peak() - before, "outcome": outcome}))
"""


@pytest.mark.parametrize(("call", "outcome"), [("read_boundaries", "ArchiveTooLarge"), ("encoding", "None")])
def test_a_zip_bomb_leaves_the_peak_memory_where_it_was(bomb, call, outcome):
    # In a fresh process, so that the peak (VmHWM) is this call's alone: the refusal, and the encoding
    # detection on its own (which used to read the whole 1.5 GB .dbf into memory).
    done = subprocess.run(
        [sys.executable, "-c", PEAK, str(bomb), call], capture_output=True, text=True, check=True, timeout=600
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["outcome"] == outcome
    assert result["rise"] < 200 * 2**20, f"peak RSS rose by {result['rise'] / 2**20:.0f} MB"


# ---- validate --out and repair: files any GIS reads ---------------------------------------------------


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson", ".shp"])
def test_a_report_with_no_problems_is_a_real_file_of_its_format(layer, tmp_path, suffix):
    report = check(layer)
    assert report.ok
    path = report.to_file(tmp_path / f"problems{suffix}")
    if suffix == ".gpkg":
        assert path.read_bytes().startswith(b"SQLite format 3\x00")
    info = pyogrio.read_info(path)
    assert info["features"] == 0
    assert len(pyogrio.read_dataframe(path)) == 0


def test_repair_gives_a_repeated_code_the_next_free_db11_code(layer):
    doubled = pd.concat([layer, layer.iloc[[1]].set_geometry([shapely.box(111.25, 39.85, 111.26, 39.86)])])
    result = repair(gpd.GeoDataFrame(doubled, crs=4326))
    codes = result.units["code"].tolist()
    assert codes == [*CODES, "150622001001004"]  # the same community, the first suffix after its last
    assert all(c.isdigit() and len(c) == 15 for c in codes)
    renamed = result.changes[result.changes["action"] == "renamed_duplicate"]
    assert renamed[["code", "other"]].values.tolist() == [["150622001001004", CODES[1]]]
