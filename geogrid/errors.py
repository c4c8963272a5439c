"""One error family for GeoGrid; the API maps it once to problem+json (RFC 9457)."""

from __future__ import annotations

from typing import Any

ECHO_CHARS = 200  # how much of a value it does not understand an error repeats


def cut(text: str) -> str:
    """``text`` as an error repeats it: cut to about 200 characters, which a log line and a problem carry."""
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "…"


class GeoGridError(Exception):
    """Base of every error GeoGrid raises on purpose; carries what a problem+json body needs."""

    status = 400
    title = "GeoGrid error"

    def __init__(self, detail: str, **where: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        # Where the fault lies: file, layer, row, field, coordinate, code, set, version ...
        self.where = {k: v for k, v in where.items() if v is not None}

    @property
    def type(self) -> str:
        """A stable identifier for the kind of problem (used as the problem+json ``type``)."""
        name = type(self).__name__
        return "".join("-" + c.lower() if c.isupper() else c for c in name).lstrip("-")

    def to_problem(self) -> dict[str, Any]:
        """Return this error as an RFC 9457 problem details object."""
        return {
            "type": f"https://geogrid.dev/problems/{self.type}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.where,
        }

    def headers(self) -> dict[str, str]:
        """Extra HTTP headers for this problem's response (WWW-Authenticate, Retry-After ...)."""
        return {}

    def __str__(self) -> str:
        if not self.where:
            return self.detail
        where = ", ".join(f"{k}={v!r}" for k, v in self.where.items())
        return f"{self.detail} ({where})"


class InvalidCoordinates(GeoGridError):
    """A coordinate is missing, not a number, or outside the valid range of its CRS."""

    title = "Invalid coordinates"


class UnknownCRS(GeoGridError):
    """A coordinate reference system name or code that GeoGrid cannot interpret."""

    title = "Unknown coordinate reference system"


class MissingCRS(GeoGridError):
    """A layer carries no CRS and none was given."""

    title = "Missing coordinate reference system"


class UnreadableFile(GeoGridError):
    """A file could not be opened or read as a geospatial layer."""

    title = "Unreadable file"


class MissingColumn(GeoGridError):
    """A required attribute column (code, name, lon/lat ...) is absent."""

    title = "Missing column"


class InvalidGeometry(GeoGridError):
    """A geometry could not be parsed, or is of the wrong kind for the layer."""

    title = "Invalid geometry"


class TooManyVertices(InvalidGeometry):
    """A unit with more vertices than the per-unit limit: refused before any costly work."""

    title = "Too many vertices"
    status = 422


class InvalidCode(GeoGridError):
    """A unit code does not follow the hierarchy's code scheme."""

    title = "Invalid unit code"


class HierarchyViolation(GeoGridError):
    """Units whose geometry does not lie in the parent their code names."""

    title = "Hierarchy violation"
    status = 422


class TopologyProblems(GeoGridError):
    """Units that do not tile their parent: gaps, overlaps, slivers, invalid or stray units."""

    title = "Topology problems"
    status = 422


class NotFound(GeoGridError):
    """A boundary set, version or unit that does not exist."""

    title = "Not found"
    status = 404


class VersionConflict(GeoGridError):
    """A write that would contradict the version history (stale base, overlapping validity)."""

    title = "Version conflict"
    status = 409


class NotAuthenticated(GeoGridError):
    """No API key, or one that is unknown or revoked."""

    title = "Not authenticated"
    status = 401

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(GeoGridError):
    """The caller's role, or the street or community it is limited to, does not allow this."""

    title = "Forbidden"
    status = 403


class OutOfScope(Forbidden):
    """A write that reaches outside the street or community it is limited to."""

    title = "Outside the permitted scope"


class RateLimited(GeoGridError):
    """Too many requests from one anonymous client."""

    title = "Too many requests"
    status = 429

    def __init__(self, detail: str, retry_after_s: float, **where: Any) -> None:
        super().__init__(detail, **where)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, round(self.retry_after_s + 0.5)))}


class PreconditionRequired(GeoGridError):
    """A write that must say which revision it is based on (If-Match) did not."""

    title = "Precondition required"
    status = 428


class PayloadTooLarge(GeoGridError):
    """A request body over the configured limit."""

    title = "Payload too large"
    status = 413


class ArchiveTooLarge(PayloadTooLarge):
    """A zip archive that would unpack to more than the limit, or packs as tightly as a zip bomb."""

    title = "Archive too large"


class RequestTimeout(GeoGridError):
    """A request that ran longer than the configured limit."""

    title = "Request timed out"
    status = 503


class DatabaseUnavailable(GeoGridError):
    """The database could not be reached or answered with a transient failure; try again shortly."""

    title = "Database unavailable"
    status = 503

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


class InsecureConfiguration(GeoGridError):
    """Settings that would run a non-local service with a default or weak secret."""

    title = "Insecure configuration"
    status = 500


class SpatialiteUnavailable(GeoGridError):
    """No way to load the SpatiaLite extension into SQLite was found."""

    title = "SpatiaLite unavailable"
    status = 500


class ClientClosedRequest(GeoGridError):
    """The client hung up before it had sent the whole request body (logged and counted as 499)."""

    title = "Client closed request"
    status = 499


class BodyTimeout(GeoGridError):
    """The client stopped sending its request body for longer than the configured idle time."""

    title = "Request body timed out"
    status = 408

    def headers(self) -> dict[str, str]:
        return {"Connection": "close"}  # what else the client sends would be read as a new request


class TooManyPoints(PayloadTooLarge):
    """A batch of more points than the configured limit, refused while its body is still arriving."""

    title = "Too many points"


class InvalidParameter(GeoGridError):
    """A parameter outside its valid range, such as a walking speed or time that is not positive."""

    title = "Invalid parameter"


class InvalidPost(GeoGridError):
    """A post (or the person in it) that cannot be taken: a bad phone, kind, role, date or building."""

    title = "Invalid post"
    status = 422


class InvalidRoster(InvalidPost):
    """A roster none of whose rows can be taken."""

    title = "Invalid roster"


class InvalidValue(GeoGridError):
    """A value outside its choices, a repeated id or a number that is not one, in a layer or a form."""

    title = "Invalid value"


class InvalidAddress(GeoGridError):
    """An address text that cannot be matched at all: empty, only punctuation, control characters, too long."""

    title = "Invalid address"
    status = 422


class InvalidRegistry(InvalidPost):
    """Standard addresses that cannot be taken: a registry file none of whose rows can be, or a bad row."""

    title = "Invalid address registry"


class IllegalTransition(GeoGridError):
    """An incident action its current state does not allow (the problem names the actions that are)."""

    title = "Illegal transition"
    status = 409


class InvalidIncident(GeoGridError):
    """An incident report that cannot be taken: no category, no place, a bad time, contact or media URL."""

    title = "Invalid incident"
    status = 422


class ImportCollision(GeoGridError):
    """Rows an import was writing were written meanwhile by another import or request: nothing was kept."""

    title = "Import collided"
    status = 409


class InvalidPlan(GeoGridError):
    """A plan edit that cannot be made: an unknown grid or micro-grid, a move across communities, a split
    whose parts do not hold the grid's micro-grids once each, a norm that is no range."""

    title = "Invalid plan"
    status = 422
