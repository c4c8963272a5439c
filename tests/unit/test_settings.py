"""Typed settings: what workers of `geogrid serve --workers` read back from the environment."""

from __future__ import annotations

from geogrid.settings import Settings


def test_settings_survive_the_environment(monkeypatch):
    given = Settings(
        database_url="postgresql+psycopg://u@db/geogrid",
        admin_key="k" * 32,
        public_reads=False,
        rate_limit_per_minute=0,
        max_body_mb=2.5,
        version_cache_s=0.5,
        environment="production",
    )
    for name in [n for n in Settings.model_fields]:
        monkeypatch.delenv(f"GEOGRID_{name.upper()}", raising=False)
    for name, value in given.to_environment().items():
        monkeypatch.setenv(name, value)
    read = Settings(_env_file=None)
    assert read.admin_key is not None and read.admin_key.get_secret_value() == "k" * 32
    assert read.model_dump(exclude={"admin_key"}) == given.model_dump(exclude={"admin_key"})
