"""What the service holds between requests: the store, keys, versions and the lookup index of each version.

What the database says is read once and then re-read in the background (versions every
``version_cache_s``, keys every ``KEY_CACHE_S``): requests are answered from memory meanwhile, so a slow or
unreachable database does not hold up lookups, and the event loop never waits on a query.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import logging
import queue
import threading
import time
from typing import TYPE_CHECKING

import pandas as pd

from geogrid.access import Principal, Role
from geogrid.crs import WGS84, transform_geometries
from geogrid.db import Store, VersionInfo, create_engine
from geogrid.db.incidents import IncidentStore
from geogrid.db.keys import Keys
from geogrid.db.migrate import current_revision, head_revision, upgrade
from geogrid.db.people import Roster
from geogrid.db.store import in_force
from geogrid.errors import InvalidAddress, NotAuthenticated, NotFound
from geogrid.hierarchy import Level
from geogrid.incidents.calendar import WorkingCalendar, default_calendar
from geogrid.incidents.catalogue import catalogue
from geogrid.index import GridIndex
from geogrid.people import Directory
from geogrid.people import in_force as in_force_posts
from geogrid.settings import Settings
from geogrid.tiles import TileLayer

if TYPE_CHECKING:
    from geogrid.addresses.matcher import Matcher

KEY_CACHE_S = 30.0  # how long a resolved key is trusted; revocations through this service apply at once
MAX_CACHED_KEYS = 10_000  # resolved (and unknown) keys kept before the cache starts afresh
MAX_DIRECTORIES = 32  # dates whose people in force are kept per set (today's always); others are rebuilt


class People:
    """Every post of one set at one revision, and who answers for each unit on the dates asked for.

    The posts are read once per revision; a date's directory is built from them in memory (no query),
    and at most MAX_DIRECTORIES dates are kept, today's never dropped, so lookups "as of" one date after
    another cost CPU, not database reads, and never push today's lookups off the hot path.
    """

    def __init__(self, read_at: float, revision: int, posts: pd.DataFrame) -> None:
        self.read_at, self.revision, self.posts = read_at, revision, posts
        self.days: dict[dt.date, Directory] = {}
        self._lock = threading.Lock()

    def on(self, day: dt.date) -> Directory:
        """Who answers for each unit on ``day``, built from the posts if not kept already."""
        found = self.days.get(day)
        if found is not None:
            return found
        built = Directory(in_force_posts(self.posts, day))
        with self._lock:
            days = dict(self.days)  # readers see the old dict or the new one, never one being changed
            if len(days) >= MAX_DIRECTORIES:
                today = dt.date.today()
                drop = next((d for d in days if d != today), None)
                if drop is not None:
                    del days[drop]
            days[day] = built
            self.days = days
        return built


class Addresses:
    """One set's standard addresses and aliases at one registry revision, as a Matcher (built once per revision)."""

    def __init__(self, read_at: float, revision: str, matcher: Matcher) -> None:
        self.read_at, self.revision, self.matcher = read_at, revision, matcher


log = logging.getLogger("geogrid.api")


MAX_TILE_LAYERS = 40  # levels of versions kept as tile layers (five levels of four versions, in two datums)


class NotCached(LookupError):
    """What a request asked for is not in memory and needs the database (``loaded_index``, ``principal``)."""


class ServiceState:
    """The store, the keys, and an index per (set, version), built or loaded from the cache on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        engine = create_engine(settings)
        if current_revision(engine) != head_revision():
            upgrade(engine)
        self.store = Store(engine, actor=settings.actor)
        self.keys = Keys(engine)
        calendar = WorkingCalendar.load(settings.calendar) if settings.calendar else default_calendar()
        self.incidents = IncidentStore(engine, catalogue(settings.catalogue), calendar, actor=settings.actor)
        self._stopping = threading.Event()
        self._escalator: threading.Thread | None = None
        self._indexes: dict[tuple[str, int], GridIndex] = {}
        self._versions: dict[str, tuple[float, list[VersionInfo]]] = {}  # set -> (read at, versions)
        self._today: dict[str | None, tuple[float, GridIndex]] = {}  # set -> (until, index in force today)
        self._people: dict[str, People] = {}  # set -> its posts at the revision last read
        self._people_generation = 0  # bumped by a write: a read begun before it is not kept
        self._people_today: dict[str | None, tuple[float, Directory]] = {}  # set -> (until, today's)
        self._people_lock = threading.Lock()
        self._addresses: dict[str, Addresses] = {}  # set -> its matcher at the registry revision last read
        self._addresses_generation = 0  # bumped by a registry or alias write: an older build is not kept
        self._addresses_lock = threading.Lock()
        self._matcher_build = threading.Lock()  # one matcher build at a time (a demo registry takes ~0.1 s)
        # key -> (until, principal); by the key itself, which the process holds anyway: no hash per request
        self._principals: dict[str, tuple[float, Principal | None]] = {}
        self._keys_generation = 0  # bumped by forget_keys: a resolution begun before it is not kept
        admin = settings.bootstrap_admin_key()
        if admin is not None:
            self._principals[admin] = (float("inf"), Principal("admin (settings)", Role.admin))
        self._lock = threading.Lock()  # one index build at a time
        # (set, version, level, datum) -> its tiles
        self._tile_layers: dict[tuple[str, int, Level, str], TileLayer] = {}
        self._tiles_lock = threading.Lock()  # one layer made at a time
        self._reading = threading.Lock()  # one read of a set's versions at a time, so the last read wins
        self._queue_lock = threading.Lock()
        self._queued: set[tuple[str, str]] = set()
        self._queue: queue.SimpleQueue[tuple[str, str] | None] = queue.SimpleQueue()
        self._reader: threading.Thread | None = None

    def close(self) -> None:
        """Stop the background reader, the escalation job and the incident writer, and release the database
        connections."""
        if self._reader is not None:
            self._queue.put(None)
            self._reader.join(timeout=5)
        self._stopping.set()
        if self._escalator is not None:
            self._escalator.join(timeout=5)
        self.incidents.close()  # reports queued for the next commit are written first
        self.store.engine.dispose()

    def start_escalation(self) -> None:
        """Every ``escalate_every_s`` seconds, escalate each set's overdue incidents (0: never, e.g. when
        another process or cron runs ``geogrid incidents escalate``)."""
        every = self.settings.escalate_every_s
        if every <= 0 or self._escalator is not None:
            return

        def run() -> None:
            while not self._stopping.wait(every):
                for name in self.store.sets():
                    try:
                        done = self.incidents.escalate_overdue(name)
                    except Exception:  # the database is down or busy: the next round tries again
                        log.warning("escalating overdue incidents of %r failed", name, exc_info=True)
                        continue
                    if done:
                        log.info("escalated %d overdue incidents of %r", len(done), name)

        self._escalator = threading.Thread(target=run, name="geogrid-escalation", daemon=True)
        self._escalator.start()

    # ---- versions and indexes -----------------------------------------------------------------------
    def versions(self, set_name: str) -> list[VersionInfo]:
        """The set's versions as last read; once older than ``version_cache_s``, re-read in the background."""
        hit = self._versions.get(set_name)
        if hit is None:
            return self.read_versions(set_name)
        if time.monotonic() - hit[0] >= self.settings.version_cache_s:
            self._later("versions", set_name)
        return hit[1]

    def read_versions(self, set_name: str) -> list[VersionInfo]:
        """Read the set's versions now, loading the index in force today before the new list is used."""
        with self._reading:
            found = self.store.versions(set_name)
            with contextlib.suppress(NotFound):  # nothing in force today: lookups say so
                self._load(set_name, in_force(found, set_name).number, None)
            self._versions[set_name] = (time.monotonic(), found)
            self._today.clear()
            return found

    def changed(self, set_name: str) -> None:
        """After a write through this service: read the set's versions again, so its next answers show it."""
        with self._people_lock:
            self._people_generation += 1
            self._people.pop(set_name, None)
            self._people_today.clear()
        try:
            self.read_versions(set_name)
        except Exception:  # the write is committed; the background reader catches up when it can
            log.warning("could not re-read %r after a write; answers catch up on the next read", set_name)
            self._versions.pop(set_name, None)
            self._today.clear()

    def index(self, set_name: str | None = None, at: dt.date | None = None) -> GridIndex:
        """The index of the version of ``set_name`` (default: the configured set) in force ``at``."""
        return self._index(set_name, at, build=True)

    def loaded_index(self, set_name: str | None = None, at: dt.date | None = None) -> GridIndex:
        """Like :meth:`index`, from memory only: NotCached if that needs the database."""
        return self._index(set_name, at, build=False)

    def _index(self, set_name: str | None, at: dt.date | None, *, build: bool) -> GridIndex:
        if at is None:  # the common case, answered from memory for as long as the list of versions is
            hit = self._today.get(set_name)
            if hit is not None and time.monotonic() < hit[0]:
                return hit[1]
        name = set_name or self.settings.default_set
        if not build and name not in self._versions:
            raise NotCached(f"the versions of {name!r}")
        version = in_force(self.versions(name), name, at)
        found = self._indexes.get((name, version.number))
        if found is None:
            if not build:
                raise NotCached(f"the index of {name!r} v{version.number}")
            found = self._load(name, version.number, at)
        if at is None:
            self._today[set_name] = (time.monotonic() + self.settings.version_cache_s, found)
        return found

    def _load(self, name: str, number: int, at: dt.date | None) -> GridIndex:
        """The index of version ``number`` (in force ``at``), built or read from the cache if not in memory."""
        found = self._indexes.get((name, number))
        if found is None:
            with self._lock:
                found = self._indexes.get((name, number))
                if found is None:
                    found = GridIndex.from_version(self.store, name, at, cache_dir=self.settings.cache_dir)
                    self._indexes[(name, number)] = found.warm()
        return found

    def tile_layer(
        self, set_name: str | None, level: Level, at: dt.date | None, datum: str = WGS84
    ) -> tuple[int, TileLayer]:
        """The vector tiles of ``level`` of the version of ``set_name`` in force ``at``, and its number
        (a version's units never change: made once per version, kept as long as the process); in GCJ-02
        (``datum``), every vertex shifted alike so that shared edges stay shared, for GCJ-02 base maps."""
        name = set_name or self.settings.default_set
        number = in_force(self.versions(name), name, at).number
        key = (name, number, level, datum)
        found = self._tile_layers.get(key)
        if found is None:
            with self._tiles_lock:
                found = self._tile_layers.get(key)
                if found is None:
                    units = self.store.units(name, version=number, level=level)
                    if datum != WGS84:
                        units = units.set_geometry(
                            transform_geometries(units.geometry, WGS84, datum), crs=4326
                        )
                    found = self._tile_layers[key] = TileLayer(level.name, units)
                    while len(self._tile_layers) > MAX_TILE_LAYERS:  # the oldest made goes (dicts keep order)
                        del self._tile_layers[next(iter(self._tile_layers))]
        return number, found

    @property
    def loaded(self) -> list[tuple[str, int]]:
        """The (set, version) pairs whose index is in memory."""
        return sorted(self._indexes)

    # ---- people ------------------------------------------------------------------------------------
    def directory(
        self, set_name: str | None = None, at: dt.date | None = None, *, build: bool = True
    ) -> Directory:
        """Who answers for each unit of ``set_name`` on ``at`` (default today). The set's posts are re-read
        in the background once older than ``version_cache_s`` (only when its revision moved), and at once
        after a write through this service; ``build=False`` raises NotCached rather than read or build."""
        if at is None:  # the common case, answered from memory for as long as the posts are trusted
            hit = self._people_today.get(set_name)
            if hit is not None and time.monotonic() < hit[0]:
                return hit[1]
        name = set_name or self.settings.default_set
        day = at or dt.date.today()
        held = self._people.get(name)
        if held is None:
            if not build:
                raise NotCached(f"the people of {name!r}")
            held = self.read_people(name)
        elif time.monotonic() - held.read_at >= self.settings.version_cache_s:
            self._later("people", name)
        found = held.days.get(day)
        if found is None:
            if not build:
                raise NotCached(f"the people of {name!r} on {day}")
            found = held.on(day)
        if at is None:
            self._people_today[set_name] = (time.monotonic() + self.settings.version_cache_s, found)
        return found

    def read_people(self, name: str) -> People:
        """Read the set's posts now, unless its revision has not moved since they were last read."""
        generation = self._people_generation
        revision = self.store.revision(name)
        held = self._people.get(name)
        if held is not None and held.revision == revision:
            held.read_at = time.monotonic()
            return held
        fresh = People(time.monotonic(), revision, Roster(self.store.engine).posts(name))
        with self._people_lock:
            if generation == self._people_generation:  # no write meanwhile: what was read is current
                self._people[name] = fresh
                self._people_today.clear()
        return fresh

    # ---- addresses ---------------------------------------------------------------------------------
    def matcher(self, set_name: str | None = None, *, build: bool = True) -> Matcher:
        """The matcher over ``set_name``'s addresses in force today and its aliases. Re-read in the background
        once older than ``version_cache_s`` (rebuilt only when the registry revision moved), and at once after
        a registry or alias write through this service; ``build=False`` raises NotCached rather than build."""
        name = set_name or self.settings.default_set
        held = self._addresses.get(name)
        if held is None:
            if not build:
                raise NotCached(f"the addresses of {name!r}")
            held = self.read_addresses(name)
        elif time.monotonic() - held.read_at >= self.settings.version_cache_s:
            self._later("addresses", name)
        return held.matcher

    def read_addresses(self, name: str) -> Addresses:
        """Build the set's matcher now, unless its registry revision has not moved since it was last built."""
        # Here, not at the top: rapidfuzz and cpca load when addresses are first asked for.
        from geogrid.addresses.matcher import Matcher
        from geogrid.db.addresses import AddressStore

        with self._matcher_build:
            generation = self._addresses_generation
            store = AddressStore(self.store.engine, actor=self.settings.actor)
            revision = store.registry_revision(name)
            held = self._addresses.get(name)
            if held is not None and held.revision == revision:
                held.read_at = time.monotonic()
                return held
            matcher = Matcher(
                store.addresses(name), store.aliases(name), threshold=self.settings.geocode_threshold
            )
            fresh = Addresses(time.monotonic(), revision, matcher)
            with self._addresses_lock:
                if generation == self._addresses_generation:  # no write meanwhile: what was read is current
                    self._addresses[name] = fresh
            # a matcher is millions of objects that live until the next build: out of the collector's
            # full sweeps (each would walk them all, a second's stall of every request), as start-up's are
            gc.freeze()
            return fresh

    def warm_addresses(self) -> None:
        """Build the default set's matcher in the background, so the first geocode does not wait for it."""
        self._later("addresses", self.settings.default_set)

    def alias_placed(self, set_name: str, text: str, target: str | tuple[float, float]) -> None:
        """After a queue item was resolved through this service: the matcher in memory learns the alias
        at once (a person working through the queue does not wait for a rebuild per item)."""
        with self._addresses_lock:
            self._addresses_generation += 1  # a build that read the aliases before this one is not kept
            held = self._addresses.get(set_name)
        if held is not None:
            try:
                held.matcher.add_alias(text, target)
            except InvalidAddress:  # an address newer than the matcher in memory: build it anew
                self.addresses_changed(set_name)

    def addresses_changed(self, set_name: str) -> None:
        """After a registry or alias write through this service: the next answer rebuilds the matcher."""
        with self._addresses_lock:
            self._addresses_generation += 1
            self._addresses.pop(set_name, None)

    # ---- callers ----------------------------------------------------------------------------------
    def principal(self, key: str | None, *, resolve: bool = True) -> Principal | None:
        """The caller a key stands for (None without a key); NotAuthenticated for an unknown or revoked key.

        A key seen before is answered from memory and re-resolved in the background once older than
        ``KEY_CACHE_S``; a new key is resolved now, or NotCached with ``resolve=False``.
        """
        if not key:
            return None
        hit = self._principals.get(key)
        if hit is None:
            if not resolve:
                raise NotCached("this API key")
            hit = self._resolve(key)
        elif hit[0] < time.monotonic():
            self._later("key", key)
        if hit[1] is None:
            raise NotAuthenticated("unknown or revoked API key")
        return hit[1]

    def _resolve(self, key: str) -> tuple[float, Principal | None]:
        generation = self._keys_generation
        hit = (time.monotonic() + KEY_CACHE_S, self.keys.resolve(key))
        if generation == self._keys_generation:  # no revocation meanwhile
            if len(self._principals) > MAX_CACHED_KEYS:
                self.forget_keys()
            self._principals[key] = hit
        return hit

    def forget_keys(self) -> None:
        """Drop resolved keys (after a revocation), keeping the bootstrap admin key."""
        self._keys_generation += 1
        self._principals = {h: p for h, p in self._principals.items() if p[0] == float("inf")}

    # ---- the background reader ----------------------------------------------------------------------
    def _later(self, kind: str, what: str) -> None:
        """Have the background reader re-read a set's versions or a key (once, however often asked)."""
        item = (kind, what)
        with self._queue_lock:
            if item in self._queued:
                return
            self._queued.add(item)
            if self._reader is None:
                self._reader = threading.Thread(
                    target=self._read_in_background, name="geogrid-reader", daemon=True
                )
                self._reader.start()
        self._queue.put(item)

    def _read_in_background(self) -> None:
        while (item := self._queue.get()) is not None:
            kind, what = item
            try:
                if kind == "versions":
                    self.read_versions(what)
                elif kind == "people":
                    self.read_people(what)
                elif kind == "addresses":
                    self.read_addresses(what)
                else:
                    self._resolve(what)
            except Exception as exc:
                # The database is down or slow: answer from what was read, and try again later.
                log.warning("could not re-read %s (answering from the last read): %s", kind, exc)
                self._retry_later(kind, what)
            finally:
                with self._queue_lock:
                    self._queued.discard(item)

    def _retry_later(self, kind: str, what: str) -> None:
        """After a failed re-read, keep what was read for another period before trying again."""
        now = time.monotonic()
        if kind == "versions":
            hit = self._versions.get(what)
            if hit is not None:
                self._versions[what] = (now, hit[1])
        elif kind == "people":
            held = self._people.get(what)
            if held is not None:
                held.read_at = now
        elif kind == "addresses":
            kept = self._addresses.get(what)
            if kept is not None:
                kept.read_at = now
        else:
            old = self._principals.get(what)
            if old is not None:
                self._principals[what] = (now + KEY_CACHE_S, old[1])
