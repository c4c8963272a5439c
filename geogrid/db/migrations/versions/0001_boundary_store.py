"""Versioned boundary store: sets, versions, units (MultiPolygon, EPSG:4326), audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from geogrid.db.dialects import dialect_of

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "boundary_set",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("title", sa.String(200)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "boundary_version",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("set_id", sa.Integer, sa.ForeignKey("boundary_set.id", ondelete="CASCADE"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("base_number", sa.Integer),
        sa.Column("valid_from", sa.Date),
        sa.Column("valid_to", sa.Date),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.Column("published_by", sa.String(100)),
        sa.Column("note", sa.Text),
        sa.UniqueConstraint("set_id", "number", name="uq_boundary_version_set_number"),
        sa.CheckConstraint("status IN ('draft', 'published')", name="ck_boundary_version_status"),
        sa.CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="ck_boundary_version_validity"),
    )
    op.create_table(
        "unit",
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
        sa.UniqueConstraint("version_id", "code", name="uq_unit_version_code"),
    )
    op.create_index("ix_unit_version_level", "unit", ["version_id", "level"])
    dialect_of(op.get_bind()).add_geometry_column(op.get_bind(), "unit", "geom", "MULTIPOLYGON", 4326)
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("set_name", sa.String(100)),
        sa.Column("version_number", sa.Integer),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("ix_audit_log_set", "audit_log", ["set_name", "at"])


def downgrade() -> None:
    op.drop_table("audit_log")
    dialect_of(op.get_bind()).drop_geometry_column(op.get_bind(), "unit", "geom")
    op.drop_table("unit")
    op.drop_table("boundary_version")
    op.drop_table("boundary_set")
