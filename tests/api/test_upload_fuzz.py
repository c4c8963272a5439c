"""Property-based fuzz of the write bodies on SpatiaLite: whatever a client uploads into a draft or sends
to publish (random bytes, random JSON, GeoJSON-shaped documents with random members, CSV text, zips with
random members; dry runs and commits), the answer is never a 5xx, and every 4xx is problem+json."""

from __future__ import annotations

import datetime as dt
import io as stdio
import json
import zipfile
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.main import create_app
from geogrid.io import write_layer
from geogrid.settings import DEMO_ADMIN_KEY, Settings
from tests.conftest import empty_store, migrated_engine

ADMIN = {"Authorization": f"Bearer {DEMO_ADMIN_KEY}"}
STREET = "150622001"
FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same examples on every run: a failure here is reproducible as it stands
)


@contextmanager
def service(kind, tmp_path_factory, demo_layers):
    """A client on ``kind`` with one street published as set 's', and that street's shapefile bytes."""
    with migrated_engine(kind, tmp_path_factory) as engine:
        store = empty_store(engine)
        layers = {}
        for name, level in (("streets", "street"), ("communities", "community"), ("grids", "grid")):
            frame = demo_layers[name]
            layers[level] = frame[frame["code"].str.startswith(STREET)].reset_index(drop=True)
            store.import_units("s", layers[level], level, commit=True)
        store.publish("s", dt.date(2026, 1, 1))
        tmp = tmp_path_factory.mktemp("fuzz")
        shp = write_layer(layers["street"], tmp / "street.shp.zip")
        app = create_app(
            Settings(
                database_url=engine.url.render_as_string(hide_password=False),
                cache_dir=str(tmp / "cache"),
                environment="local",
                default_set="s",
                rate_limit_per_minute=0,
            )
        )
        with TestClient(app) as client:
            yield client, layers, zipfile.ZipFile(shp)


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory, demo_layers):
    """The fuzz runs on SpatiaLite."""
    with service("spatialite", tmp_path_factory, demo_layers) as found:
        yield found


@pytest.fixture(scope="module")
def fuzz_postgis(tmp_path_factory, demo_layers):
    """What reaches the database is fuzzed on PostGIS too: it refuses what SpatiaLite stores (NUL, long names)."""
    with service("postgis", tmp_path_factory, demo_layers) as found:
        yield found


def check(response):
    """Never a 5xx; every 4xx is problem+json with a detail."""
    assert response.status_code < 500, (response.status_code, response.text[:2000])
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json"), response.text[:500]
        assert isinstance(response.json().get("detail"), str)


def upload(client, name, body, level="street", commit=False, **params):
    headers = {**ADMIN, "If-Match": "*"} if commit else ADMIN
    params = {k: v for k, v in params.items() if v is not None}
    files = {"file": (name, body, "application/octet-stream")}
    response = client.post(
        f"/v1/sets/s/draft/{level}", files=files, headers=headers, params={**params, "commit": commit}
    )
    check(response)
    return response


SUFFIXES = st.sampled_from(
    [".geojson", ".json", ".zip", ".shp.zip", ".gpkg", ".kml", ".csv", ".shp", ".txt", ""]
)
LEVELS = st.sampled_from(["county", "street", "community", "grid", "microgrid"])
TEXT = st.text(max_size=40)
CODES = st.one_of(
    st.sampled_from(["150622001", "150622001001", "150622001001001", "150622", "150622001000", "1"]),
    st.text(alphabet="0123456789", min_size=0, max_size=20),
    st.integers(-(10**20), 10**20),
    TEXT,
    st.none(),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)
LON = st.floats(111.19, 111.23) | st.floats(-400, 400) | st.sampled_from([float("inf"), 0.0, 1e300])
LAT = st.floats(39.84, 39.87) | st.floats(-100, 100)
POSITION = st.lists(LON, min_size=2, max_size=2).map(list) | st.tuples(LON, LAT).map(list)
RING = st.lists(POSITION, min_size=0, max_size=6).map(lambda r: r + r[:1])
GEOMETRY = st.one_of(
    st.none(),
    st.builds(lambda c: {"type": "Point", "coordinates": c}, POSITION),
    st.builds(lambda c: {"type": "LineString", "coordinates": c}, st.lists(POSITION, max_size=4)),
    st.builds(lambda r: {"type": "Polygon", "coordinates": r}, st.lists(RING, max_size=3)),
    st.builds(
        lambda p: {"type": "MultiPolygon", "coordinates": p}, st.lists(st.lists(RING, max_size=2), max_size=3)
    ),
    st.builds(lambda g: {"type": "GeometryCollection", "geometries": g}, st.lists(st.just({}), max_size=2)),
    st.builds(lambda t, c: {"type": t, "coordinates": c}, TEXT, JSON),
    JSON,
)
PROPERTIES = st.fixed_dictionaries(
    {},
    optional={
        "code": CODES,
        "name": st.one_of(TEXT, st.none(), st.integers()),
        "households": st.one_of(st.integers(-5, 10**12), st.floats(), TEXT, st.none()),
        "population": st.one_of(st.integers(0, 10), TEXT, st.none()),
        "parent_code": CODES,
        "level": TEXT,
        "id": JSON,
        "extra": JSON,
    },
)
FEATURE = st.fixed_dictionaries(
    {"type": st.sampled_from(["Feature", "feature", "Point"])},
    optional={"properties": PROPERTIES | JSON, "geometry": GEOMETRY, "id": JSON},
)
GEOJSON = st.fixed_dictionaries(
    {"type": st.sampled_from(["FeatureCollection", "Feature", "GeometryCollection", "x"])},
    optional={
        "features": st.lists(FEATURE, max_size=4) | JSON,
        "crs": JSON
        | st.sampled_from(
            [{"type": "name", "properties": {"name": n}} for n in ("EPSG:4326", "EPSG:3857", "urn:x", "")]
        ),
    },
)
PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "crs": st.sampled_from(["wgs84", "gcj02", "bd09", "EPSG:4326", "EPSG:4546", "EPSG:5773", "x"]) | TEXT,
        "layer": TEXT,
        "code_field": st.sampled_from(["code", "name", "id", "CODE"]) | TEXT,
        "name_field": st.sampled_from(["name", "code", "Name"]) | TEXT,
    },
)


@FUZZ
@given(body=st.binary(max_size=2048), suffix=SUFFIXES, level=LEVELS, commit=st.booleans())
def test_random_bytes(fuzz, body, suffix, level, commit):
    upload(fuzz[0], f"f{suffix}", body, level=level, commit=commit)


@FUZZ
@given(document=JSON, suffix=st.sampled_from([".geojson", ".json", ".kml", ".csv"]), commit=st.booleans())
def test_random_json(fuzz, document, suffix, commit):
    upload(fuzz[0], f"f{suffix}", json.dumps(document).encode(), commit=commit)


@FUZZ
@given(document=GEOJSON, level=LEVELS, commit=st.booleans(), params=PARAMS)
def test_geojson_shaped_documents(fuzz, document, level, commit, params):
    upload(fuzz[0], "f.geojson", json.dumps(document).encode(), level=level, commit=commit, **params)


ROW = st.lists(
    st.one_of(
        TEXT,
        CODES.map(str),
        st.sampled_from(
            ["POLYGON((111.2 39.85, 111.21 39.85, 111.21 39.86, 111.2 39.85))", "POINT(1 2)", "111.2", "nan"]
        ),
    ),
    min_size=0,
    max_size=5,
)


@FUZZ
@given(
    header=st.lists(
        st.sampled_from(["code", "name", "wkt", "lon", "lat", "households", "x", "纬度"]) | TEXT, max_size=5
    ),
    rows=st.lists(ROW, max_size=4),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]),
    commit=st.booleans(),
    params=PARAMS,
)
def test_csv_text(fuzz, header, rows, encoding, commit, params):
    quote = lambda v: '"' + str(v).replace('"', '""') + '"'  # noqa: E731
    text = "\n".join(",".join(quote(v) for v in line) for line in [header, *rows])
    upload(fuzz[0], "f.csv", text.encode(encoding, errors="replace"), commit=commit, **params)


MEMBER = st.sampled_from(["street.shp", "street.shx", "street.dbf", "street.prj", "street.cpg"])


@FUZZ
@given(
    members=st.dictionaries(
        MEMBER | st.sampled_from(["../evil.shp", "a/b.dbf", "x.txt", "", "STREET.SHP"]) | TEXT,
        st.binary(max_size=512) | st.sampled_from(["real", "truncated", "UTF-8", "GBK"]),
        max_size=6,
    ),
    suffix=st.sampled_from([".zip", ".shp.zip"]),
    commit=st.booleans(),
    params=PARAMS,
)
def test_zips_with_random_members(fuzz, members, suffix, commit, params):
    client, _, real = fuzz
    buffer = stdio.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in members.items():
            if data in ("real", "truncated"):
                own = real.read(name) if name in real.namelist() else b""
                data = own if data == "real" else own[: len(own) // 2]
            elif isinstance(data, str):
                data = data.encode()
            z.writestr(name.split("\x00")[0].strip("/") or "_", data)  # zipfile cannot write "/" nor NUL
    upload(client, f"f{suffix}", buffer.getvalue(), commit=commit, **params)


@FUZZ
@given(
    body=st.one_of(
        JSON,
        st.fixed_dictionaries(
            {},
            optional={
                "valid_from": st.dates().map(str) | TEXT | JSON,
                "note": TEXT | JSON,
                "force": TEXT | st.none() | JSON,
            },
        ),
    ),
    if_match=st.sampled_from(["*", '"r1"', "r1", '"r99999999999999999999"', "", 'W/"r2"']) | TEXT,
)
def test_publish_bodies(fuzz, body, if_match):
    client = fuzz[0]
    sendable = if_match.isascii() and if_match.isprintable()  # what an HTTP client can put in a header
    headers = {**ADMIN, "If-Match": if_match if sendable else "*"}
    check(client.post("/v1/sets/s/publish", json=body, headers=headers))
    check(client.post("/v1/sets/s/publish", content=json.dumps(body).encode()[:50], headers=headers))


# ---- a valid upload with a few random changes: the importer, the report and the commit ---------------
def _mutate(document, operations):
    features = document["features"]
    for op, k, value in operations:
        if not features:
            break
        feature = features[k % len(features)]
        if op == "set" and isinstance(feature.get("properties"), dict):
            key, new = value
            feature["properties"][key] = new
        elif op == "geometry":
            feature["geometry"] = value
        elif op == "drop":
            features.remove(feature)
        elif op == "duplicate":
            features.append(json.loads(json.dumps(feature)))
        elif op == "scale" and (feature.get("geometry") or {}).get("type") == "MultiPolygon":
            ring = feature["geometry"]["coordinates"][0][0]
            x0, y0 = ring[0]
            ring[:] = [[x0 + (x - x0) * value, y0 + (y - y0) * value] for x, y in ring]
        elif op == "id":
            feature["id"] = value
    return document


OPERATION = st.one_of(
    st.tuples(
        st.just("set"),
        st.integers(0, 100),
        st.tuples(
            st.sampled_from(["code", "name", "households", "population", "parent_code", "level", "id", "新"]),
            CODES | JSON,
        ),
    ),
    st.tuples(st.just("geometry"), st.integers(0, 100), GEOMETRY),
    st.tuples(st.sampled_from(["drop", "duplicate"]), st.integers(0, 100), st.none()),
    st.tuples(st.just("scale"), st.integers(0, 100), st.floats(-2, 3)),
    st.tuples(st.just("id"), st.integers(0, 100), JSON),
)


@FUZZ
@given(
    operations=st.lists(OPERATION, max_size=3),
    level=st.sampled_from(["grid", "grid", "grid", "community", "microgrid"]),
    commit=st.booleans(),
    suffix=st.sampled_from([".geojson", ".json"]),
)
def test_valid_grids_with_random_changes(fuzz, operations, level, commit, suffix):
    client, layers, _ = fuzz
    document = json.loads(layers["grid"].to_json(drop_id=True))
    body = json.dumps(_mutate(document, operations)).encode()
    response = upload(client, f"grids{suffix}", body, level=level, commit=commit)
    if not operations and level == "grid":
        assert response.status_code == 200, response.text[:500]


@settings(FUZZ, max_examples=60)
@given(operations=st.lists(OPERATION, min_size=1, max_size=3), commit=st.booleans())
def test_valid_grids_with_random_changes_on_postgis(fuzz_postgis, operations, commit):
    client, layers, _ = fuzz_postgis
    document = json.loads(layers["grid"].to_json(drop_id=True))
    upload(
        client,
        "grids.geojson",
        json.dumps(_mutate(document, operations)).encode(),
        level="grid",
        commit=commit,
    )
