"""The HTTP connection under `geogrid serve`: uvicorn's httptools protocol with a deadline for headers.

uvicorn has no header timeout: a new connection may stay silent, and its keep-alive timer restarts with
every byte, so clients sending a header a byte at a time hold connections (and file descriptors) as long
as they like. Here a request's line and headers must be complete within ``header_timeout_s`` of the
connection opening or of the request's first byte; if not, a started request gets 408, and the connection
is closed. The body has its own idle limit, in :class:`api.middleware.Operations`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from geogrid.settings import Settings

_TOO_SLOW = b"the request line and headers came too slowly (GEOGRID_HEADER_TIMEOUT_S)\n"
TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TOO_SLOW), _TOO_SLOW)
)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """httptools' protocol, closing a connection whose request headers do not arrive in time."""

    header_timeout_s = Settings.model_fields["header_timeout_s"].default

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One timer per connection, not one per request: a request only notes when its headers are due
        # (a float), and the timer, when it fires, closes the connection or waits for the current due time.
        self._header_timer: asyncio.TimerHandle | None = None
        self._headers_due: float | None = None  # loop time by which the awaited headers must be in
        self._awaiting_headers = True  # between requests (or before the first): the next bytes are headers
        self._started = False  # bytes of the awaited request have come

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()  # a connection that never says anything is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers and self._headers_due is None:
            self._await_headers()  # a keep-alive connection starts its next request
        super().data_received(data)

    def on_message_begin(self) -> None:
        self._started = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._headers_due = None
        self._awaiting_headers = self._started = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._awaiting_headers = True  # the next request's headers may follow at once (pipelining)
        super().on_message_complete()

    def _await_headers(self) -> None:
        self._headers_due = self.loop.time() + self.header_timeout_s
        if self._header_timer is None:
            self._header_timer = self.loop.call_at(self._headers_due, self._check_headers)

    def _check_headers(self) -> None:
        self._header_timer = None
        due = self._headers_due
        if due is None or self.transport.is_closing():
            return  # no headers awaited: the next request arms the timer again
        if self.loop.time() < due:  # a later request's headers: wait for their own due time
            self._header_timer = self.loop.call_at(due, self._check_headers)
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._await_headers()  # the request before this one is still being answered: let it finish first
            return
        if self._started:  # a request half sent: say why (a connection that sent nothing just closes)
            self.transport.write(TIMED_OUT)
        self.transport.close()


def protocol(settings: Settings) -> type[HeaderTimeoutProtocol]:
    """The protocol class for a server in this process, with the timeouts of ``settings``."""
    return type("GeoGridProtocol", (HeaderTimeoutProtocol,), {"header_timeout_s": settings.header_timeout_s})


class FromEnvironment(HeaderTimeoutProtocol):
    """The protocol for worker processes (`serve --workers`), which read their settings from GEOGRID_*.

    uvicorn names the protocol to each worker by import path, so it cannot carry settings the way
    :func:`protocol` does; the workers' apps are made from the same variables (``create_app()``).
    """

    _read = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if not FromEnvironment._read:  # once per worker, on its first connection
            FromEnvironment.header_timeout_s = Settings().header_timeout_s
            FromEnvironment._read = True
        super().__init__(*args, **kwargs)
