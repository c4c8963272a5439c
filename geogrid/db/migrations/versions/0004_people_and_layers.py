"""People and their posts (who answers for which unit, when), and the layers beside the boundaries:
buildings and service sites (POINT) and roads (LINESTRING), per set, in EPSG:4326.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from geogrid.db.dialects import dialect_of

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

GEOMETRIES = (("building", "POINT"), ("site", "POINT"), ("road", "LINESTRING"))


def _set_id(primary_key: bool = False) -> sa.Column:
    fk = sa.ForeignKey("boundary_set.id", ondelete="CASCADE")
    return sa.Column("set_id", sa.Integer, fk, nullable=False, primary_key=primary_key)


def upgrade() -> None:
    op.create_table(
        "person",
        sa.Column("id", sa.Integer, primary_key=True),
        _set_id(),
        sa.Column("person_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("set_id", "person_id", name="uq_person_set_person"),
    )
    op.create_table(
        "post",
        sa.Column("id", sa.Integer, primary_key=True),
        _set_id(),
        # No cascade: a person who held a post cannot be deleted on their own (history is kept).
        sa.Column("person_ref", sa.Integer, sa.ForeignKey("person.id"), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("unit_code", sa.String(32), nullable=False),
        sa.Column("valid_from", sa.Date, nullable=False),
        sa.Column("valid_to", sa.Date),
        sa.Column("buildings", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("ended_by", sa.String(100)),
        sa.CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="ck_post_validity"),
    )
    op.create_index("ix_post_set_unit", "post", ["set_id", "unit_code"])
    op.create_index("ix_post_set_person", "post", ["set_id", "person_ref"])
    op.create_table(
        "building",
        _set_id(primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("microgrid_code", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("households", sa.Integer, nullable=False),
        sa.Column("population", sa.Integer),
        sa.Column("floors", sa.Integer),
    )
    op.create_table(
        "site",
        _set_id(primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("hours", sa.String(100)),
        sa.Column("unit_code", sa.String(32)),
    )
    op.create_table(
        "road",
        _set_id(primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200)),
    )
    conn = op.get_bind()
    for table, kind in GEOMETRIES:
        dialect_of(conn).add_geometry_column(conn, table, "geom", kind, 4326)


def downgrade() -> None:
    conn = op.get_bind()
    for table, _kind in reversed(GEOMETRIES):
        dialect_of(conn).drop_geometry_column(conn, table, "geom")
        op.drop_table(table)
    op.drop_table("post")
    op.drop_table("person")
