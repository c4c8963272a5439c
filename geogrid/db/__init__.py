"""Keep GeoGrid's boundaries in PostGIS or SpatiaLite: engine, migrations and the versioned store."""

from geogrid.db.engine import create_engine
from geogrid.db.imports import ImportReport
from geogrid.db.migrate import upgrade
from geogrid.db.store import Store, VersionInfo

__all__ = ["ImportReport", "Store", "VersionInfo", "create_engine", "upgrade"]
