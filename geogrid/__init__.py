"""GeoGrid: grid and community boundaries, point-in-grid lookup and coverage for grid governance."""

from geogrid.errors import GeoGridError
from geogrid.hierarchy import Level

__all__ = ["GeoGridError", "Level", "__version__"]
__version__ = "0.1.0"
