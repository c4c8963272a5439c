"""Incidents and their append-only log of transitions.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from geogrid.db.dialects import dialect_of

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

STATES = "'reported','accepted','dispatched','in_progress','resolved','verified','closed','returned','parked','escalated','void'"


def upgrade() -> None:
    op.create_table(
        "incident",
        sa.Column("id", sa.Integer, primary_key=True),
        # no cascade: an incident outlives nothing, a set with incidents cannot be deleted
        sa.Column("set_id", sa.Integer, sa.ForeignKey("boundary_set.id"), nullable=False),
        sa.Column("idem_key", sa.String(200)),
        sa.Column("request_hash", sa.String(64)),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("category", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("crs", sa.String(20)),
        sa.Column("x", sa.Float),
        sa.Column("y", sa.Float),
        sa.Column("lon", sa.Float),
        sa.Column("lat", sa.Float),
        sa.Column("address", sa.String(1000)),
        sa.Column("address_id", sa.String(64)),
        sa.Column("address_confidence", sa.Float),
        sa.Column("placed_by", sa.String(12), nullable=False),  # coordinates | address | queue
        sa.Column("version_number", sa.Integer),
        sa.Column("microgrid", sa.String(32)),
        sa.Column("grid", sa.String(32)),
        sa.Column("community", sa.String(32)),
        sa.Column("street", sa.String(32)),
        sa.Column("flags", sa.JSON, nullable=False),
        sa.Column("media", sa.JSON, nullable=False),
        sa.Column("reporter_name", sa.String(100)),
        sa.Column("reporter_phone", sa.String(40)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("level", sa.String(120), nullable=False),
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
        sa.CheckConstraint(f"state IN ({STATES})", name="ck_incident_state"),
        sa.CheckConstraint("satisfaction IS NULL OR satisfaction BETWEEN 1 AND 5", name="ck_incident_rating"),
        sa.CheckConstraint("kind IN ('event', 'component')", name="ck_incident_kind"),
        sa.UniqueConstraint("set_id", "idem_key", name="uq_incident_idem_key"),
    )
    op.create_index("ix_incident_set_state", "incident", ["set_id", "state"])
    op.create_index("ix_incident_set_microgrid", "incident", ["set_id", "microgrid"])
    op.create_index("ix_incident_set_reported", "incident", ["set_id", "reported_at"])
    op.create_index("ix_incident_nearby", "incident", ["set_id", "category", "lat"])
    op.create_table(
        "incident_event",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("incident_id", sa.Integer, sa.ForeignKey("incident.id"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("from_state", sa.String(16)),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("attachments", sa.JSON, nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.UniqueConstraint("incident_id", "seq", name="uq_incident_event_seq"),
    )
    dialect_of(op.get_bind()).make_append_only(op.get_bind(), "incident_event")


def downgrade() -> None:
    dialect_of(op.get_bind()).drop_append_only(op.get_bind(), "incident_event")
    op.drop_table("incident_event")
    op.drop_index("ix_incident_nearby", "incident")
    op.drop_index("ix_incident_set_reported", "incident")
    op.drop_index("ix_incident_set_microgrid", "incident")
    op.drop_index("ix_incident_set_state", "incident")
    op.drop_table("incident")
