"""What the service holds between requests: the store, keys, versions and the lookup index of each version."""

from __future__ import annotations

import datetime as dt
import threading
import time

from geogrid.access import Principal, Role, key_hash
from geogrid.db import Store, VersionInfo, create_engine
from geogrid.db.keys import Keys
from geogrid.db.migrate import current_revision, head_revision, upgrade
from geogrid.db.store import in_force
from geogrid.errors import NotAuthenticated
from geogrid.index import GridIndex
from geogrid.settings import Settings

KEY_CACHE_S = 30.0  # how long a resolved key is trusted; revocations through this service apply at once
MAX_CACHED_KEYS = 10_000  # resolved (and unknown) keys kept before the cache starts afresh


class ServiceState:
    """The store, the keys, and an index per (set, version), built or loaded from the cache on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        engine = create_engine(settings)
        if current_revision(engine) != head_revision():
            upgrade(engine)
        self.store = Store(engine, actor=settings.actor)
        self.keys = Keys(engine)
        self._indexes: dict[tuple[str, int], GridIndex] = {}
        self._versions: dict[str, tuple[float, list[VersionInfo]]] = {}
        self._today: dict[str | None, tuple[float, GridIndex]] = {}  # set -> (until, index in force today)
        self._principals: dict[str, tuple[float, Principal | None]] = {}
        admin = settings.bootstrap_admin_key()
        if admin is not None:
            self._principals[key_hash(admin)] = (float("inf"), Principal("admin (settings)", Role.admin))
        self._lock = threading.Lock()

    # ---- versions and indexes -----------------------------------------------------------------------
    def versions(self, set_name: str) -> list[VersionInfo]:
        """The set's versions, re-read from the database at most every ``version_cache_s`` seconds."""
        now = time.monotonic()
        hit = self._versions.get(set_name)
        if hit is not None and now - hit[0] < self.settings.version_cache_s:
            return hit[1]
        found = self.store.versions(set_name)
        self._versions[set_name] = (now, found)
        return found

    def changed(self, set_name: str) -> None:
        """Forget what is cached about a set after a write to it."""
        self._versions.pop(set_name, None)
        self._today.clear()

    def index(self, set_name: str | None = None, at: dt.date | None = None) -> GridIndex:
        """The index of the version of ``set_name`` (default: the configured set) in force ``at``."""
        if at is None:  # the common case, answered from memory for as long as the list of versions is
            hit = self._today.get(set_name)
            if hit is not None and time.monotonic() < hit[0]:
                return hit[1]
        name = set_name or self.settings.default_set
        version = in_force(self.versions(name), name, at)
        key = (name, version.number)
        found = self._indexes.get(key)
        if found is None:
            with self._lock:
                found = self._indexes.get(key)
                if found is None:
                    found = GridIndex.from_version(self.store, name, at, cache_dir=self.settings.cache_dir)
                    self._indexes[key] = found
        if at is None:
            self._today[set_name] = (time.monotonic() + self.settings.version_cache_s, found)
        return found

    @property
    def loaded(self) -> list[tuple[str, int]]:
        """The (set, version) pairs whose index is in memory."""
        return sorted(self._indexes)

    # ---- callers ----------------------------------------------------------------------------------
    def principal(self, key: str | None) -> Principal | None:
        """The caller a key stands for (None without a key); NotAuthenticated for an unknown or revoked key."""
        if not key:
            return None
        digest = key_hash(key)
        now = time.monotonic()
        hit = self._principals.get(digest)
        if hit is None or hit[0] < now:
            if len(self._principals) > MAX_CACHED_KEYS:
                self.forget_keys()
            hit = (now + KEY_CACHE_S, self.keys.resolve(key))
            self._principals[digest] = hit
        if hit[1] is None:
            raise NotAuthenticated("unknown or revoked API key")
        return hit[1]

    def forget_keys(self) -> None:
        """Drop resolved keys (after a revocation), keeping the bootstrap admin key."""
        self._principals = {h: p for h, p in self._principals.items() if p[0] == float("inf")}
