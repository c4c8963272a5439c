"""Typed settings (``GEOGRID_*``), passed explicitly to whatever needs them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from geogrid.errors import InsecureConfiguration

DEFAULT_DB = Path("var") / "geogrid.sqlite"
# The admin key local and demo installs start with; anywhere else it is refused (check_secrets).
DEMO_ADMIN_KEY = "geogrid-demo-admin-key"
OPEN_ENVIRONMENTS = ("local", "demo")


class Settings(BaseSettings):
    """GeoGrid's configuration, read from ``GEOGRID_*`` environment variables or a ``.env`` file."""

    model_config = SettingsConfigDict(env_prefix="GEOGRID_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_DB}",
        description="SQLAlchemy URL: sqlite:///path.sqlite (SpatiaLite) or postgresql+psycopg://...",
    )
    database_pool_size: int = Field(
        default=20,
        ge=1,
        description="PostgreSQL connections each process keeps open (as many again may open for bursts).",
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
    admin_key: SecretStr | None = Field(
        default=None,
        description="A bootstrap admin API key. Local/demo default to a well-known one; elsewhere unset "
        "means none (create keys with `geogrid keys create`), and a short or well-known one is refused.",
    )
    public_reads: bool = Field(
        default=True, description="Lookups, boundaries and OGC API Features answer callers without a key."
    )
    rate_limit_per_minute: int = Field(
        default=600, ge=0, description="Requests per minute per anonymous client address (0: no limit)."
    )
    max_body_mb: float = Field(default=100.0, gt=0, description="Largest request body accepted.")
    request_timeout_s: float = Field(default=120.0, gt=0, description="Longest a request may run.")
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Longest a client may take to send a request's line and headers, from its first byte "
        "(or from connecting); then the connection is closed (`geogrid serve`).",
    )
    body_idle_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Longest a client may pause while sending a request body; then 408 and the connection "
        "is closed.",
    )
    failed_keys_per_minute: int = Field(
        default=30,
        ge=0,
        description="Unknown or revoked API keys one client address may send a minute, bursts up to as "
        "many; then 429 before a key is looked up (0: no limit).",
    )
    max_unpacked_mb: float = Field(
        default=1000.0, gt=0, description="Most a zip archive (a zipped shapefile) may unpack to."
    )
    max_compression_ratio: float = Field(
        default=100.0, gt=1, description="Tightest packing of a zip member over 1 MB (zip bombs: ~1000)."
    )
    opentelemetry: bool = Field(
        default=False, description="Let FastAPI report traces and metrics to a configured OpenTelemetry SDK."
    )
    version_cache_s: float = Field(
        default=2.0,
        ge=0,
        description="How long the service trusts its list of versions (writes it makes "
        "through the API are seen at once).",
    )
    tile_url: str | None = Field(
        default=None,
        description="A base map for coverage maps and the dashboard: an XYZ tile URL template with {z}, {x} "
        "and {y} (e.g. an intranet Tianditu mirror), http(s):// (allowing cross-origin requests, for the "
        "dashboard) or a path on this host. Unset: no base map, nothing loaded.",
    )
    tile_crs: Literal["wgs84", "gcj02"] = Field(
        default="wgs84",
        description="The datum of the tiles at GEOGRID_TILE_URL: wgs84 (Tianditu, OSM) or gcj02 "
        "(Amap/Tencent style; the maps' overlays and the dashboard's units and incidents are then shifted to "
        "GCJ-02 to line up).",
    )
    walking_speed_kmh: float = Field(
        default=5.0, gt=0, description="Walking speed for the service reach of the coverage report (km/h)."
    )
    reach_minutes: float = Field(
        default=15.0, gt=0, description="The walk a service site reaches in the coverage report (minutes)."
    )

    geocode_threshold: float = Field(
        default=0.9,
        gt=0,
        lt=1,
        description="Confidence (a calibrated probability of the right building) at or above which an address "
        "text is placed; below it the text goes to the manual-placement queue with its candidates.",
    )

    catalogue: str | None = Field(
        default=None,
        description="CSV of incident categories (code, name, kind, group, limit, unit, owner); default: the "
        "shipped catalogue (geogrid/incidents/catalogue.csv).",
    )
    calendar: str | None = Field(
        default=None,
        description="JSON working calendar (holidays, 调休 working days, hours) for incident limits; default: "
        "the shipped State Council holiday schedule (geogrid/incidents/holidays_cn.json).",
    )
    incident_disagree_m: float = Field(
        default=200.0,
        gt=0,
        description="An address matched further than this from a report's point is flagged.",
    )
    incident_near_m: float = Field(
        default=20.0,
        ge=0,
        description="A report this close to a micro-grid boundary is flagged near_boundary.",
    )
    incident_outside: Literal["refuse", "queue"] = Field(
        default="refuse",
        description="A report whose point lies outside every micro-grid: refused (422) or queued for a person.",
    )
    escalate_every_s: float = Field(
        default=300.0,
        ge=0,
        description="How often the service escalates overdue incidents one level up (seconds; 0: never — "
        "run `geogrid incidents escalate` from cron instead).",
    )
    open311_public_requests: bool = Field(
        default=False,
        description="Open311 apps read service requests without an api_key (as the GeoReport spec has it; "
        "reporters are never shown, phones in texts masked). Off: reading requests needs a key.",
    )
    duplicate_m: float = Field(
        default=50.0,
        gt=0,
        description="An open incident of the same category this close is offered as a duplicate.",
    )

    @field_validator("tile_url", mode="before")
    @classmethod
    def _tile_url(cls, value: object) -> object:
        """An XYZ template: http(s)://... or /path, with {z}, {x} and {y}; empty means unset."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        text = str(value).strip()
        if not text.lower().startswith(("http://", "https://", "/")) or text.startswith("//"):
            raise ValueError("GEOGRID_TILE_URL must start with http://, https:// or / (a path on this host)")
        missing = [part for part in ("{z}", "{x}", "{y}") if part not in text]
        if missing:
            raise ValueError(f"GEOGRID_TILE_URL lacks {', '.join(missing)}: an XYZ tile template is needed")
        return text

    @field_validator("tile_crs", mode="before")
    @classmethod
    def _tile_crs(cls, value: object) -> object:
        """Accept any case and spacing (``GCJ02``, `` wgs84``)."""
        return value.strip().lower() if isinstance(value, str) else value

    def to_environment(self) -> dict[str, str]:
        """These settings as ``GEOGRID_*`` variables, for processes that read their own (server workers)."""
        out = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            out[f"GEOGRID_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
        return out

    def bootstrap_admin_key(self) -> str | None:
        """The admin key from the settings, or the demo key in local/demo mode."""
        if self.admin_key is not None:
            return self.admin_key.get_secret_value()
        return DEMO_ADMIN_KEY if self.environment in OPEN_ENVIRONMENTS else None

    def check_secrets(self) -> None:
        """Refuse a default or weak admin key outside local/demo mode."""
        key = self.admin_key.get_secret_value() if self.admin_key is not None else None
        if self.environment in OPEN_ENVIRONMENTS or key is None:
            return
        if key == DEMO_ADMIN_KEY or len(key) < 24:
            raise InsecureConfiguration(
                f"GEOGRID_ADMIN_KEY is the demo key or shorter than 24 characters, and GEOGRID_ENVIRONMENT is "
                f"{self.environment!r}: set a long random key (geogrid keys new) or leave it unset",
                field="admin_key",
            )
