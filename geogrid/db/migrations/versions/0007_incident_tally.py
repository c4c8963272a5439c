"""Incident tallies per unit, level and month, which the KPIs add up; an index of the open incidents.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from geogrid.db import incident_kpis

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COUNTS = (
    "received",
    "void",
    "accepted",
    "resolved",
    "on_time",
    "closed",
    "escalations",
    "rated",
    "satisfaction",
)


def upgrade() -> None:
    op.create_table(
        "incident_tally",
        sa.Column("set_id", sa.Integer, sa.ForeignKey("boundary_set.id"), nullable=False),
        sa.Column("month", sa.Integer, nullable=False),
        sa.Column("microgrid", sa.String(32), nullable=False),
        sa.Column("grid", sa.String(32), nullable=False),
        sa.Column("community", sa.String(32), nullable=False),
        sa.Column("street", sa.String(32), nullable=False),
        sa.Column("level", sa.String(120), nullable=False),
        *(sa.Column(name, sa.Integer, nullable=False) for name in COUNTS),
        sa.Column("hours", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("set_id", "month", "microgrid", "grid", "community", "street", "level"),
    )
    op.create_index(
        "ix_incident_open",
        "incident",
        ["set_id", "reported_at", "deadline", "state", "microgrid", "grid", "community", "street", "level"],
        postgresql_where=sa.text("closed_at IS NULL"),
        sqlite_where=sa.text("closed_at IS NULL"),
    )
    conn = op.get_bind()
    for (set_id,) in conn.execute(sa.text("SELECT DISTINCT set_id FROM incident")).all():
        incident_kpis.retally(conn, int(set_id))


def downgrade() -> None:
    op.drop_index("ix_incident_open", "incident")
    op.drop_table("incident_tally")
