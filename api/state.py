"""What the service holds between requests: the store, and the lookup index of each version it has served."""

from __future__ import annotations

import datetime as dt
import threading

from geogrid.db import Store, create_engine
from geogrid.db.migrate import current_revision, head_revision, upgrade
from geogrid.index import GridIndex
from geogrid.settings import Settings


class ServiceState:
    """The store and an index per (set, version), built or loaded from the cache on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        engine = create_engine(settings)
        if current_revision(engine) != head_revision():
            upgrade(engine)
        self.store = Store(engine, actor=settings.actor)
        self._indexes: dict[tuple[str, int], GridIndex] = {}
        self._lock = threading.Lock()

    def index(self, set_name: str | None = None, at: dt.date | None = None) -> GridIndex:
        """The index of the version of ``set_name`` (default: the configured set) in force ``at``."""
        name = set_name or self.settings.default_set
        version = self.store.version_at(name, at)
        key = (name, version.number)
        found = self._indexes.get(key)
        if found is None:
            with self._lock:
                found = self._indexes.get(key)
                if found is None:
                    found = GridIndex.from_version(self.store, name, at, cache_dir=self.settings.cache_dir)
                    self._indexes[key] = found
        return found

    @property
    def loaded(self) -> list[tuple[str, int]]:
        """The (set, version) pairs whose index is in memory."""
        return sorted(self._indexes)
