"""The tables of the versioned boundary store (created by the Alembic migrations, not by create_all)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from geoalchemy2 import Geometry

metadata = sa.MetaData()


def valid_on(table: sa.Table, at: dt.date) -> sa.ColumnElement[bool]:
    """The rows of a table with ``valid_from``/``valid_to`` (a post, an address) in force on ``at``."""
    return sa.and_(table.c.valid_from <= at, sa.or_(table.c.valid_to.is_(None), table.c.valid_to > at))


boundary_set = sa.Table(
    "boundary_set",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("title", sa.String(200)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # Bumped by every write to the set; its value is the set's ETag (optimistic concurrency).
    sa.Column("revision", sa.Integer, nullable=False, server_default="0"),
)

boundary_version = sa.Table(
    "boundary_version",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("set_id", sa.Integer, sa.ForeignKey("boundary_set.id", ondelete="CASCADE"), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # draft | published
    sa.Column("base_number", sa.Integer),  # the published version this draft started from
    sa.Column("valid_from", sa.Date),
    sa.Column("valid_to", sa.Date),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("published_at", sa.DateTime(timezone=True)),
    sa.Column("published_by", sa.String(100)),
    sa.Column("note", sa.Text),
    sa.UniqueConstraint("set_id", "number", name="uq_boundary_version_set_number"),
)

unit = sa.Table(
    "unit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "version_id", sa.Integer, sa.ForeignKey("boundary_version.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("code", sa.String(32), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("parent_code", sa.String(32)),
    sa.Column("households", sa.Integer),
    sa.Column("population", sa.Integer),
    sa.Column("attributes", sa.JSON, nullable=False),
    # Added per dialect by the migration (PostGIS geometry + GiST, SpatiaLite AddGeometryColumn + R*Tree).
    sa.Column("geom", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False),
    sa.UniqueConstraint("version_id", "code", name="uq_unit_version_code"),
    sa.Index("ix_unit_version_level", "version_id", "level"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("action", sa.String(50), nullable=False),
    sa.Column("set_name", sa.String(100)),
    sa.Column("version_number", sa.Integer),
    sa.Column("detail", sa.JSON, nullable=False),
)

api_key = sa.Table(
    "api_key",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("scope", sa.String(32)),  # a street or community code; None: the whole county
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),  # sha256 of the key; never the key
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)

# ---- people and posts (migration 0004) -------------------------------------------------------------
person = sa.Table(
    "person",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("set_id", sa.Integer, sa.ForeignKey("boundary_set.id", ondelete="CASCADE"), nullable=False),
    sa.Column("person_id", sa.String(32), nullable=False),  # the office's own number (人员编号)
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("phone", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("set_id", "person_id", name="uq_person_set_person"),
)

# A post is never deleted or rewritten: ending it sets valid_to (and ended_at/by), so history stays.
post = sa.Table(
    "post",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("set_id", sa.Integer, sa.ForeignKey("boundary_set.id", ondelete="CASCADE"), nullable=False),
    sa.Column("person_ref", sa.Integer, sa.ForeignKey("person.id"), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("unit_code", sa.String(32), nullable=False),
    sa.Column("valid_from", sa.Date, nullable=False),
    sa.Column("valid_to", sa.Date),  # exclusive; None: in force until ended
    sa.Column("buildings", sa.JSON, nullable=False),  # building ids the person answers for ("1+X")
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
    sa.Column("ended_by", sa.String(100)),
    sa.Index("ix_post_set_unit", "set_id", "unit_code"),
    sa.Index("ix_post_set_person", "set_id", "person_ref"),
)

# ---- layers beside the boundaries (per set, not versioned; migration 0004) -------------------------
# Geometry columns are added per dialect by the migration, as unit.geom is.
building = sa.Table(
    "building",
    metadata,
    sa.Column("set_id", sa.Integer, sa.ForeignKey("boundary_set.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("microgrid_code", sa.String(32), nullable=False),
    sa.Column("name", sa.String(200)),
    sa.Column("households", sa.Integer, nullable=False),
    sa.Column("population", sa.Integer),
    sa.Column("floors", sa.Integer),
    sa.Column("geom", Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
)

site = sa.Table(
    "site",
    metadata,
    sa.Column("set_id", sa.Integer, sa.ForeignKey("boundary_set.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # centre | station | other
    sa.Column("hours", sa.String(100)),
    sa.Column("unit_code", sa.String(32)),
    sa.Column("geom", Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
)

road = sa.Table(
    "road",
    metadata,
    sa.Column("set_id", sa.Integer, sa.ForeignKey("boundary_set.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # arterial | street | path
    sa.Column("name", sa.String(200)),
    sa.Column("geom", Geometry("LINESTRING", srid=4326, spatial_index=False), nullable=False),
)

# ---- the standard-address registry (migration 0005) ------------------------------------------------
# An address is never rewritten: a change ends its row (valid_to) and adds a new one, so history stays.
# The point is two floats (WGS-84): addresses are matched in memory, and the micro-grid of a point comes
# from the index of the version in force, never from the database.
address = sa.Table(
    "address",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("set_id", sa.Integer, sa.ForeignKey("boundary_set.id", ondelete="CASCADE"), nullable=False),
    sa.Column("address_id", sa.String(64), nullable=False),  # 地址编码, unique among rows in force
    sa.Column("township", sa.String(100)),
    sa.Column("road", sa.String(100)),
    sa.Column("door", sa.String(32)),
    sa.Column("compound", sa.String(100)),
    sa.Column("building", sa.String(32)),
    sa.Column("entrances", sa.Integer),
    sa.Column("village", sa.String(100)),
    sa.Column("group", sa.String(32)),
    sa.Column("lon", sa.Float, nullable=False),
    sa.Column("lat", sa.Float, nullable=False),
    sa.Column("building_id", sa.String(64)),
    sa.Column("aliases", sa.String(1000)),  # ';'-joined, as the registry file's 别名
    sa.Column("valid_from", sa.Date, nullable=False),
    sa.Column("valid_to", sa.Date),  # exclusive; None: in force until ended
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
    sa.Column("ended_by", sa.String(100)),
    sa.Index("ix_address_set_address", "set_id", "address_id"),
)

# A text a person placed (from the queue): its normalised form names an address or a point.
address_alias = sa.Table(
    "address_alias",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("set_id", sa.Integer, sa.ForeignKey("boundary_set.id", ondelete="CASCADE"), nullable=False),
    sa.Column("text", sa.String(1000), nullable=False),  # as received, phones masked
    sa.Column("norm", sa.String(1000), nullable=False),
    sa.Column("address_id", sa.String(64)),
    sa.Column("lon", sa.Float),
    sa.Column("lat", sa.Float),
    sa.Column("source", sa.String(16), nullable=False),  # queue | file
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("set_id", "norm", name="uq_address_alias_set_norm"),
)

# Texts the matcher was not sure of, waiting for a person: one open item per normalised text.
geocode_queue = sa.Table(
    "geocode_queue",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("set_id", sa.Integer, sa.ForeignKey("boundary_set.id", ondelete="CASCADE"), nullable=False),
    sa.Column("text", sa.String(1000), nullable=False),  # phones masked
    sa.Column("norm", sa.String(1000), nullable=False),
    sa.Column("seen", sa.Integer, nullable=False),
    sa.Column("source", sa.String(100), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # open | resolved
    sa.Column("confidence", sa.Float),
    sa.Column("parts", sa.JSON),
    sa.Column("candidates", sa.JSON, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolved_by", sa.String(100)),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Column("address_id", sa.String(64)),
    sa.Column("lon", sa.Float),
    sa.Column("lat", sa.Float),
    sa.Index("ix_geocode_queue_set_status", "set_id", "status"),
    sa.Index(
        "uq_geocode_queue_open",
        "set_id",
        "norm",
        unique=True,
        postgresql_where=sa.text("status = 'open'"),
        sqlite_where=sa.text("status = 'open'"),
    ),
)

# A report from any channel, placed in the micro-grid of the version in force when it was reported.
incident = sa.Table(
    "incident",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("set_id", sa.Integer, sa.ForeignKey("boundary_set.id"), nullable=False),
    sa.Column("idem_key", sa.String(200)),  # the client's idempotency key: a retry finds its incident
    sa.Column("request_hash", sa.String(64)),  # of the request that used the key (another one is refused)
    sa.Column("channel", sa.String(20), nullable=False),
    sa.Column("category", sa.String(20), nullable=False),
    sa.Column("kind", sa.String(12), nullable=False),  # event | component
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("crs", sa.String(20)),  # the coordinates as given, and in WGS-84
    sa.Column("x", sa.Float),
    sa.Column("y", sa.Float),
    sa.Column("lon", sa.Float),
    sa.Column("lat", sa.Float),
    sa.Column("address", sa.String(1000)),  # phones masked
    sa.Column("address_id", sa.String(64)),
    sa.Column("address_confidence", sa.Float),
    sa.Column("placed_by", sa.String(12), nullable=False),  # coordinates | address | queue
    sa.Column("version_number", sa.Integer),  # the boundary version in force at reported_at
    sa.Column("microgrid", sa.String(32)),
    sa.Column("grid", sa.String(32)),
    sa.Column("community", sa.String(32)),
    sa.Column("street", sa.String(32)),
    sa.Column("flags", sa.JSON, nullable=False),
    sa.Column("media", sa.JSON, nullable=False),
    sa.Column("reporter_name", sa.String(100)),
    sa.Column("reporter_phone", sa.String(40)),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column(
        "level", sa.String(120), nullable=False
    ),  # who has it: grid, community, street, county, department:…
    sa.Column("deadline", sa.DateTime(timezone=True)),
    sa.Column("duplicate_of", sa.Integer, sa.ForeignKey("incident.id")),
    sa.Column("satisfaction", sa.Integer),
    sa.Column("accepted_at", sa.DateTime(timezone=True)),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),  # first 办结
    sa.Column("on_time", sa.Boolean),  # that first 办结 came by the deadline then in force
    sa.Column("closed_at", sa.DateTime(timezone=True)),
    sa.Column("hours_to_close", sa.Float),  # working hours from the report to 结案
    sa.Column("escalations", sa.Integer, nullable=False, server_default="0"),
    sa.Column("seq", sa.Integer, nullable=False),  # transitions so far: the incident's ETag
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("set_id", "idem_key", name="uq_incident_idem_key"),
    sa.Index("ix_incident_set_state", "set_id", "state"),
    sa.Index("ix_incident_set_microgrid", "set_id", "microgrid"),
    sa.Index("ix_incident_set_reported", "set_id", "reported_at"),
    sa.Index("ix_incident_nearby", "set_id", "category", "lat", "lon"),  # duplicates: a box of one category
    sa.Index(  # the open ones, with all the KPIs' overdue count reads of them (no row fetched)
        "ix_incident_open",
        *("set_id", "reported_at", "deadline", "state", "microgrid", "grid", "community", "street", "level"),
        postgresql_where=sa.text("closed_at IS NULL"),
        sqlite_where=sa.text("closed_at IS NULL"),
    ),
)

TALLIED = (  # incidents, and of them void, accepted …; escalations; ratings and their sum
    "received", "void", "accepted", "resolved", "on_time", "closed", "escalations", "rated", "satisfaction",
)  # fmt: skip

# The KPIs' figures per unit, level and month of report (UTC), kept with every write of an incident, so
# that a year's figures add up a few thousand rows rather than count a million (geogrid.db.incident_kpis).
incident_tally = sa.Table(
    "incident_tally",
    metadata,
    sa.Column("set_id", sa.Integer, sa.ForeignKey("boundary_set.id"), nullable=False),
    sa.Column("month", sa.Integer, nullable=False),  # yyyymm of reported_at in UTC
    sa.Column("microgrid", sa.String(32), nullable=False),  # '' where the incident has no unit at a level
    sa.Column("grid", sa.String(32), nullable=False),
    sa.Column("community", sa.String(32), nullable=False),
    sa.Column("street", sa.String(32), nullable=False),
    sa.Column("level", sa.String(120), nullable=False),
    *(sa.Column(name, sa.Integer, nullable=False) for name in TALLIED),
    sa.Column("hours", sa.LargeBinary, nullable=False),  # each closed one's working hours to close, float64
    sa.PrimaryKeyConstraint("set_id", "month", "microgrid", "grid", "community", "street", "level"),
)

# Every transition of every incident, kept forever (UPDATE and DELETE refused by triggers).
incident_event = sa.Table(
    "incident_event",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incident.id"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("action", sa.String(20), nullable=False),  # report, accept, dispatch … (states.STEPS)
    sa.Column("from_state", sa.String(16)),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("attachments", sa.JSON, nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.UniqueConstraint("incident_id", "seq", name="uq_incident_event_seq"),
)
