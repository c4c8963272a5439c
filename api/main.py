"""Assemble the FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from geogrid import __version__
from geogrid.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Create the GeoGrid API for ``settings`` (routes arrive with the service issue)."""
    settings = settings or Settings()
    app = FastAPI(title="GeoGrid", version=__version__)
    app.state.settings = settings

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok", "version": __version__}

    return app
