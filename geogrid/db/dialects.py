"""PostGIS and SpatiaLite differences, in one place; the rest of GeoGrid never asks which engine it is on."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import Connection, text
from sqlalchemy.dialects import postgresql, sqlite

LOCATE_FUNCTION = """
CREATE OR REPLACE FUNCTION geogrid_locate(
    p_set text, p_lon float8, p_lat float8, p_at date DEFAULT current_date, p_level text DEFAULT 'microgrid'
) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT u.code FROM unit u
    JOIN boundary_version v ON v.id = u.version_id
    JOIN boundary_set s ON s.id = v.set_id
    WHERE s.name = p_set AND v.status = 'published' AND v.valid_from <= p_at
      AND (v.valid_to IS NULL OR p_at < v.valid_to)
      AND u.level = p_level
      AND ST_Covers(u.geom, ST_SetSRID(ST_MakePoint(p_lon, p_lat), 4326))
    ORDER BY u.code COLLATE "C" LIMIT 1
$$;
"""


WriteRows = Callable[[Connection, Sequence[Mapping[str, Any]]], list[sa.RowMapping]]


def _json_value(value: Any) -> Any:
    """Bytes as PostgreSQL's hex bytea text (the one value JSON has no form for)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    raise TypeError(f"no JSON form for {type(value).__name__}")


COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
NULL = "\\N"


def _copy_texts(kind: sa.types.TypeEngine[Any], values: Sequence[Any]) -> list[str]:
    """A column's values in PostgreSQL's COPY text format (JSON columns come as their text)."""
    if isinstance(kind, sa.DateTime):  # ISO text; a repeated one (now) formatted once
        out, last, text = [], None, NULL
        for value in values:
            if value is not last:
                last, text = value, NULL if value is None else value.isoformat()
            out.append(text)
        return out
    if isinstance(kind, sa.Boolean):
        return [NULL if v is None else ("t" if v else "f") for v in values]
    if isinstance(kind, sa.Integer):
        return [NULL if v is None else str(int(v)) for v in values]
    if isinstance(kind, sa.Float):
        return [NULL if v is None else repr(float(v)) for v in values]
    if not isinstance(kind, sa.String | sa.JSON):
        raise TypeError(f"no COPY text for a {kind!r} column")
    texts = [NULL if v is None else v for v in values]
    joined = "".join(v for v in values if v is not None)
    if "\\" in joined or "\t" in joined or "\n" in joined or "\r" in joined:  # escaped only if need be
        texts = [t if v is None else v.translate(COPY_ESCAPES) for t, v in zip(texts, values, strict=True)]
    return texts


@dataclass(frozen=True)
class PostGIS:
    """PostgreSQL with the PostGIS extension."""

    name: str = "postgis"
    # a bulk write may go on on its own thread while other connections read (SQLite's may not)
    writes_aside: bool = True

    def init(self, conn: Connection) -> None:
        """Make the database spatial (idempotent)."""
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))

    def add_geometry_column(self, conn: Connection, table: str, column: str, kind: str, srid: int) -> None:
        """Add a NOT NULL geometry column with a GiST index."""
        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} geometry({kind}, {srid}) NOT NULL"))
        conn.execute(text(f"CREATE INDEX ix_{table}_{column} ON {table} USING gist ({column})"))

    def drop_geometry_column(self, conn: Connection, table: str, column: str) -> None:
        """Drop a geometry column and its index."""
        conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))

    def version(self, conn: Connection) -> str:
        """The spatial extension's version string."""
        return str(conn.execute(text("SELECT postgis_lib_version()")).scalar())

    def create_locate_function(self, conn: Connection) -> None:
        """Install ``geogrid_locate(set, lon, lat, at, level)``: the unit covering a WGS-84 point.

        ``ST_Covers`` on the original polygons (GiST-indexed) and the smallest code among the units
        covering the point (codes compared bytewise, as in Python), the rule every GeoGrid path shares.
        """
        conn.execute(text(LOCATE_FUNCTION))

    def drop_locate_function(self, conn: Connection) -> None:
        """Remove ``geogrid_locate``."""
        conn.execute(text("DROP FUNCTION IF EXISTS geogrid_locate(text, float8, float8, date, text)"))

    def json_rows(self, param: str, columns: Sequence[tuple[str, str]]) -> str | None:
        """A FROM item (SQL) reading the JSON array of objects bound as ``:param`` as rows of ``columns``
        ((name, type): integer, text or float), to join LATERAL: one fixed statement for any number of rows
        (None where the engine has no lateral join)."""
        kinds = {"integer": "bigint", "text": "text", "float": "float8"}
        cols = ", ".join(f"{name} {kinds[kind]}" for name, kind in columns)
        return f"jsonb_to_recordset(CAST(:{param} AS jsonb)) AS {param}({cols})"

    def read_snapshot(self, conn: Connection) -> None:
        """Make the transaction, before its first statement, read one snapshot throughout (and write nothing)."""
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")

    def lock_writes(self, conn: Connection, table: str) -> None:
        """Hold off other transactions' writes to ``table`` until this one ends (reads go on)."""
        conn.exec_driver_sql(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")

    def for_a_big_scan(self, conn: Connection) -> None:
        """Tune the transaction for one aggregate over 10⁵–10⁶ rows: no JIT (it compiles for 100 ms and
        more, as long as the scan of a month takes)."""
        conn.exec_driver_sql("SET LOCAL jit = off")

    def insert_rows(
        self,
        table: sa.Table,
        *,
        unique: Sequence[str] = (),
        adding: Sequence[str] = (),
        returning: Sequence[str] = (),
    ) -> WriteRows:
        """A writer of many rows of ``table`` (dicts with the same keys) in one statement, however many: a
        row whose ``unique`` columns are taken is skipped (waiting for a writer holding them) or, with
        ``adding``, adds those columns to the row there; answers ``returning`` of the rows inserted, in the
        order given (``returning`` starts with the serial key). The rows go as one JSON parameter: one fixed,
        prepared statement for any batch (SQLAlchemy's per-row work costs more than the insert)."""
        made: dict[tuple[str, ...], sa.TextClause] = {}

        def write(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[sa.RowMapping]:
            if not rows:
                return []
            columns = tuple(rows[0])
            statement = made.get(columns)
            if statement is None:
                names = ", ".join(f'"{c}"' for c in columns)
                sql = (
                    f"INSERT INTO {table.name} ({names}) SELECT {names} FROM json_populate_recordset("
                    f"NULL::{table.name}, CAST(:rows AS json)) WITH ORDINALITY ORDER BY ordinality"
                )  # ids are drawn in that order
                if unique:
                    sql += f" ON CONFLICT ({', '.join(unique)}) DO " + (
                        "UPDATE SET " + ", ".join(f"{c} = {table.name}.{c} + EXCLUDED.{c}" for c in adding)
                        if adding
                        else "NOTHING"
                    )
                if returning:
                    sql += f" RETURNING {', '.join(returning)}"
                statement = made[columns] = text(sql)
            data = orjson.dumps(rows, default=_json_value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
            result = conn.execute(statement, {"rows": data})
            return sorted(result.mappings(), key=lambda r: r[returning[0]]) if returning else []

        return write

    def one_of(self, column: sa.ColumnElement[Any], values: Sequence[Any]) -> sa.ColumnElement[bool]:
        """``column`` is one of ``values``: one array parameter, however many (an IN list of 10⁴ binds
        costs more to build, send and parse than the look-up itself)."""
        return column == sa.any_(sa.bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))

    def new_ids(self, conn: Connection, table: str, n: int) -> list[int] | None:
        """``n`` fresh values of ``table``'s serial ``id`` (drawn now, so rows can be written with theirs)."""
        sql = (
            f"SELECT array_agg(nextval(pg_get_serial_sequence('{table}', 'id'))) FROM generate_series(1, :n)"
        )
        return list(conn.execute(text(sql), {"n": n}).scalar_one())  # one array: no row a value to fetch

    def join_bytes(self, column: sa.ColumnElement[bytes]) -> sa.ColumnElement[bytes]:
        """An aggregate joining a group's byte strings end to end (in no set order)."""
        return sa.func.string_agg(column, sa.literal(b"", sa.LargeBinary))

    def bulk_insert(
        self, conn: Connection, table: sa.Table, columns: Mapping[str, Sequence[Any]]
    ) -> Callable[[Connection], None]:
        """Rows of ``table`` given column by column, made ready to insert now (as COPY text, each column
        formatted in one loop); the returned job writes them on a connection (in its transaction) by one
        COPY, holding Python's lock only to hand the bytes over."""
        texts = [_copy_texts(table.c[name].type, values) for name, values in columns.items()]
        data = ("\n".join(["\t".join(row) for row in zip(*texts, strict=True)]) + "\n").encode()
        sql = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"

        def write(conn: Connection) -> None:
            raw: Any = conn.connection.dbapi_connection
            try:
                with raw.cursor() as cursor, cursor.copy(sql) as copy:
                    copy.write(data)
            except conn.dialect.loaded_dbapi.Error as exc:  # as SQLAlchemy's own statements raise them
                raise sa.exc.DBAPIError.instance(sql, None, exc, conn.dialect.loaded_dbapi.Error) from exc

        return write

    def make_append_only(self, conn: Connection, table: str) -> None:
        """Refuse every UPDATE, DELETE and TRUNCATE of ``table``: its rows are kept forever."""
        conn.execute(
            text(
                "CREATE OR REPLACE FUNCTION geogrid_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN RAISE EXCEPTION '% is append-only: its rows are kept forever', TG_TABLE_NAME; END $$"
            )
        )
        conn.execute(
            text(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION geogrid_append_only()"
            )
        )
        conn.execute(
            text(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION geogrid_append_only()"
            )
        )

    def drop_append_only(self, conn: Connection, table: str) -> None:
        """Remove the triggers of :meth:`make_append_only` (the function stays for other tables)."""
        conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}"))
        conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}"))


@dataclass(frozen=True)
class SpatiaLite:
    """SQLite with the SpatiaLite extension (the embedded default)."""

    name: str = "spatialite"
    writes_aside: bool = False

    def init(self, conn: Connection) -> None:
        """Create SpatiaLite's metadata tables unless they exist (idempotent)."""
        exists = conn.execute(
            text("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='spatial_ref_sys'")
        ).scalar()
        if not exists:
            # 'WGS84' loads only the SRIDs GeoGrid stores in; the full EPSG table takes seconds.
            conn.execute(text("SELECT InitSpatialMetadata(1, 'WGS84')"))

    def add_geometry_column(self, conn: Connection, table: str, column: str, kind: str, srid: int) -> None:
        """Add a NOT NULL geometry column with an R*Tree spatial index."""
        ok = conn.execute(
            text("SELECT AddGeometryColumn(:t, :c, :srid, :kind, 'XY', 1)"),
            {"t": table, "c": column, "srid": srid, "kind": kind.upper()},
        ).scalar()
        if ok != 1:
            raise RuntimeError(f"SpatiaLite could not add geometry column {table}.{column}")
        conn.execute(text("SELECT CreateSpatialIndex(:t, :c)"), {"t": table, "c": column})

    def drop_geometry_column(self, conn: Connection, table: str, column: str) -> None:
        """Unregister a geometry column and its index (the table drop removes the data)."""
        conn.execute(text("SELECT DisableSpatialIndex(:t, :c)"), {"t": table, "c": column})
        conn.execute(text(f"DROP TABLE IF EXISTS idx_{table}_{column}"))
        conn.execute(text("SELECT DiscardGeometryColumn(:t, :c)"), {"t": table, "c": column})

    def version(self, conn: Connection) -> str:
        """The spatial extension's version string."""
        return str(conn.execute(text("SELECT spatialite_version()")).scalar())

    def create_locate_function(self, conn: Connection) -> None:
        """SQLite has no stored functions; lookups on SpatiaLite go through the in-process index."""

    def drop_locate_function(self, conn: Connection) -> None:
        """Nothing to drop on SpatiaLite."""

    def json_rows(self, param: str, columns: Sequence[tuple[str, str]]) -> str | None:
        """None: SQLite has no lateral join to use such rows with (a loop over them is cheap in-process)."""
        return None

    def read_snapshot(self, conn: Connection) -> None:
        """Begin the transaction now (the driver would not before a SELECT): its reads then share one snapshot."""
        conn.exec_driver_sql("BEGIN")

    def lock_writes(self, conn: Connection, table: str) -> None:
        """Nothing: SQLite has one writer at a time, and the caller's first write takes its lock."""

    def for_a_big_scan(self, conn: Connection) -> None:
        """Nothing to tune on SQLite."""

    def insert_rows(
        self,
        table: sa.Table,
        *,
        unique: Sequence[str] = (),
        adding: Sequence[str] = (),
        returning: Sequence[str] = (),
    ) -> WriteRows:
        """A writer of many rows of ``table`` (dicts with the same keys): a row whose ``unique`` columns are
        taken is skipped or, with ``adding``, adds those columns to the row there; answers ``returning`` of
        the rows inserted, in the order given (``returning`` starts with the serial key)."""
        insert = sqlite.insert(table)
        if unique:
            insert = (
                insert.on_conflict_do_update(
                    index_elements=list(unique), set_={c: table.c[c] + insert.excluded[c] for c in adding}
                )
                if adding
                else insert.on_conflict_do_nothing(index_elements=list(unique))
            )
        statement = insert.returning(*(table.c[c] for c in returning)) if returning else insert

        def write(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[sa.RowMapping]:
            if not rows:
                return []
            result = conn.execute(statement, list(rows))
            return sorted(result.mappings(), key=lambda r: r[returning[0]]) if returning else []

        return write

    def one_of(self, column: sa.ColumnElement[Any], values: Sequence[Any]) -> sa.ColumnElement[bool]:
        """``column`` is one of ``values``: one JSON parameter, however many (SQLite binds at most 32,766)."""
        listed = sa.bindparam(None, orjson.dumps(list(values)).decode(), type_=sa.Text)
        return column.in_(sa.select(sa.literal_column("value")).select_from(sa.func.json_each(listed)))

    def new_ids(self, conn: Connection, table: str, n: int) -> list[int] | None:
        """None: SQLite has no sequence to draw ids from (rows get theirs as they are inserted)."""
        return None

    def join_bytes(self, column: sa.ColumnElement[bytes]) -> sa.ColumnElement[bytes]:
        """An aggregate joining a group's byte strings end to end (in no set order)."""
        return sa.cast(sa.func.group_concat(column, ""), sa.LargeBinary)

    def bulk_insert(
        self, conn: Connection, table: sa.Table, columns: Mapping[str, Sequence[Any]]
    ) -> Callable[[Connection], None]:
        """Rows of ``table`` given column by column, made ready to insert now (the column types' own bind
        processors, each column in one loop; JSON columns come as their text); the returned job writes them
        on a connection (in its transaction) by one executemany."""
        dialect = conn.dialect
        data = []
        for name, values in columns.items():
            kind = table.c[name].type
            bind = None if isinstance(kind, sa.JSON) else kind._cached_bind_processor(dialect)
            data.append([bind(v) for v in values] if bind is not None else values)
        rows = list(zip(*data, strict=True))
        sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"

        def write(conn: Connection) -> None:
            conn.exec_driver_sql(sql, rows)

        return write

    def make_append_only(self, conn: Connection, table: str) -> None:
        """Refuse every UPDATE and DELETE of ``table``: its rows are kept forever."""
        for event in ("UPDATE", "DELETE"):
            conn.execute(
                text(
                    f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: its rows are kept forever'); END"
                )
            )

    def drop_append_only(self, conn: Connection, table: str) -> None:
        """Remove the triggers of :meth:`make_append_only`."""
        for event in ("update", "delete"):
            conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{event}"))


Dialect = PostGIS | SpatiaLite
DIALECTS: dict[str, Dialect] = {"postgresql": PostGIS(), "sqlite": SpatiaLite()}


def dialect_of(conn: Connection) -> Dialect:
    """Return the spatial dialect for a connection; raise for engines GeoGrid does not support."""
    name = conn.dialect.name
    if name not in DIALECTS:
        raise ValueError(f"unsupported database {name!r}: GeoGrid runs on PostGIS or SpatiaLite")
    return DIALECTS[name]
