"""Who holds which post for which unit, from when to when: kinds, roles, posts as of a date, "1+X".

A *post* is a person in a role for a unit of any level, valid from a date until (not including) another,
like a boundary version, so "who was responsible on 1 March" has an answer. A post may name the buildings
of its unit that the person answers for (包保, "1+X"). :class:`Directory` is who answers for each unit on
one date. Roster files (what offices send) are :mod:`geogrid.rosters`.

Phones are personal data: :func:`mask_phone` is what callers without the right to see them get, and
:func:`shown` is how an error repeats a value, with any phone in it masked.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Iterable
from typing import Any

import orjson
import pandas as pd

from geogrid.errors import cut


class Kind(enum.StrEnum):
    """What a person is, whatever posts they hold."""

    leader = "leader"
    worker_fulltime = "worker_fulltime"
    worker_parttime = "worker_parttime"
    secretary = "secretary"
    street_staff = "street_staff"
    liaison = "liaison"
    building_head = "building_head"
    party_household = "party_household"


class Role(enum.StrEnum):
    """What a post makes its holder answerable for."""

    leader = "leader"
    worker = "worker"
    secretary = "secretary"
    street_staff = "street_staff"
    liaison = "liaison"
    building_head = "building_head"
    party_household = "party_household"


KIND_LABELS = {
    Kind.leader: "网格长",
    Kind.worker_fulltime: "专职网格员",
    Kind.worker_parttime: "兼职网格员",
    Kind.secretary: "社区书记",
    Kind.street_staff: "街道干部",
    Kind.liaison: "部门联络员",
    Kind.building_head: "楼栋长",
    Kind.party_household: "党员中心户",
}
ROLE_LABELS = {
    Role.leader: "网格长",
    Role.worker: "网格员",
    Role.secretary: "社区书记",
    Role.street_staff: "街道干部",
    Role.liaison: "部门联络员",
    Role.building_head: "楼栋长",
    Role.party_household: "党员中心户",
}
# The levels a role's post may name; a liaison answers for a unit of any level.
ROLE_LEVELS: dict[Role, frozenset[str]] = {
    Role.leader: frozenset({"grid", "microgrid"}),
    Role.worker: frozenset({"grid", "microgrid"}),
    Role.building_head: frozenset({"grid", "microgrid"}),
    Role.party_household: frozenset({"grid", "microgrid"}),
    Role.secretary: frozenset({"community"}),
    Role.street_staff: frozenset({"street"}),
    Role.liaison: frozenset({"county", "street", "community", "grid", "microgrid"}),
}

POST_COLUMNS = [
    "post_id",
    "person_id",
    "name",
    "phone",
    "kind",
    "role",
    "unit_code",
    "valid_from",
    "valid_to",
    "buildings",
]


def mask_phone(phone: str | None) -> str | None:
    """A phone number as callers without the right to see it get it: the first 3 and last 4 digits.

    >>> mask_phone("13812341234")
    '138****1234'
    >>> mask_phone("0477-1234567")
    '047*****4567'
    """
    if phone is None or phone == "":
        return phone
    if len(phone) <= 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def mask_name(name: str | None) -> str | None:
    """A person's name as callers without the right to see it get it: the family name only.

    >>> mask_name("张伟"), mask_name("欧阳娜娜")
    ('张*', '欧***')
    """
    return name[0] + "*" * (len(name) - 1) if name else name


#: A phone number inside text: a mobile (with +86 or 86 before it, spaces or dashes between its digits)
#: or a landline with its area code. ASCII digits: :func:`shown` reads full-width ones as ASCII first.
PHONE_LIKE = re.compile(
    r"(?<![\d+])(?:\+?86[\s-]?)?(?:1[3-9]\d(?:[\s-]?\d){8}|0\d{2,3}[\s-]?\d{7,8})(?!\d)", re.ASCII
)
_ASCII_DIGITS = str.maketrans("０１２３４５６７８９＋－\u3000", "0123456789+- ")  # one for one: spans keep


def shown(value: Any) -> str:
    """A value as an error repeats it: cut short, and any phone number in it masked.

    >>> shown("张伟 13812341234")
    '张伟 138****1234'
    >>> shown("来电 +86 138-1234-1234，１３９１２３４５６７８")
    '来电 138****1234，139****5678'
    """
    return phones_masked(cut(str(value)))


def phones_masked(text: str) -> str:
    """``text`` whole, with any phone number in it masked (138****1234).

    >>> phones_masked("噪音扰民，回电 13812341234")
    '噪音扰民，回电 138****1234'
    """
    plain = text.translate(_ASCII_DIGITS)
    out: list[str] = []
    pos = 0
    for m in PHONE_LIKE.finditer(plain):
        digits = re.sub(r"\D", "", m.group())
        if len(digits) > 11 and digits.startswith("86") and digits[2] == "1":
            digits = digits[2:]  # the country code is no part of what is shown
        out += [text[pos : m.start()], mask_phone(digits) or ""]
        pos = m.end()
    return "".join(out) + text[pos:] if out else text


def overlaps(a_from: dt.date, a_to: dt.date | None, b_from: dt.date, b_to: dt.date | None) -> bool:
    """True when two validity periods ``[from, to)`` share a day (``to`` None: still open).

    >>> overlaps(dt.date(2026, 1, 1), dt.date(2026, 3, 1), dt.date(2026, 3, 1), None)
    False
    """
    return (a_to is None or b_from < a_to) and (b_to is None or a_from < b_to)


# ---- as of a date ---------------------------------------------------------------------------------
def in_force(posts: pd.DataFrame, at: dt.date) -> pd.DataFrame:
    """The posts in force on ``at``: ``valid_from <= at < valid_to`` (an open post has no ``valid_to``)."""
    if posts.empty:
        return posts
    starts = posts["valid_from"].map(lambda d: d <= at)
    ends = posts["valid_to"].map(lambda d: d is None or pd.isna(d) or at < d)
    return posts[starts & ends]


def masked(posts: pd.DataFrame) -> pd.DataFrame:
    """``posts`` with every phone masked (for callers that may not see them)."""
    return posts.assign(phone=posts["phone"].map(mask_phone))


ROLE_ORDER = {role: i for i, role in enumerate(Role)}  # leaders first on a contact list


class Directory:
    """Who answers for each unit on one date: contact cards by unit code, phones full or masked.

    Built once from the posts in force (thousands), then asked per lookup: each unit's cards are
    serialised ahead, in both forms, so a lookup only picks (and joins) JSON arrays.
    """

    def __init__(self, posts: pd.DataFrame) -> None:
        full: dict[str, list[dict[str, Any]]] = {}
        masked: dict[str, list[dict[str, Any]]] = {}
        self.leaders: dict[str, str] = {}  # unit code -> its leaders' names, joined by "、"
        ordered = sorted(posts.to_dict("records"), key=lambda p: (ROLE_ORDER[Role(p["role"])], p["name"]))
        for post in ordered:
            card = {
                "name": post["name"],
                "role": post["role"],
                "role_label": ROLE_LABELS[Role(post["role"])],
                "phone": post["phone"],
                "unit_code": post["unit_code"],
                "buildings": len(post["buildings"]),
            }
            full.setdefault(post["unit_code"], []).append(card)
            masked.setdefault(post["unit_code"], []).append({**card, "phone": mask_phone(card["phone"])})
            if post["role"] == Role.leader:
                held = self.leaders.get(post["unit_code"])
                self.leaders[post["unit_code"]] = post["name"] if held is None else f"{held}、{post['name']}"
        self._json = {
            True: {code: orjson.dumps(cards) for code, cards in full.items()},
            False: {code: orjson.dumps(cards) for code, cards in masked.items()},
        }

    def json(self, codes: Iterable[str | None], *, full_phones: bool = False) -> bytes:
        """The contact cards of the units ``codes`` (finest first) as one JSON array, phones masked unless
        ``full_phones``; joined from the arrays serialised ahead (a lookup's hot path)."""
        by_unit = self._json[full_phones]
        parts = [found for code in codes if code is not None and (found := by_unit.get(code)) is not None]
        if len(parts) <= 1:
            return parts[0] if parts else b"[]"
        return b"[" + b",".join(part[1:-1] for part in parts) + b"]"

    def leader_of(self, codes: Iterable[str | None]) -> str | None:
        """The leader(s) of the first of ``codes`` that has one (a micro-grid's own, else its grid's)."""
        for code in codes:
            if code is not None and code in self.leaders:
                return self.leaders[code]
        return None
