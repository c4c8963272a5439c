"""GeoGrid's HTTP API (FastAPI)."""
