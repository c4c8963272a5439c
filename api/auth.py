"""Who is calling: API keys (Bearer or X-API-Key), roles and scopes, and rate limits for anonymous callers."""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.dependencies import StateDep
from api.state import NotCached, ServiceState
from geogrid.access import Action, Principal
from geogrid.errors import NotAuthenticated, RateLimited

bearer = HTTPBearer(auto_error=False, description="An API key as a bearer token: Authorization: Bearer gg_…")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key.")
MAX_CLIENTS = 100_000  # addresses tracked by the rate limiter before the idle ones are dropped


class RateLimiter:
    """A token bucket per client address: ``per_minute`` requests a minute, bursts up to as many."""

    def __init__(self, per_minute: int, what: str = "requests a minute without an API key") -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.what = what
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()  # for reserve/give_back only: check stays lock-free for anonymous reads

    def check(self, client: str) -> None:
        """Take a token for ``client`` or raise RateLimited saying when to retry."""
        if self.capacity <= 0:
            return
        now = time.monotonic()
        tokens, last = self._buckets.get(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            raise RateLimited(
                f"more than {self.capacity:.0f} {self.what}; send a valid one, or slow down",
                retry_after_s=(1.0 - tokens) / self.rate,
                client=client,
            )
        if len(self._buckets) >= MAX_CLIENTS and client not in self._buckets:
            self._buckets = {c: b for c, b in self._buckets.items() if now - b[1] < 60.0}
        self._buckets[client] = (tokens - 1.0, now)

    def reserve(self, client: str) -> None:
        """Take a token for ``client`` atomically (concurrent callers never share the last one), or RateLimited."""
        with self._lock:
            self.check(client)

    def give_back(self, client: str) -> None:
        """Return a token :meth:`reserve` took for a request that did not count after all."""
        with self._lock:
            if client in self._buckets:
                tokens, last = self._buckets[client]
                self._buckets[client] = (min(self.capacity, tokens + 1.0), last)


def identify(
    state: ServiceState, failed: RateLimiter | None, key: str | None, client: str, *, resolve: bool = True
) -> Principal | None:
    """The caller ``key`` stands for (None without one); NotAuthenticated for an unknown or revoked key.

    Every failed key counts against the client's address in ``failed``; once that address has sent too
    many, RateLimited (429). A key not seen before takes the address's token *before* it is looked up in
    the database, and gets it back if it is valid: however many guesses one address sends at once, at most
    ``failed``'s burst of them reach the database. Keys already in memory (valid or not) cost no query and
    take a token only when they fail. With ``resolve=False`` a key not in memory is NotCached.
    """
    if not key:
        return None
    try:
        return state.principal(key, resolve=False)
    except NotCached:
        if not resolve:
            raise
    except NotAuthenticated:
        if failed is not None:
            failed.reserve(client)  # count the failure; 429 rather than 401 once there are too many
        raise
    if failed is None:
        return state.principal(key)
    failed.reserve(client)  # a guess until the database says otherwise
    try:
        principal = state.principal(key)
    except NotAuthenticated:
        raise  # the failure is counted: the token stays taken
    except BaseException:
        failed.give_back(client)  # the lookup itself failed (database down, deadline): no verdict on the key
        raise
    failed.give_back(client)
    return principal


def read_access(
    state: ServiceState,
    limiter: RateLimiter,
    key: str | None,
    client: str,
    *,
    resolve: bool = True,
    failed: RateLimiter | None = None,
) -> Principal | None:
    """The caller of a read: its principal, or None for an anonymous caller allowed (and counted) in."""
    principal = identify(state, failed, key, client, resolve=resolve)
    if principal is not None:
        return principal
    if not state.settings.public_reads:
        raise NotAuthenticated("this service needs an API key (Authorization: Bearer … or X-API-Key)")
    limiter.check(client)
    return None


def key_of(authorization: str | None, x_api_key: str | None) -> str | None:
    """The API key in an Authorization: Bearer or X-API-Key header, if any."""
    if x_api_key:
        return x_api_key
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


async def _key(  # async: no I/O, so no hop to the threadpool
    credentials: HTTPAuthorizationCredentials | None = Security(bearer),
    x_api_key: str | None = Security(api_key_header),
) -> str | None:
    return x_api_key or (credentials.credentials if credentials else None)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def reader(request: Request, state: StateDep, key: str | None = Depends(_key)) -> Principal | None:
    """Dependency of every read route."""
    limiter: RateLimiter = request.app.state.limiter
    return read_access(state, limiter, key, _client(request), failed=request.app.state.failed_keys)


def require(action: Action) -> Callable[..., Awaitable[Principal]]:
    """Dependency of a write route: an API key whose role allows ``action`` (scope checked by the route)."""

    async def dependency(request: Request, state: StateDep, key: str | None = Depends(_key)) -> Principal:
        failed, client = request.app.state.failed_keys, _client(request)
        try:  # async: a key in memory costs no thread hop; one to look up goes to the threadpool
            principal = identify(state, failed, key, client, resolve=False)
        except NotCached:
            principal = await run_in_threadpool(identify, state, failed, key, client)
        if principal is None:
            raise NotAuthenticated(f"{action.replace('_', ' ')} needs an API key")
        principal.require(action)
        return principal

    return dependency


Planner = Annotated[Principal, Depends(require(Action.plan))]
Publisher = Annotated[Principal, Depends(require(Action.publish))]
Admin = Annotated[Principal, Depends(require(Action.manage_keys))]
KeyHolder = Annotated[
    Principal, Depends(require(Action.read))
]  # any valid key (incidents are no public data)
