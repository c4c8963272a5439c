"""The SQL point-in-grid path: geogrid_locate(set, lon, lat, at, level) on PostGIS.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op

from geogrid.db.dialects import dialect_of

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    dialect_of(op.get_bind()).create_locate_function(op.get_bind())


def downgrade() -> None:
    dialect_of(op.get_bind()).drop_locate_function(op.get_bind())
