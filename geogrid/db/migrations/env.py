"""Alembic environment: migrations run on a connection GeoGrid hands over (see geogrid.db.migrate)."""

from alembic import context

from geogrid.db.dialects import dialect_of
from geogrid.db.schema import metadata

connection = context.config.attributes["connection"]
# Spatial metadata first and on its own: SpatiaLite's initialiser cannot run inside a transaction.
dialect_of(connection).init(connection)
connection.commit()
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
