"""Typed settings (``GEOGRID_*``), passed explicitly to whatever needs them."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DB = Path("var") / "geogrid.sqlite"


class Settings(BaseSettings):
    """GeoGrid's configuration, read from ``GEOGRID_*`` environment variables or a ``.env`` file."""

    model_config = SettingsConfigDict(env_prefix="GEOGRID_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_DB}",
        description="SQLAlchemy URL: sqlite:///path.sqlite (SpatiaLite) or postgresql+psycopg://...",
    )
    spatialite_library: str = Field(
        default="mod_spatialite",
        description="Name or path of the SpatiaLite extension library.",
    )
    actor: str = Field(default="geogrid", description="Who is recorded in the audit log by default.")
    cache_dir: str = Field(default="var/cache", description="Where built lookup indexes are kept.")
    default_set: str = Field(default="demo", description="The boundary set lookups use when none is named.")
    max_batch_points: int = Field(default=1_000_000, description="Most points one batch lookup may carry.")
    environment: str = Field(default="local", description="local, demo, test or production.")
