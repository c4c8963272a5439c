"""Coverage maps: features per layer, popups and colours against the legend, no external host, GCJ-02.

A small county (five cells, four grids, one staffed each way) goes through the real
:func:`geogrid.coverage.coverage`; the demo county (slow) checks the planted cases. Each page is parsed
(html.parser) to prove that it references nothing outside itself: every ``src``/``href``/``url(...)`` is
relative, loopback or ``data:``, and outside the inlined Leaflet (checked byte for byte against the vendored
file) no text names another host — except the tile URL when one is given.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geogrid import maps
from geogrid.coverage import coverage
from geogrid.crs import wgs84_to_gcj02
from geogrid.errors import NotFound, UnknownCRS
from geogrid.io import read_boundaries
from geogrid.people import POST_COLUMNS, mask_phone
from geogrid.rosters import read_roster, validate_rows
from geogrid.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "boundaries" / "demo"
AT = dt.date(2026, 12, 1)
X0, Y0, W = 111.20, 39.85, 0.01
COUNTY = "150622"
G1, G2, G3, G4 = (f"150622001001{i:03d}" for i in range(1, 5))
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
FIT = re.compile(r"map_\d+\.fitBounds\(\s*(\[\[.*?\]\])", re.S)  # the map's, not Leaflet's own
TILES = "https://tiles.intranet.example/tianditu/{z}/{x}/{y}.png"


# --- a small county through the real coverage report ----------------------------------------------------


def cell(i: float, width: float = 1.0) -> shapely.Polygon:
    return shapely.box(X0 + i * W, Y0, X0 + (i + width) * W, Y0 + W)


def post(n, person, role, unit, *, end=None, buildings=(), name=None):
    return {
        "post_id": n,
        "person_id": person,
        "name": name or f"name {person}",
        "phone": f"138{n:08d}",
        "kind": {"leader": "leader", "building_head": "building_head"}.get(role, "worker_fulltime"),
        "role": role,
        "unit_code": unit,
        "valid_from": dt.date(2026, 1, 1),
        "valid_to": end,
        "buildings": list(buildings),
    }


def frame(rows) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        [{"code": c, "name": n, "parent_code": p, "households": h} for c, n, p, h, _ in rows],
        geometry=[g for *_, g in rows],
        crs=4326,
    )


def small_report(name: str | None = None):
    """Four grids: staffed, no leader, no worker (its worker left), unstaffed; a fifth cell in no grid.

    With ``name``, every grid, site and person is called that (and the set too): a hostile name.
    """
    grids = [
        (G1, "东苑 <b>&", "150622001001", 400, cell(0)),
        (G2, "西苑", "150622001001", 100, cell(1)),
        (G3, "南苑", "150622001001", 600, cell(2)),
        (G4, "北苑", "150622001001", 350, cell(2.9, 1.1)),  # overlaps G3: a topology problem
    ]
    if name is not None:
        grids = [(c, name, p, h, g) for c, _, p, h, g in grids]
    units = {"county": frame([(COUNTY, "县", None, 1450, cell(0, 5))]), "grid": frame(grids)}
    posts = pd.DataFrame(
        [
            post(1, "p1", "leader", G1, name="张伟"),
            post(2, "p2", "worker", G1),
            post(3, "p3", "building_head", G1, buildings=["b1", "b2"], name="周强"),
            post(4, "p4", "worker", G2),
            post(5, "p5", "leader", G3),
            post(6, "p6", "worker", G3, end=dt.date(2026, 11, 15)),
        ],
        columns=POST_COLUMNS,
    )
    if name is not None:
        posts["name"] = name
    homes = [
        ("b1", 30, 0.2),
        ("b2", 40, 0.4),
        ("b3", 100, 1.5),
        ("b4", 250, 2.5),
        ("b5", 300, 3.5),
        ("b6", 9, 3.7),
    ]
    buildings = gpd.GeoDataFrame(
        [{"id": i, "microgrid_code": "", "households": h} for i, h, _ in homes],
        geometry=[shapely.Point(X0 + x * W, Y0 + W / 2) for *_, x in homes],
        crs=4326,
    )
    sites = gpd.GeoDataFrame(
        {
            "id": ["s1", "s2"],
            "name": ["中心", "站"],
            "kind": ["centre", "station"],
            "hours": ["08:30-17:30"] * 2,
        },
        geometry=[shapely.Point(X0 + 0.5 * W, Y0 + W / 2), shapely.Point(X0 + 1.5 * W, Y0 + W / 2)],
        crs=4326,
    )
    if name is not None:
        sites["name"] = name
    return coverage(
        units, posts, buildings, sites, None, at=AT, set_name=name or "small", mask=mask_phone, minutes=5
    )


@pytest.fixture(scope="module")
def report():
    return small_report()


@pytest.fixture(scope="module")
def pages(report) -> dict[str, str]:
    return {kind: maps.build_map(kind, report) for kind in maps.KINDS}


# --- reading a page back --------------------------------------------------------------------------------


def layers(page: str) -> dict[str, list[dict[str, Any]]]:
    """Each GeoJSON layer's features, by the class its paths carry."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, css in re.findall(
        r'var (geo_json_\d+) = L\.geoJson\(null, \{.*?"className": "([\w-]+)"', page, re.S
    ):
        start = page.index(f"{name}_add({{") + len(f"{name}_add(")
        data, _ = json.JSONDecoder().raw_decode(page, start)
        out[css] = data["features"]
    return out


class Page(HTMLParser):
    """Every URL-bearing attribute, script source and inline style, and the legend's entries."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self.styles: list[str] = []
        self.script_src: list[str] = []
        self.legend: dict[str, dict[str, tuple[str, str]]] = {}  # layer class -> key -> (colour, label)
        self.counts: dict[str, dict[str, int]] = {}
        self._in: list[str] = []
        self._section = ""
        self._item: str | None = None
        self._label = self._count = self._where = ""
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self._in.append(tag)
        for name in ("src", "href", "action", "poster", "srcset", "data", "xlink:href", "background"):
            if name in a:
                self.urls.append(a[name])
        if "style" in a:
            self.styles.append(a["style"])
        if tag == "script" and "src" in a:
            self.script_src.append(a["src"])
        classes = a.get("class", "").split()
        if "geogrid-legend-section" in classes:
            self._section = a["data-layer"]
            self.legend.setdefault(self._section, {})
            self.counts.setdefault(self._section, {})
        if "geogrid-legend-item" in classes:
            self._item = a["data-key"]
            self.legend.setdefault(self._section, {})[a["data-key"]] = (a["data-color"], "")
        self._where = (
            "label"
            if "geogrid-legend-label" in classes
            else "count"
            if "geogrid-legend-count" in classes
            else ""
        )

    def handle_endtag(self, tag: str) -> None:
        if self._in:
            self._in.pop()
        if tag == "div" and self._item is not None:
            colour, _ = self.legend[self._section][self._item]
            self.legend[self._section][self._item] = (colour, self._label)
            self.counts.setdefault(self._section, {})[self._item] = int(self._count)
            self._item, self._label, self._count = None, "", ""
        self._where = ""

    def handle_data(self, data: str) -> None:
        if self._in and self._in[-1] == "style":
            self.styles.append(data)
        elif self._item is not None and self._where == "label":
            self._label += data
        elif self._item is not None and self._where == "count":
            self._count += data


def leaflet_script() -> str:
    """The vendored leaflet.js as the page inlines it (source-map comment dropped)."""
    text = (maps.LEAFLET / "leaflet.js").read_text("utf-8")
    return re.sub(r"\s*//# sourceMappingURL=\S+\s*$", "", text)


def local(url: str, tile_host: str | None = None) -> bool:
    """True for what loads nothing from another host: relative, fragment, data:, about:, loopback, tiles."""
    parts = urlsplit(url.strip())
    if parts.scheme in ("data", "about", "blob") or (not parts.scheme and not parts.netloc):
        return True
    return parts.hostname in LOOPBACK or (tile_host is not None and parts.hostname == tile_host)


def outside_hosts(page: str, tile_url: str | None = None) -> list[str]:
    """Every reference in ``page`` to something outside it (empty: the page is self-contained)."""
    tile_host = urlsplit(tile_url).hostname if tile_url else None
    parsed = Page(page)
    bad = [u for u in parsed.urls if not local(u, tile_host)]
    bad += [f"<script src={s}>" for s in parsed.script_src]
    for css in parsed.styles:
        bad += [u for u in re.findall(r"url\(\s*['\"]?([^'\")]+)", css) if not local(u, tile_host)]
        bad += re.findall(r"@import[^;]*", css)
    # Outside the inlined Leaflet (itself the vendored file, byte for byte), no text may name a host:
    # not in a script, a string, a comment or a style. Leaflet names only its site (licence comment,
    # the attribution prefix the page replaces) and the SVG namespace, neither ever fetched.
    vendored = leaflet_script()
    assert page.count(vendored) == 1, "the inlined Leaflet differs from geogrid/static/leaflet/leaflet.js"
    rest = page.replace(vendored, "")
    for found in re.findall(r"(?:[a-z][a-z0-9+.-]*:)?//[^\s\"'<>)\\]+", rest, re.I):
        if not found.lower().startswith(("data:", "about:")) and not local(found, tile_host):
            bad.append(found)
    return bad


# --- the three maps on the small county -----------------------------------------------------------------


EXPECTED = {  # layer class -> legend key -> features
    "responsibility": {
        "geogrid-grid": {"staffed": 1, "no_leader": 1, "no_worker": 1, "unstaffed": 1},
        "geogrid-load": {"400 and more": 1, "100–200": 1, "no worker": 2},
    },
    "gaps": {
        "geogrid-grid": {"grid": 4},
        "geogrid-gap": {"gap": 1},
        "geogrid-short": {"no_leader": 1, "no_worker": 1, "unstaffed": 1},
        "geogrid-norm": {"under": 1, "over": 1},
    },
    "service": {
        "geogrid-grid": {"grid": 4},
        "geogrid-reach": {"reach": 2},
        "geogrid-site": {"centre": 1, "station": 1},
    },
}


@pytest.mark.parametrize("kind", maps.KINDS)
def test_each_layer_holds_its_features_and_the_legend_counts_them(pages, report, kind):
    found = layers(pages[kind])
    legend = Page(pages[kind]).counts
    assert len(found[maps.GRID_CLASS]) == len(report.grids) == 4
    for css, expected in EXPECTED[kind].items():
        keys = pd.Series([f["properties"]["key"] for f in found[css]]).value_counts().to_dict()
        assert keys == expected, css
        assert {k: n for k, n in legend[css].items() if n} == expected, css
    assert set(found) == set(legend), "every layer has a legend section"
    for css, features in found.items():
        assert sum(legend[css].values()) == len(features), css


def test_the_gaps_map_shows_every_topology_problem(pages, report):
    problems = layers(pages["gaps"])["geogrid-problem"]
    assert len(problems) == len(report.problems) and {"gap", "overlap"} <= {
        p["properties"]["key"] for p in problems
    }
    overlap = next(p for p in problems if p["properties"]["key"] == "overlap")
    assert G3 in overlap["properties"]["popup"] and G4 in overlap["properties"]["popup"]


def test_the_service_map_marks_the_buildings_outside_every_reach(pages, report):
    outside = layers(pages["service"])["geogrid-outside"]
    assert sorted(f["properties"]["households"] for f in outside) == sorted(report.outside["households"])
    assert len(outside) == len(report.outside) >= 2
    assert (
        f"Buildings outside every reach ({int(report.outside['households'].sum()):,} households)"
        in pages["service"]
    )
    assert all(f["geometry"]["type"] == "Point" for f in outside)
    sites = {
        f["properties"]["key"]: f["properties"]["style"] for f in layers(pages["service"])["geogrid-site"]
    }
    assert sites["centre"]["radius"] > sites["station"]["radius"]  # told apart by size and colour
    assert sites["centre"]["fillColor"] != sites["station"]["fillColor"]


@pytest.mark.parametrize(("kind", "css"), [("responsibility", maps.GRID_CLASS), ("gaps", "geogrid-short")])
def test_an_unstaffed_grids_popup_and_colour_match_the_legend(pages, kind, css):
    page = pages[kind]
    grid = next(f for f in layers(page)[css] if f["properties"]["code"] == G4)
    colour, label = Page(page).legend[css]["unstaffed"]
    assert label == "No leader, no worker"
    assert grid["properties"]["style"]["fillColor"] == colour
    popup = grid["properties"]["popup"]
    assert f"<b>{G4}</b> 北苑" in popup and "Staffing: <b>No leader, no worker</b>" in popup
    assert "Leader: none" in popup and "Workers: 0" in popup


def test_the_staffed_grid_names_its_people_and_its_1x_contacts(pages):
    grid = next(f for f in layers(pages["responsibility"])[maps.GRID_CLASS] if f["properties"]["code"] == G1)
    popup = grid["properties"]["popup"]
    assert "张伟 138****0001" in popup  # the phone as the report carries it: masked here
    assert "Workers: 1 (name p2)" in popup
    assert "<td>周强 138****0003</td><td>楼栋长</td><td>2</td><td>70</td>" in popup
    assert "13800000001" not in pages["responsibility"]


def test_names_are_escaped_in_popups_tooltips_and_the_title(report, pages):
    grid = next(f for f in layers(pages["responsibility"])[maps.GRID_CLASS] if f["properties"]["code"] == G1)
    assert "东苑 &lt;b&gt;&amp;" in grid["properties"]["popup"] and "<b>&" not in grid["properties"]["popup"]
    evil = report.__class__(**{**report.__dict__, "set_name": "</script><script>alert(1)</script>"})
    page = maps.build_map("gaps", evil)
    assert "<script>alert(1)" not in page and "&lt;/script&gt;" in page
    # folium renders with jinja: a name is data, never a template
    sly = report.__class__(**{**report.__dict__, "set_name": "{{ 7 * 7 }}{% if true %}x{% endif %}"})
    page = maps.build_map("gaps", sly)
    assert page.count("{{ 7 * 7 }}{% if true %}x{% endif %}") == 2  # the <title> and the title box


PAYLOAD = "<img src=x onerror=alert(document.domain)>"


def test_hostile_names_are_text_in_every_tooltip_popup_and_layer_name():
    """Leaflet writes a string tooltip, popup and layer-control name with innerHTML: each must be escaped."""
    hostile = small_report(PAYLOAD)
    for kind in maps.KINDS:
        page = maps.build_map(kind, hostile)
        assert PAYLOAD not in page, kind  # the title, the title box and the legend
        assert html.escape(PAYLOAD) in page, kind
        for css, features in layers(page).items():
            for f in features:
                tip, popup = f["properties"]["tip"], f["properties"]["popup"]
                assert "<img" not in tip and "<img" not in popup, (kind, css)
        grid_tips = [html.unescape(f["properties"]["tip"]) for f in layers(page)[maps.GRID_CLASS]]
        assert grid_tips == [f"{code} {PAYLOAD}" for code in hostile.grids["code"]], kind
        if kind == "service":
            assert [html.unescape(f["properties"]["tip"]) for f in layers(page)["geogrid-site"]] == [
                PAYLOAD
            ] * 2
            assert all(
                PAYLOAD in html.unescape(f["properties"]["popup"]) for f in layers(page)["geogrid-site"]
            )
        if kind == "responsibility":  # people's names in the popups
            popups = [html.unescape(f["properties"]["popup"]) for f in layers(page)[maps.GRID_CLASS]]
            assert any(f"Leader: {PAYLOAD}" in p for p in popups)
    # Layer names reach the layer control (innerHTML) and the legend.
    page = maps.page.render(
        PAYLOAD,
        [
            maps.page.Layer(
                PAYLOAD,
                "geogrid-x",
                [maps.page.feature(cell(0), {}, maps.page.escape(PAYLOAD), PAYLOAD, PAYLOAD)],
                labels={PAYLOAD: (PAYLOAD, "#000000")},
                note=PAYLOAD,
            )
        ],
        [[Y0, X0], [Y0 + W, X0 + W]],
        tile_url=None,
        attribution=None,
    )
    assert PAYLOAD not in page
    names = re.search(r"overlays :\s*\{\s*(\".*?\") : geo_json_\d+,", page, re.S)
    assert names and json.loads(names.group(1)) == f"{html.escape(PAYLOAD)} (1)"
    (f,) = layers(page)["geogrid-x"]
    assert f["properties"]["tip"] == html.escape(PAYLOAD) and f["properties"]["key"] == PAYLOAD  # data
    assert Page(page).legend["geogrid-x"][PAYLOAD] == ("#000000", PAYLOAD)  # escaped, parsed back to text


GUID = "x_0123456789abcdef0123456789abcdef"


def test_guid_like_ids_in_the_data_are_not_renumbered(report):
    """Only folium's own element ids are renumbered; an id in the data that looks like one is kept."""
    sites = report.sites.copy()
    sites["id"] = [GUID, "s2"]
    sites["name"] = [None, "站"]  # the popup shows the id
    outside = report.outside.copy()
    outside["id"] = [f"b_{i:032x}" for i in range(len(outside))]
    grids = report.grids.copy()
    grids["name"] = "geo_json_0123456789abcdef0123456789abcdef"  # even a folium-shaped name
    odd = report.__class__(**{**report.__dict__, "sites": sites, "outside": outside, "grids": grids})
    for kind in maps.KINDS:
        page = maps.build_map(kind, odd)
        assert page == maps.build_map(kind, odd), kind  # still the same bytes
        assert "geo_json_0123456789abcdef0123456789abcdef" in page, kind
        rest = page.replace("0123456789abcdef0123456789abcdef", "")
        if kind == "service":
            popups = [f["properties"]["popup"] for f in layers(page)["geogrid-site"]]
            assert f"<b>{GUID}</b>" in popups[0]
            ids = [f["properties"]["popup"] for f in layers(page)["geogrid-outside"]]
            assert all(f"<b>b_{i:032x}</b>" in p for i, p in enumerate(ids))
            rest = re.sub(r"b_[0-9a-f]{32}", "", rest)
        assert not re.search(r"[0-9a-f]{32}", rest), f"{kind}: a random folium id is left"


@pytest.mark.parametrize("kind", maps.KINDS)
def test_a_page_references_no_external_host(pages, kind):
    page = pages[kind]
    assert outside_hosts(page) == []
    parsed = Page(page)
    assert (
        not parsed.script_src and "stylesheet" not in page
    )  # everything inline (the one <link> is a data: icon)
    for word in (
        "jquery",
        "bootstrap",
        "font-awesome",
        "fontawesome",
        "awesome-markers",
        "cdn.",
        "@font-face",
    ):
        assert word not in page.lower(), word
    assert "data:image/png;base64," in page  # the layer control's icon, inlined
    assert "L.tileLayer(" not in page  # no base map by default


@pytest.mark.parametrize("kind", maps.KINDS)
def test_a_tile_url_is_the_one_host_a_page_names(report, kind):
    page = maps.build_map(kind, report, tile_url=TILES, attribution="© 天地图 mirror")
    assert outside_hosts(page, TILES) == []
    assert outside_hosts(page.replace(TILES, "")) == []  # the tile URL is the only outside reference
    assert f"L.tileLayer(\n                {json.dumps(TILES)}" in page or json.dumps(TILES) in page
    assert json.dumps("© 天地图 mirror") in page  # folium writes the attribution as JSON (ASCII-escaped)


def test_the_check_catches_what_folium_would_have_linked():
    page = maps.build_map("gaps", small_report())
    for planted in (
        '<script src="https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js"></script>',
        '<link rel="stylesheet" href="https://netdna.bootstrapcdn.com/x.css"/>',
        "<style>.x{background:url(https://example.com/a.png)}</style>",
        "<style>@import 'x.css';</style>",
        '<div style="background:url(//example.com/a.png)"></div>',
        "<script>fetch('https://example.com/x')</script>",
    ):
        assert outside_hosts(page.replace("</head>", planted + "</head>")), planted


def test_gcj02_moves_every_vertex_by_the_gcj_offset(report, pages):
    shifted = maps.build_map("service", report, tile_url=TILES, tile_crs="gcj02")
    for css in ("geogrid-grid", "geogrid-reach", "geogrid-site", "geogrid-outside"):
        plain, moved = layers(pages["service"])[css], layers(shifted)[css]
        assert len(plain) == len(moved) > 0
        a = shapely.get_coordinates(shapely.from_geojson(json.dumps(plain[0]["geometry"])))
        b = shapely.get_coordinates(shapely.from_geojson(json.dumps(moved[0]["geometry"])))
        x, y = wgs84_to_gcj02(a[:, 0], a[:, 1])
        np.testing.assert_allclose(b, np.column_stack([x, y]), atol=1.5e-6)  # both rounded to 6 decimals
        assert np.abs(b - a).max() > 1e-3  # some hundreds of metres here: a real shift
    # and the first vertex of the first grid against the report's own geometry
    first = shapely.get_coordinates(report.grids.geometry.iloc[0])[0]
    x, y = wgs84_to_gcj02([first[0]], [first[1]])
    got = layers(shifted)[maps.GRID_CLASS][0]["geometry"]["coordinates"][0][0]
    assert got == [round(float(x[0]), 6), round(float(y[0]), 6)]


def test_coordinates_are_rounded_to_six_decimals_and_nothing_is_simplified(report, pages):
    for feature, geom in zip(layers(pages["gaps"])[maps.GRID_CLASS], report.grids.geometry, strict=True):
        coords = shapely.get_coordinates(shapely.from_geojson(json.dumps(feature["geometry"])))
        assert len(coords) == len(shapely.get_coordinates(geom))
        assert np.abs(coords - np.round(coords, 6)).max() < 1e-12


def test_the_same_report_gives_the_same_bytes(report, pages):
    for kind in maps.KINDS:
        assert maps.build_map(kind, report) == pages[kind]
        assert not re.search(r"[0-9a-f]{32}", pages[kind]), "a random folium id is left"


def test_the_page_is_titled_with_set_and_date_and_fits_its_data(pages):
    for kind, page in pages.items():
        assert "<title>small · " in page and "2026-12-01" in page, kind
        south_west, north_east = json.loads(re.search(FIT, page).group(1))
        assert south_west[0] <= Y0 < north_east[0] and south_west[1] <= X0 < north_east[1]
    assert "L.control.layers(" in pages["responsibility"]
    assert '"Grids by households per worker (4)" : geo_json_' in pages["responsibility"]


def test_helpers_route_to_build_map(report, pages):
    assert maps.responsibility_map(report) == pages["responsibility"]
    assert maps.gaps_map(report) == pages["gaps"]
    assert maps.service_map(report) == pages["service"]


def test_an_unknown_kind_or_tile_crs_is_refused(report):
    with pytest.raises(NotFound, match="responsibility, gaps, service"):
        maps.build_map("heat", report)
    with pytest.raises(UnknownCRS, match="wgs84, gcj02"):
        maps.build_map("gaps", report, tile_crs="bd09")


def test_an_empty_report_still_draws_a_page():
    county = gpd.GeoDataFrame(
        {"code": [COUNTY], "name": ["县"], "parent_code": [None], "households": [0]},
        geometry=[cell(0, 5)],
        crs=4326,
    )
    empty = coverage(
        {"county": county}, pd.DataFrame(columns=POST_COLUMNS), None, None, None, at=AT, set_name="none"
    )
    for kind in maps.KINDS:
        page = maps.build_map(kind, empty)
        assert layers(page)[maps.GRID_CLASS] == []
        assert outside_hosts(page) == []
    assert len(layers(maps.gaps_map(empty))["geogrid-gap"]) == 1  # the whole county is in no grid
    assert not re.search(FIT, maps.service_map(empty))  # nothing to fit: no grid, site or building


def test_folium_is_imported_only_when_a_map_is_drawn():
    code = (
        "import sys, geogrid.maps, geogrid.coverage, geogrid.settings; "
        "assert 'folium' not in sys.modules and 'branca' not in sys.modules, 'imported too early'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_a_missing_folium_says_what_to_install(report, monkeypatch):
    monkeypatch.setitem(sys.modules, "folium", None)
    with pytest.raises(ImportError, match="pip install"):
        maps.build_map("gaps", report)


def test_the_vendored_leaflet_is_npms_leaflet_1_9_4():
    note = (maps.LEAFLET / "MODIFIED.txt").read_text()
    for line in note.splitlines():
        if m := re.fullmatch(r"([0-9a-f]{64})  (\S+)", line):
            assert hashlib.sha256((maps.LEAFLET / m.group(2)).read_bytes()).hexdigest() == m.group(1), (
                m.group(2)
            )
    assert "Leaflet 1.9.4" in (maps.LEAFLET / "leaflet.js").read_text()[:200]
    assert "BSD 2-Clause" in (maps.LEAFLET / "LICENSE").read_text()


def test_tile_settings_are_validated():
    assert Settings().tile_url is None and Settings().tile_crs == "wgs84"
    s = Settings(tile_url=f" {TILES} ", tile_crs="GCJ02")
    assert s.tile_url == TILES and s.tile_crs == "gcj02"
    assert Settings(tile_url="/tiles/{z}/{x}/{y}.png").tile_url == "/tiles/{z}/{x}/{y}.png"
    assert Settings(tile_url="").tile_url is None
    for bad in (
        {"tile_crs": "bd09"},
        {"tile_url": "ftp://x/{z}/{x}/{y}"},
        {"tile_url": "https://x/{z}/{x}.png"},
        {"tile_url": "//x/{z}/{x}/{y}"},
    ):
        with pytest.raises(ValueError):
            Settings(**bad)
    assert Settings(tile_url=TILES).to_environment()["GEOGRID_TILE_URL"] == TILES


# --- the demo county ------------------------------------------------------------------------------------

DEMO_FILES = ("roster.csv", "sites.geojson", "roads.geojson", "planted.json")
needs_demo = pytest.mark.skipif(
    not all((DEMO / n).exists() for n in DEMO_FILES), reason="demo roster/sites/roads not generated"
)


def demo_report():
    """The demo county's coverage on the planted date (phones masked), and the planted cases."""
    files = {
        "county": "county",
        "street": "streets",
        "community": "communities",
        "grid": "grids",
        "microgrid": "microgrids",
    }
    units = {level: read_boundaries(DEMO / f"{name}.geojson") for level, name in files.items()}
    buildings, sites, roads = (gpd.read_file(DEMO / f"{n}.geojson") for n in ("buildings", "sites", "roads"))
    level_of = {str(code): level for level, frame in units.items() for code in frame["code"]}
    posts, errors = validate_rows(
        read_roster(DEMO / "roster.csv"),
        level_of,
        buildings=dict(zip(buildings["id"], buildings["microgrid_code"], strict=True)),
    )
    assert not errors, errors[:3]
    planted = json.loads((DEMO / "planted.json").read_text())
    at = dt.date.fromisoformat(planted["as_of"])
    return coverage(units, posts, buildings, sites, roads, at=at, set_name="demo", mask=mask_phone), planted


@pytest.fixture(scope="module")
def demo():
    """The demo county's report, planted cases and its three maps."""
    report, planted = demo_report()
    return report, planted, {kind: maps.build_map(kind, report) for kind in maps.KINDS}


@pytest.mark.slow
@needs_demo
@pytest.mark.parametrize("kind", maps.KINDS)
def test_the_demo_county_maps(demo, kind):
    report, planted, pages = demo
    page = pages[kind]
    found, legend = layers(page), Page(page)
    assert len(found[maps.GRID_CLASS]) == len(report.grids) == 522
    for css, features in found.items():
        assert sum(legend.counts[css].values()) == len(features), css
    expected = {
        "responsibility": {"geogrid-load": len(report.grids)},
        "gaps": {
            "geogrid-gap": len(report.gaps),
            "geogrid-problem": len(report.problems),
            "geogrid-short": int((report.grids["staffing"] != "staffed").sum()),
            "geogrid-norm": int((report.grids["norm"] != "within").sum()),
        },
        "service": {
            "geogrid-site": len(report.sites),
            "geogrid-reach": len(report.reach.areas),
            "geogrid-outside": len(report.outside),
        },
    }[kind]
    assert {css: len(found[css]) for css in expected} == expected
    assert outside_hosts(page) == []
    assert len(page) < 8_000_000, len(page)


@pytest.mark.slow
@needs_demo
def test_the_planted_grids_popups_and_colours_match_the_legend(demo):
    report, planted, pages = demo
    grids = {f["properties"]["code"]: f for f in layers(pages["responsibility"])[maps.GRID_CLASS]}
    legend = Page(pages["responsibility"]).legend[maps.GRID_CLASS]
    for key in ("no_leader", "no_worker"):
        assert planted[key], key
        for code in planted[key]:
            colour, label = legend[key]
            feature = grids[code]
            assert feature["properties"]["style"]["fillColor"] == colour, code
            assert f"<b>{code}</b>" in feature["properties"]["popup"]
            assert f"Staffing: <b>{label}</b>" in feature["properties"]["popup"], code
    no_worker = grids[planted["no_worker"][0]]["properties"]["popup"]
    assert "Workers: 0" in no_worker and "Households per worker: -" in no_worker
    phones = re.findall(r"(?<![\d*])1[3-9]\d{9}(?!\d)", pages["responsibility"])
    assert not phones, "a full phone on a masked report's map"
    assert re.search(r"1[3-9]\d\*{4}\d{4}", pages["responsibility"]), "the masked phones are shown"
