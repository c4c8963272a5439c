"""Who may do what: the six roles, what each may do, and the street or community a role is limited to."""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass

from geogrid.errors import Forbidden

KEY_PREFIX = "gg_"


class Role(enum.StrEnum):
    """The roles of grid-based governance, from who only looks to who runs the system."""

    viewer = "viewer"  # reads lookups, boundaries and maps
    reporter = "reporter"  # a hotline or mini-program: reports incidents
    worker = "worker"  # a grid worker: handles the incidents of their grid
    commander = "commander"  # a command centre: dispatches and escalates
    planner = "planner"  # redraws grids: drafts, validates and publishes boundary versions
    admin = "admin"  # manages keys; may do everything


class Action(enum.StrEnum):
    """What a request does, as far as permissions go."""

    read = "read"  # lookups, sets, versions, units, diffs, OGC API Features
    report = "report"
    handle = "handle"
    dispatch = "dispatch"
    plan = "plan"  # upload into a draft, validate it
    publish = "publish"  # publish or discard a draft: changes the whole set, so never scoped
    staff = "staff"  # create and end posts, import rosters: who is responsible for which unit
    contact = "contact"  # see people's full phone numbers (others see 138****1234)
    register = "register"  # keep the standard-address registry: import addresses, add aliases
    place = "place"  # work the manual-placement queue: list queued address texts, place them
    manage_keys = "manage_keys"


GRANTS: dict[Role, frozenset[Action]] = {
    Role.viewer: frozenset({Action.read}),
    Role.reporter: frozenset({Action.read, Action.report}),
    Role.worker: frozenset({Action.read, Action.report, Action.handle, Action.contact}),
    Role.commander: frozenset(
        {Action.read, Action.report, Action.handle, Action.dispatch, Action.contact, Action.place}
    ),
    Role.planner: frozenset(
        {
            Action.read,
            Action.plan,
            Action.publish,
            Action.staff,
            Action.contact,
            Action.register,
            Action.place,
        }
    ),
    Role.admin: frozenset(Action),
}
UNSCOPED_ONLY = frozenset({Action.publish, Action.manage_keys})


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a named key with a role, possibly limited to a street or community."""

    name: str
    role: Role
    scope: str | None = None  # a street or community code; None: the whole set

    def may(self, action: Action) -> bool:
        """True when this caller's role grants ``action`` (scope aside)."""
        return action in GRANTS[self.role]

    def require(self, action: Action, code: str | None = None) -> None:
        """Raise Forbidden unless this caller may do ``action`` (on the unit ``code``, when given)."""
        if action not in GRANTS[self.role]:
            raise Forbidden(f"the {self.role} role may not {action.replace('_', ' ')}", role=self.role)
        if self.scope is None:
            return
        if action in UNSCOPED_ONLY:
            raise Forbidden(
                f"{action.replace('_', ' ')} changes the whole set; a role limited to {self.scope} may not",
                role=self.role,
                scope=self.scope,
            )
        if code is not None and not code.startswith(self.scope):
            raise Forbidden(f"{code} lies outside {self.scope}", role=self.role, scope=self.scope, code=code)


def new_key() -> str:
    """A fresh API key: 32 random bytes, URL-safe, with a recognisable prefix."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    """What is stored of a key: its SHA-256 (keys are random, so no salt or slow hash is needed)."""
    return hashlib.sha256(key.encode()).hexdigest()
