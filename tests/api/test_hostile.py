"""Hostile-client regressions (issue 10): inputs that used to crash or be misread get a clear refusal."""

from __future__ import annotations

import codecs
import csv
import io
import json
import struct

import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyproj
import pytest
from fastapi.testclient import TestClient

from api.batch import PointCounter
from api.main import create_app
from geogrid.crs import normalize_crs
from geogrid.errors import UnknownCRS
from geogrid.settings import Settings
from tests.conftest import BACKENDS, migrated_engine, problem, published_demo


@pytest.mark.parametrize("spelling", ["EPSG:²", "EPSG:٤٣٢٦", "EPSG:４３２６", "²", "EPSG:5773", "EPSG:4978"])
def test_crs_codes_are_ascii_digits_of_a_horizontal_crs(spelling):
    """int('²') raised ValueError (a 500); Arabic-Indic and full-width digits were accepted as 4326."""
    with pytest.raises(UnknownCRS):
        normalize_crs(spelling)


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("GCJ02", "gcj02"),
        ("gcj-02", "gcj02"),
        ("EPSG:4490", "cgcs2000"),
        ("epsg:4326", "wgs84"),
        (" 4546 ", "EPSG:4546"),
    ],
)
def test_every_cli_spelling_is_one_name(spelling, name):
    assert normalize_crs(spelling) == name


def test_unknown_crs_echo_is_truncated():
    with pytest.raises(UnknownCRS) as caught:
        normalize_crs("x" * 100_000)
    assert len(caught.value.detail) < 400 and len(caught.value.where["crs"]) <= 201


# ---- over HTTP, on both databases ---------------------------------------------------------------
LIMIT = 1000  # GEOGRID_MAX_BATCH_POINTS of the service under test


@pytest.fixture(scope="module", params=BACKENDS)
def client(request, demo_layers, tmp_path_factory):
    """The service on the demo's grids and micro-grids, published from 2026-01-01, on each backend."""
    with migrated_engine(request.param, tmp_path_factory) as engine:
        published_demo(engine, demo_layers)
        settings = Settings(
            database_url=engine.url.render_as_string(hide_password=False),
            cache_dir=str(tmp_path_factory.mktemp("cache")),
            max_batch_points=LIMIT,
            rate_limit_per_minute=0,
        )
        with TestClient(create_app(settings)) as c:
            yield c


@pytest.fixture(scope="module")
def inside(demo_layers):
    """Points inside micro-grids, and the codes of those micro-grids."""
    micro = demo_layers["microgrids"].iloc[:5]
    return [g.representative_point().coords[0] for g in micro.geometry], micro["code"].tolist()


def post(client, body, kind="application/json", query=""):
    """POST a batch body as ``kind``."""
    data = body if isinstance(body, bytes) else body.encode()
    return client.post(f"/v1/lookup{query}", content=data, headers={"content-type": kind})


# Item 5: a CSV as Excel writes it on Chinese Windows is read, and answered so that Excel reads it.
@pytest.mark.parametrize("charset", [None, "gbk", "GB18030"])
def test_gbk_csv_batch_is_read_and_answered_as_utf8_with_a_bom(client, inside, charset):
    (x, y), code = inside[0][0], inside[1][0]
    body = f"名称,经度,纬度\n甲,{x},{y}\n乙,东,{y}\n".encode("gbk")
    kind = "text/csv" + (f"; charset={charset}" if charset else "")
    response = post(client, body, kind)
    assert response.status_code == 200, response.text  # was 500 (UnicodeDecodeError)
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.content.startswith(codecs.BOM_UTF8)  # Excel reads UTF-8 only after a BOM
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == ["名称", "经度", "纬度", "unit_code", "on_boundary", "error"]
    assert rows[1][0] == "甲" and rows[1][3] == code
    assert rows[2][:3] == ["乙", "东", str(y)] and rows[2][5] == "row 2: 经度 is not a number: '东'"


def test_utf8_csv_keeps_or_leaves_out_its_bom(client, inside):
    (x, y) = inside[0][0]
    plain = post(client, f"lon,lat\n{x},{y}\n", "text/csv; charset=utf-8")
    assert plain.status_code == 200 and plain.text.startswith("lon,lat,unit_code")
    marked = post(client, codecs.BOM_UTF8 + f"lon,lat\n{x},{y}\n".encode(), "text/csv")
    assert marked.content.startswith(codecs.BOM_UTF8 + b"lon,lat,unit_code")


def test_a_csv_charset_is_honoured(client):
    gbk = "经度,纬度\n111.2,39.85\n".encode("gbk")
    problem(post(client, gbk, "text/csv; charset=utf-8"), 400, "utf-8", "charset")  # not guessed over
    problem(post(client, gbk, "text/csv; charset=no-such-codec"), 400, "charset", "no-such-codec")
    problem(post(client, gbk, "text/csv; charset=rot13"), 400, "charset")  # a codec, not a text encoding
    assert post(client, gbk, "text/csv; charset=GB2312").status_code == 200


@pytest.mark.parametrize("kind", ["text/csv", "application/json"])
def test_a_charset_that_takes_quadratic_time_is_refused(client, kind):
    """punycode is a codec Python knows; 1 MB of it took 13 s to decode, 10 MB twenty minutes."""
    problem(post(client, b"-" + b"a" * 1_000_000, f"{kind}; charset=punycode"), 400, "charset", "punycode")


def test_an_arrow_stream_with_forged_offsets_is_400_not_a_crash(client):
    """The reader trusts a stream's offsets: one string column claiming 2 GB was read past its buffer, and
    the process died (SIGSEGV) on the next look at the column."""
    table = pa.table({"lon": ["111.20", "111.30"], "lat": ["39.850", "39.860"]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data = bytearray(sink.getvalue().to_pybytes())
    at = data.find(struct.pack("<iii", 0, 6, 12))  # the lon column's offsets
    data[at + 4 : at + 12] = struct.pack("<ii", 6, 0x7FFFFFF0)
    problem(post(client, bytes(data), "application/vnd.apache.arrow.stream"), 400, "Arrow", "offsets")


# Item 6: malformed batch bodies are refused with 400, never answered with 500.
@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("[" * 10_000 + "]" * 10_000, ["JSON", "depth"]),  # RecursionError in json.loads
        ('{"type":"FeatureCollection","features":["x"]}', ["feature 1", "not an object"]),
        ('{"type":"FeatureCollection","features":5}', ["features", "array"]),
        ('{"type":"FeatureCollection"}', ["features", "array"]),
        (
            '{"type":"FeatureCollection","features":[{"type":"Feature","properties":5,"geometry":null}]}',
            ["feature 1", "properties"],
        ),
        ('{"type":"FeatureCollection","features":[{"properties":["a"]}]}', ["feature 1", "properties"]),
        ("", ["JSON array"]),
        ("7", ["JSON array"]),
    ],
)
@pytest.mark.parametrize("kind", ["application/json", "application/geo+json"])
def test_malformed_batch_bodies_are_400(client, body, words, kind):
    problem(post(client, body, kind), 400, *words)


# Item 9 over HTTP: a CRS code is ASCII digits, on GET (hot path and route) and POST.
@pytest.mark.parametrize(
    "code", ["EPSG:%C2%B2", "EPSG:%D9%A4%D9%A3%D9%A2%D9%A6", "EPSG:%EF%BC%94%EF%BC%93%EF%BC%92%EF%BC%96"]
)
def test_crs_codes_in_other_digits_are_refused_over_http(client, code):
    problem(client.get(f"/v1/lookup?lon=111.2&lat=39.85&crs={code}"), 422, "crs", "unknown CRS")
    problem(client.get(f"/v1/lookup?lon=111.2&lat=39.85&crs={code}&_=1"), 422, "crs")
    problem(client.post(f"/v1/lookup?crs={code}", json=[{"lon": 111.2, "lat": 39.85}]), 422, "crs")


# Item 11: too many points are refused with 413 while the body arrives, in every format.
@pytest.mark.parametrize(
    ("kind", "make"),
    [
        ("application/json", lambda n: json.dumps([{"lon": 111.2, "lat": 39.85}] * n)),
        ("application/json", lambda n: json.dumps({"points": [{"lng": 111.2, "lat": 39.85}] * n})),
        ("application/geo+json", lambda n: json.dumps(collection([(111.2, 39.85)] * n))),
        ("text/csv", lambda n: "lon,lat\n" + "111.2,39.85\n" * n),
        ("text/csv", lambda n: '"lon","lat"\r\n' + '"111.2","39.85"\r\n' * n),
    ],
)
def test_too_many_points_are_413(client, kind, make):
    assert post(client, make(LIMIT), kind).status_code == 200
    problem(post(client, make(LIMIT + 1), kind), 413, "GEOGRID_MAX_BATCH_POINTS")
    problem(post(client, make(LIMIT * 20), kind), 413, "GEOGRID_MAX_BATCH_POINTS")


CSV_BODIES = [
    b"lon,lat\n1,2\n3,4\n",
    b"lon,lat\n1,2\n3,4",
    b"lon,lat\r\n1,2\r\n\r\n\r\n3,4\r\n\n\n",
    b'name,lon,lat\n"a\nb\n\nc",1,2\n"x ""y""\n",3,4\n\n',
    b'\n\nname,lon,lat\n"""",1,2\n',
    "名称,经度,纬度\n甲,1,2\n".encode("gbk"),
]


@pytest.mark.parametrize("body", CSV_BODIES)
@pytest.mark.parametrize("size", [1, 2, 3, 7, 1 << 16])
def test_point_counter_never_counts_more_csv_rows_than_there_are(body, size):
    counter = PointCounter("text/csv")
    counted = [counter.feed(body[i : i + size]) for i in range(0, len(body), size)][-1]
    rows = pa_csv.read_csv(pa.py_buffer(body), read_options=pa_csv.ReadOptions(encoding="gb18030")).num_rows
    assert counted <= rows and (b'"' in body or b"\r" in body or counted >= rows - 1)


def counted(body: bytes, size: int, kind: str = "application/json") -> PointCounter:
    counter = PointCounter(kind)
    for i in range(0, len(body), size):
        counter.feed(body[i : i + size])
    return counter


@pytest.mark.parametrize("size", [1, 5, 1 << 16])
def test_point_counter_counts_json_points_and_features_by_structure(size):
    """Counted by the array's elements, however the keys are spelled (a counter of "lat": keys counted
    {"Lat": ...} as nothing), and never more than there are, whatever the strings hold."""
    tricky = {"lng": 1, "Lat": 2, "note": 'a "quoted, [bracketed] {text}\\', "x": [1, 2, 3]}
    points = json.dumps([tricky, {"x": 1, "y": 2}] * 50).encode()
    features = orjson.dumps(collection([(1, 2)] * 40))
    wrapped = json.dumps({"points": [{"LON": 1, "LAT": 2}] * 30}).encode()
    for body, n in ((points, 100), (features, 40), (wrapped, 30)):
        assert counted(body, size).count() == n


def test_point_counter_bounds_the_values_a_nested_body_would_parse_into():
    """Nested one level down, a body holds one 'point' and millions of values: 99 MB of {} parsed into
    about 3 GB before the size check after parsing said no."""
    nested = b"[[" + b"{}," * 100_000 + b"{}]]"
    counter = counted(nested, 1 << 16)
    assert counter.count() == 1 and "JSON values" in counter.over(LIMIT)
    assert counted(orjson.dumps(collection([(1, 2)] * LIMIT)), 1 << 16).over(LIMIT) == ""


def test_point_counter_leaves_json_in_other_charsets_to_the_parser():
    """GBK's second bytes include [ { and backslash: read as UTF-8 they could count high."""
    body = json.dumps([{"名": "乘[", "lon": 1, "lat": 2}] * 5, ensure_ascii=False).encode("gbk")
    assert PointCounter("application/json", "gbk").feed(body) == 0


# Item 15: one vocabulary for CLI and HTTP; rows counted from 1.
@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("GCJ02", "gcj02"),
        ("gcj-02", "gcj02"),
        ("EPSG:4490", "cgcs2000"),
        ("Baidu", "bd09"),
        ("epsg:4326", "wgs84"),
    ],
)
def test_every_cli_crs_spelling_works_on_get_and_post(client, inside, spelling, name):
    x, y = inside[0][0]
    for query in ({"lon": x, "lat": y}, {"lon": x, "lat": y, "_": "route"}):
        spelled = client.get("/v1/lookup", params={**query, "crs": spelling})
        named = client.get("/v1/lookup", params={**query, "crs": name})
        assert spelled.status_code == 200 and spelled.content == named.content
    batch = [{"lon": x, "lat": y}]
    spelled = client.post("/v1/lookup", params={"crs": spelling}, json=batch)
    assert (
        spelled.status_code == 200
        and spelled.json() == client.post("/v1/lookup", params={"crs": name}, json=batch).json()
    )


def test_a_projected_crs_is_taken_by_get_and_post(client, inside):
    (x, y), code = inside[0][0], inside[1][0]
    east, north = pyproj.Transformer.from_crs(4490, 4546, always_xy=True).transform(x, y)
    one = client.get("/v1/lookup", params={"lon": east, "lat": north, "crs": "EPSG:4546"})
    assert one.status_code == 200 and one.json()["unit"]["code"] == code
    batch = post(client, f"x,y\n{east},{north}\n", "text/csv", "?crs=epsg:4546")
    assert batch.text.splitlines()[1].split(",")[2] == code


@pytest.mark.parametrize(
    ("header", "query"),
    [
        ("经度,纬度", ""),
        ("lng,lat", ""),
        ("Longitude,Latitude", ""),
        ("东经,北纬", "?lon_col=东经&lat_col=北纬"),
    ],
)
def test_csv_columns_are_found_as_the_cli_finds_them_or_named(client, inside, header, query):
    (x, y), code = inside[0][0], inside[1][0]
    response = post(client, f"{header}\n{x},{y}\n", "text/csv", query)
    assert response.status_code == 200, response.text
    assert response.text.splitlines()[1].split(",")[2] == code


def test_a_named_column_that_is_absent_is_named_in_the_refusal(client):
    problem(post(client, "lon,lat\n1,2\n", "text/csv", "?lon_col=east"), 400, "east", "lon_col")
    problem(post(client, "a,b\n1,2\n", "text/csv"), 400, "no lon column", "a, b")


def test_json_points_take_lng_and_named_keys_and_count_rows_from_1(client, inside):
    (x, y), code = inside[0][0], inside[1][0]
    results = client.post("/v1/lookup", json=[{"lng": x, "lat": y}, {"lng": None, "lat": y}]).json()[
        "results"
    ]
    assert results[0] == {"index": 0, "row": 1, "unit_code": code, "on_boundary": False}
    assert results[1]["row"] == 2 and results[1]["error"] == "point 2: lng is missing"
    named = client.post("/v1/lookup", params={"lon_col": "E", "lat_col": "N"}, json=[{"E": x, "N": y}])
    assert named.json()["results"][0]["unit_code"] == code


def test_batch_errors_count_rows_from_1_in_every_format(client):
    body = post(client, "lon,lat\n111.2,39.85\n,39.85\n", "text/csv").text
    assert body.splitlines()[2].endswith(",row 2: lon is missing")
    features = client.post("/v1/lookup", json=collection([(111.2, 39.85), (None, 39.85)])).json()["features"]
    assert features[1]["properties"]["error"] == "feature 2: lon is missing"
    table = pa.table({"lon": [111.2, None], "lat": [39.85, 39.85]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    arrow = post(client, sink.getvalue().to_pybytes(), "application/vnd.apache.arrow.stream")
    errors = pa.ipc.open_stream(arrow.content).read_all()["error"].to_pylist()
    assert errors == ["", "row 2: lon is missing"]


def test_openapi_says_rows_count_from_1(client):
    post_op = client.get("/openapi.json").json()["paths"]["/v1/lookup"]["post"]
    assert "numbered from 1" in post_op["description"] and "0-based" in post_op["description"]
    assert {"lon_col", "lat_col", "crs"} <= {p["name"] for p in post_op["parameters"]}
    snap = next(p for p in post_op["parameters"] if p["name"] == "snap_m")["schema"]
    assert (snap["minimum"], snap["maximum"]) == (0, 1000)  # bounds a client can read, not pydantic's ge/le


# Item 16: errors that say what is wrong.
@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("lon=NaN&lat=39.85", ["lon", "not a finite number"]),
        ("lon=111.2&lat=nan", ["lat", "not a finite number"]),
        ("lon=1e400&lat=39.85", ["lon", "not a finite number"]),
        ("lon=1_11.2&lat=39.85", ["lon", "not a plain decimal number", "1_11.2"]),
        ("lon=39.9&lat=116.4", ["lat", "116.4", "look swapped"]),
        ("lon=500&lat=39.85", ["lon", "500", "-180..180"]),
        ("lon=111.2&lat=39.85&level=grid", ["level", "unknown parameter"]),
        ("lon=111.2&lat=39.85&snap_m=NaN", ["snap_m", "finite"]),
    ],
)
def test_single_lookup_errors_say_what_is_wrong(client, query, words):
    body = problem(client.get(f"/v1/lookup?{query}"), 422, *words)
    assert "less than or equal" not in body["detail"]


def test_a_cache_buster_is_taken_and_unknown_batch_parameters_are_refused(client):
    assert client.get("/v1/lookup?lon=111.2&lat=39.85&_=1700000000").status_code == 200
    problem(client.post("/v1/lookup?level=grid", json=[]), 422, "level", "unknown parameter")
    assert client.post("/v1/lookup?_=1", json=[]).status_code == 200


@pytest.mark.parametrize(
    ("point", "error"),
    [
        ({"lon": True, "lat": 39.85}, "point 1: lon is true, a boolean; a coordinate is a number"),
        ({"lon": 111.2, "lat": False}, "point 1: lat is false, a boolean; a coordinate is a number"),
        ({"lon": "1_11.2", "lat": 39.85}, "point 1: lon is not a plain decimal number: '1_11.2'"),
        ({"lon": "1e400", "lat": 39.85}, "point 1: lon is not a finite number: '1e400'"),
        ({"lon": "NaN", "lat": 39.85}, "point 1: lon is not a finite number: 'NaN'"),
        ({"lon": [1], "lat": 39.85}, "point 1: lon is not a number: [1]"),
        ("x", "point 1: a point is an object with lon and lat, got 'x'"),
        ({"lng": 111.2}, "point 1: lat is missing"),
        (
            {"lon": 39.9, "lat": 116.4},
            "point 1: lat 116.4 is outside -90..90; lon and lat look swapped (lon comes first)",
        ),
    ],
)
def test_batch_point_errors_say_what_is_wrong(client, point, error):
    assert client.post("/v1/lookup", json=[point]).json()["results"][0]["error"] == error


def test_csv_sent_as_a_form_is_told_its_content_type(client):
    problem(post(client, "lon,lat\n1,2\n", "application/x-www-form-urlencoded"), 400, "text/csv")  # curl -d


def test_non_finite_json_numbers_are_refused(client):
    problem(post(client, '[{"lon": 1e400, "lat": 39.85}]'), 400, "infinity")
    problem(post(client, '[{"lon": NaN, "lat": 39.85}]'), 400, "not JSON")


def test_a_line_string_feature_is_named(client):
    line = {"type": "LineString", "coordinates": [[111.2, 39.85], [111.3, 39.9]]}
    body = collection([(111.2, 39.85)])
    body["features"].append({"type": "Feature", "properties": None, "geometry": line})
    features = client.post("/v1/lookup", json=body).json()["features"]
    assert features[1]["properties"]["error"] == "feature 2: geometry is a LineString, a point is needed"


def test_echoes_of_huge_inputs_are_cut(client):
    """A refusal repeats about 200 characters of what it refuses, not 100 kB (twice)."""
    huge = "9" * 100_000
    long = huge[:30_000]  # as long as a URL the client sends may be
    for response in (
        client.get(f"/v1/lookup?lon={long}&lat=39.85"),
        client.get(f"/v1/lookup?lon=1{'_1' * 15_000}&lat=39.85"),
        client.get(f"/v1/lookup?lon=111.2&lat=39.85&crs={long}"),
        client.get(f"/v1/lookup?lon=111.2&lat=39.85&set={long}"),
        client.get(f"/v1/lookup?lon=111.2&lat=39.85&{long}=1"),
        client.post("/v1/lookup", json={"type": "FeatureCollection", "features": [huge]}),
        post(client, f"{huge},b\n1,2\n", "text/csv"),
        post(client, "lon,lat\n1,2\n", "text/csv", f"?lon_col={huge[:150]}"),
    ):
        assert 400 <= response.status_code < 500 and len(response.content) < 2_000, response.text[:300]
    points = client.post("/v1/lookup", json=[{"lon": huge + "x", "lat": 39.85}]).json()["results"]
    features = client.post("/v1/lookup", json=collection([(1, 2)], kind=huge)).json()["features"]
    for error in (points[0]["error"], features[0]["properties"]["error"]):  # the feature comes back once
        assert 200 < len(error) < 300, error


def collection(points, kind="Point"):
    """A GeoJSON FeatureCollection of ``points`` (geometries of type ``kind``)."""
    features = [
        {"type": "Feature", "properties": {"n": n}, "geometry": {"type": kind, "coordinates": list(p)}}
        for n, p in enumerate(points)
    ]
    return {"type": "FeatureCollection", "features": features}


def test_the_hot_path_leaves_epsg_codes_to_the_route(monkeypatch):
    """The hot path asked pyproj about any crs=EPSG:N on the event loop (milliseconds each, before the rate
    limit); it now knows only the spellings of the four named systems and leaves the rest to the route."""
    import pyproj

    from api.hotpath import HotLookup

    asked = []
    real = pyproj.CRS.from_epsg
    monkeypatch.setattr(pyproj.CRS, "from_epsg", lambda code: asked.append(code) or real(code))
    hot = HotLookup(None, service=lambda: pytest.fail("no state needed"), limiter=lambda: None)
    for crs in ("EPSG:4546", "EPSG:99999999", "epsg:3857"):
        scope = {"query_string": f"lon=111.2&lat=39.85&crs={crs}".encode(), "headers": []}
        assert hot._answer(scope) is None
    assert asked == []


def test_a_refused_epsg_code_is_asked_of_pyproj_once(monkeypatch):
    import pyproj

    asked = []
    real = pyproj.CRS.from_epsg
    monkeypatch.setattr(pyproj.CRS, "from_epsg", lambda code: asked.append(code) or real(code))
    for _ in range(3):
        with pytest.raises(UnknownCRS):
            normalize_crs("EPSG:99999997")
    assert asked == [99999997]
