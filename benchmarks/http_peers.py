"""The two peers GeoGrid's HTTP lookup is measured against, as bare ASGI apps on the same server (uvicorn).

- ``bare``: answers every request with a fixed body: the HTTP stack's own ceiling.
- ``postgis``: answers ``GET /v1/lookup?lon=&lat=`` with one PostGIS query per request, the MapIt way:
  every unit of the version in force whose polygon covers the point (GiST index, ``ST_Covers``), and
  the people in post today for its micro-grid and grid (a join in the same query), as GeoGrid answers.

Run as ``uvicorn benchmarks.http_peers:bare`` or ``GEOGRID_BENCH_DSN=... uvicorn benchmarks.http_peers:postgis``.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import parse_qsl

import psycopg

BODY = b'{"ok":true}'
QUERY = """
WITH units AS (
  SELECT u.level, u.code, u.name, s.id AS set_id FROM unit u
  JOIN boundary_version v ON v.id = u.version_id JOIN boundary_set s ON s.id = v.set_id
  WHERE s.name = %(set)s AND v.status = 'published' AND v.valid_from <= CURRENT_DATE
    AND (v.valid_to IS NULL OR CURRENT_DATE < v.valid_to)
    AND ST_Covers(u.geom, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326))
)
SELECT u.level, u.code, u.name,
  (SELECT json_agg(json_build_object('name', pe.name, 'role', p.role, 'phone',
     left(pe.phone, 3) || '****' || right(pe.phone, 4), 'unit_code', p.unit_code))
   FROM post p JOIN person pe ON pe.id = p.person_ref
   WHERE p.set_id = u.set_id AND p.unit_code = u.code AND u.level IN ('grid', 'microgrid')
     AND p.valid_from <= CURRENT_DATE AND (p.valid_to IS NULL OR CURRENT_DATE < p.valid_to))
FROM units u ORDER BY length(u.code)
"""


async def _reply(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A fixed body for every request."""
    if scope["type"] == "http":
        await _reply(send, 200, BODY)


_connection: psycopg.AsyncConnection[Any] | None = None


async def postgis(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """One PostGIS query per lookup (one connection: the benchmark sends one request at a time)."""
    global _connection
    if scope["type"] != "http":
        return
    params = dict(parse_qsl(scope["query_string"].decode()))
    if _connection is None:
        _connection = await psycopg.AsyncConnection.connect(os.environ["GEOGRID_BENCH_DSN"], autocommit=True)
    try:
        lon, lat = float(params["lon"]), float(params["lat"])
    except (KeyError, ValueError):
        await _reply(send, 422, b'{"detail":"lon and lat"}')
        return
    async with _connection.cursor() as cur:
        await cur.execute(QUERY, {"set": params.get("set", "demo"), "lon": lon, "lat": lat}, prepare=True)
        rows = await cur.fetchall()
    units = [{"level": level, "code": code, "name": name} for level, code, name, _ in rows]
    people = [p for *_, posts in rows for p in posts or ()]
    await _reply(send, 200, json.dumps({"units": units, "people": people}, ensure_ascii=False).encode())
