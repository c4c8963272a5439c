"""The standard-address registry (versioned addresses), aliases people placed, and the geocode queue.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

OPEN = sa.text("status = 'open'")


def _set_id() -> sa.Column:
    return sa.Column(
        "set_id", sa.Integer, sa.ForeignKey("boundary_set.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "address",
        sa.Column("id", sa.Integer, primary_key=True),
        _set_id(),
        sa.Column("address_id", sa.String(64), nullable=False),
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
        sa.Column("aliases", sa.String(1000)),
        sa.Column("valid_from", sa.Date, nullable=False),
        sa.Column("valid_to", sa.Date),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("ended_by", sa.String(100)),
        sa.CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="ck_address_validity"),
    )
    op.create_index("ix_address_set_address", "address", ["set_id", "address_id"])
    op.create_table(
        "address_alias",
        sa.Column("id", sa.Integer, primary_key=True),
        _set_id(),
        sa.Column("text", sa.String(1000), nullable=False),
        sa.Column("norm", sa.String(1000), nullable=False),
        sa.Column("address_id", sa.String(64)),
        sa.Column("lon", sa.Float),
        sa.Column("lat", sa.Float),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("set_id", "norm", name="uq_address_alias_set_norm"),
        sa.CheckConstraint(
            "address_id IS NOT NULL OR (lon IS NOT NULL AND lat IS NOT NULL)", name="ck_address_alias_target"
        ),
    )
    op.create_table(
        "geocode_queue",
        sa.Column("id", sa.Integer, primary_key=True),
        _set_id(),
        sa.Column("text", sa.String(1000), nullable=False),
        sa.Column("norm", sa.String(1000), nullable=False),
        sa.Column("seen", sa.Integer, nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
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
        sa.CheckConstraint("status IN ('open', 'resolved')", name="ck_geocode_queue_status"),
    )
    op.create_index("ix_geocode_queue_set_status", "geocode_queue", ["set_id", "status"])
    # One open item per text: a partial unique index (PostgreSQL and SQLite both have them).
    op.create_index(
        "uq_geocode_queue_open",
        "geocode_queue",
        ["set_id", "norm"],
        unique=True,
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )


def downgrade() -> None:
    op.drop_table("geocode_queue")
    op.drop_table("address_alias")
    op.drop_table("address")
