"""The duplicate search's index carries longitude too, so a box is cut in the index, not by fetching rows.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_incident_nearby", "incident")
    op.create_index("ix_incident_nearby", "incident", ["set_id", "category", "lat", "lon"])


def downgrade() -> None:
    op.drop_index("ix_incident_nearby", "incident")
    op.create_index("ix_incident_nearby", "incident", ["set_id", "category", "lat"])
