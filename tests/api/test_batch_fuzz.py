"""Property-based fuzz of ``POST /v1/lookup`` bodies (issue 10): never a 5xx, every 4xx a problem+json.

Random JSON values, GeoJSON-shaped objects with random members, CSV text with random headers and cells,
and random bytes, each sent as JSON, GeoJSON, CSV (with and without a charset) and Arrow, to the real app
on SpatiaLite.
"""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.main import create_app
from geogrid.settings import Settings
from tests.conftest import migrated_engine, published_demo

EXAMPLES = int(os.environ.get("GEOGRID_FUZZ_EXAMPLES", "200"))  # more for a longer hunt
KINDS = (
    "application/json",
    "application/geo+json",
    "text/csv",
    "text/csv; charset=gbk",
    "text/csv; charset=punycode",
    "application/json; charset=utf-16",
    "application/vnd.apache.arrow.stream",
)
NAMES = (
    "lon",
    "lat",
    "lng",
    "经度",
    "纬度",
    "x",
    "y",
    "type",
    "features",
    "geometry",
    "properties",
    "points",
)


@pytest.fixture(scope="module")
def client(demo_layers, tmp_path_factory):
    """The service on SpatiaLite with the demo's micro-grids; a small batch limit, no rate limit."""
    with migrated_engine("spatialite", tmp_path_factory) as engine:
        published_demo(engine, demo_layers, (("microgrids", "microgrid"),))
        settings_ = Settings(
            database_url=engine.url.render_as_string(hide_password=False),
            cache_dir=str(tmp_path_factory.mktemp("cache")),
            max_batch_points=50,
            rate_limit_per_minute=0,
        )
        with TestClient(create_app(settings_)) as c:
            yield c


numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-200, max_value=200),
    st.integers(min_value=-(2**70), max_value=2**70),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20), st.sampled_from(NAMES))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.one_of(st.sampled_from(NAMES), st.text(max_size=8)), inner, max_size=5),
    ),
    max_leaves=30,
)
geometries = st.fixed_dictionaries(
    {},
    optional={
        "type": st.one_of(st.sampled_from(["Point", "LineString", "Polygon"]), json_values),
        "coordinates": st.one_of(st.lists(numbers, max_size=3), json_values),
    },
)
features = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.one_of(st.just("Feature"), json_values),
            "properties": st.one_of(
                st.none(), st.dictionaries(st.text(max_size=8), scalars, max_size=3), json_values
            ),
            "geometry": st.one_of(st.none(), geometries, json_values),
        },
    ),
)
collections = st.fixed_dictionaries(
    {"type": st.one_of(st.just("FeatureCollection"), json_values)},
    optional={"features": st.one_of(st.lists(features, max_size=8), json_values)},
)
point_lists = st.lists(
    st.one_of(
        st.dictionaries(st.sampled_from(NAMES), st.one_of(scalars, json_values), max_size=4), json_values
    ),
    max_size=8,
)
csv_cells = st.one_of(
    st.text(max_size=12), numbers.map(str), st.sampled_from(["", '"', ",", "\n", "NaN", "1e400", "1_1"])
)


@st.composite
def csv_texts(draw):
    """CSV-ish text: a header of random (often lon/lat-like) names and rows of random cells."""
    width = draw(st.integers(min_value=1, max_value=4))
    header = draw(
        st.lists(st.one_of(st.sampled_from(NAMES), st.text(max_size=6)), min_size=width, max_size=width)
    )
    rows = draw(st.lists(st.lists(csv_cells, min_size=width, max_size=width), max_size=6))
    return "\n".join(",".join(cells) for cells in [header, *rows]) + draw(st.sampled_from(["", "\n", "\r\n"]))


def arrow(table: pa.Table) -> bytes:
    """``table`` as an Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


@st.composite
def arrow_tables(draw):
    """An Arrow IPC stream of two columns: numbers, text or booleans, named as points might be."""
    n = draw(st.integers(min_value=0, max_value=5))
    column = st.sampled_from(
        [
            st.one_of(st.none(), st.floats()),
            st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
            st.text(max_size=5),
            st.booleans(),
        ]
    ).flatmap(lambda values: st.lists(values, min_size=n, max_size=n))
    names = draw(st.sampled_from([("lon", "lat"), ("lng", "纬度"), ("a", "b"), ("lon", "lon")]))
    columns = [pa.array(draw(column)) for _ in names]
    return arrow(pa.Table.from_arrays(columns, names=list(names)))


@st.composite
def damaged_arrow(draw):
    """A valid Arrow stream of text and numbers with a few bytes overwritten (offsets, lengths, counts):
    read unchecked, such a stream sent later reads past its buffers and killed the process."""
    n = draw(st.integers(min_value=1, max_value=4))
    table = pa.table({"lon": [f"111.{i}" for i in range(n)], "lat": [39.0 + i / 10 for i in range(n)]})
    data = bytearray(arrow(table))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        at = draw(st.integers(min_value=0, max_value=len(data) - 1))
        data[at] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF]))
    return bytes(data)


def encode(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


bodies = st.one_of(
    json_values.map(encode),
    collections.map(encode),
    point_lists.map(encode),
    csv_texts().map(str.encode),
    csv_texts().map(lambda text: text.encode("gb18030")),
    st.binary(max_size=200),
    arrow_tables(),
    damaged_arrow(),
)


@given(
    body=bodies,
    kind=st.sampled_from(KINDS),
    query=st.sampled_from(["", "?crs=gcj-02", "?lon_col=x&lat_col=y", "?crs=EPSG:4546"]),
)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_no_batch_body_gets_a_server_error(client, body, kind, query):
    response = client.post(f"/v1/lookup{query}", content=body, headers={"content-type": kind})
    assert response.status_code < 500, (kind, body[:300], response.text[:300])
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json"), response.text[:300]
        assert response.json()["status"] == response.status_code
