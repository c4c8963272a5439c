"""By when is an incident due? Working hours and working days on a calendar with weekends, public holidays
and 调休.

A limit in working hours runs only inside the working periods of working days (08:30–12:00 and 14:00–17:30
by default); a limit in working days ends at the close of the n-th working day after the report's day. A day
is a working day if it is a make-up working day (调休上班), otherwise if it is neither a public holiday nor a
weekend day. Arithmetic is on wall-clock time in the calendar's zone (China has no daylight saving) and in
whole microseconds, so :meth:`WorkingCalendar.working_hours_between` undoes
:meth:`WorkingCalendar.add_working_hours` exactly. The shipped schedule (``holidays_cn.json``) follows the
State Council's yearly notices (国务院办公厅关于部分节假日安排的通知); in a year it does not give, only
weekends are days off, and :meth:`WorkingCalendar.covers` lets the caller warn.
"""

from __future__ import annotations

import json
import math
import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from os import PathLike
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from geogrid.errors import InvalidValue, UnreadableFile, cut

SHIPPED = Path(__file__).with_name("holidays_cn.json")
UNITS = ("hours", "days")
US_PER_HOUR = 3_600_000_000
DEFAULT_HOURS = ((time(8, 30), time(12, 0)), (time(14, 0), time(17, 30)))
MEMO = 4096  # entries a calendar's memos keep (days and working-day counts) before starting afresh

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"\d{2}:\d{2}(:\d{2})?")
_YEAR = re.compile(r"\d{4}")
_KEYS = ("years", "hours", "weekend", "tz", "description")
_YEAR_KEYS = ("holidays", "workdays", "source", "notice")


def _us(t: time) -> int:
    """Microseconds from midnight to ``t``."""
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond


def _bad(where: str, value: object, what: str) -> InvalidValue:
    """An InvalidValue whose detail names the field and repeats the value."""
    return InvalidValue(f"{where}: {cut(repr(value))} {what}", field=where)


@dataclass(frozen=True)
class WorkingCalendar:
    """Working days (weekends, holidays, 调休 make-up days) and the working periods of a working day."""

    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    weekend: frozenset[int] = frozenset({5, 6})
    hours: tuple[tuple[time, time], ...] = DEFAULT_HOURS
    tz: str = "Asia/Shanghai"
    # The years whose holidays the data gives; None: every year in which a holiday or make-up day falls.
    years: frozenset[int] | None = None

    # Derived once in __post_init__ (days as ordinals, times as microseconds from midnight).
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _periods: tuple[tuple[int, int], ...] = field(init=False, repr=False, compare=False)
    _before: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _per_day: int = field(init=False, repr=False, compare=False)
    _base: tuple[bool, ...] = field(init=False, repr=False, compare=False)
    _per_week: int = field(init=False, repr=False, compare=False)
    _partial: tuple[tuple[int, ...], ...] = field(init=False, repr=False, compare=False)
    _on: frozenset[int] = field(init=False, repr=False, compare=False)
    _off: frozenset[int] = field(init=False, repr=False, compare=False)
    _on_sorted: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _off_sorted: tuple[int, ...] = field(init=False, repr=False, compare=False)
    # Memos (an import asks for thousands of deadlines on the same few days): midnight of a day in the
    # zone by ordinal, and _nth's answers; each is cleared when it grows past MEMO entries.
    _midnights: dict[int, datetime] = field(init=False, repr=False, compare=False)
    _nths: dict[tuple[int, int], int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        put = object.__setattr__  # the dataclass is frozen: normalised and derived fields are set here once
        holidays = _date_set(self.holidays, "holidays")
        workdays = _date_set(self.workdays, "workdays")
        put(self, "holidays", holidays)
        put(self, "workdays", workdays)
        weekend = frozenset(self.weekend)
        for day in weekend:
            if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6:
                raise _bad("weekend", day, "is not a weekday number 0 (Monday) to 6 (Sunday)")
        if len(weekend) == 7:
            raise InvalidValue("weekend: every day of the week is a weekend day", field="weekend")
        put(self, "weekend", weekend)
        hours, periods = _periods(self.hours)
        put(self, "hours", hours)
        put(self, "_periods", periods)
        try:
            put(self, "_zone", ZoneInfo(self.tz))
        except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
            raise _bad("tz", self.tz, "is not a time zone name such as 'Asia/Shanghai'") from exc
        if self.years is not None:
            put(self, "years", frozenset(self.years))

        before, done = [], 0
        for start, end in self._periods:
            before.append(done)
            done += end - start
        put(self, "_before", tuple(before))
        put(self, "_per_day", done)
        base = tuple(day not in weekend for day in range(7))
        put(self, "_base", base)
        put(self, "_per_week", sum(base))
        # _partial[w][r]: weekday working days among r consecutive days from weekday w (r < 7).
        put(
            self,
            "_partial",
            tuple(tuple(sum(base[(w + i) % 7] for i in range(r)) for r in range(7)) for w in range(7)),
        )
        # Only the days that differ from the weekly pattern matter: make-up days on, holidays off (a make-up
        # day wins over a holiday on the same date).
        on = frozenset(d.toordinal() for d in workdays if not base[d.weekday()])
        off = frozenset(d.toordinal() for d in holidays - workdays if base[d.weekday()])
        put(self, "_on", on)
        put(self, "_off", off)
        put(self, "_on_sorted", tuple(sorted(on)))
        put(self, "_off_sorted", tuple(sorted(off)))
        put(self, "_midnights", {})
        put(self, "_nths", {})

    # --- construction from data ---------------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> WorkingCalendar:
        """A calendar from ``{"years": {"2026": {"holidays": [...], "workdays": [...]}}, "hours": ...}``."""
        if not isinstance(data, Mapping):
            raise _bad("calendar", type(data).__name__, "is not a mapping of years, hours, weekend and tz")
        for key in data:
            if key not in _KEYS:
                raise InvalidValue(f"{key}: not a calendar field ({', '.join(_KEYS)})", field=str(key))
        kwargs: dict[str, Any] = {}
        holidays: set[date] = set()
        workdays: set[date] = set()
        years: set[int] = set()
        given = data.get("years", {})
        if not isinstance(given, Mapping):
            raise _bad("years", given, "is not a mapping of year to holidays and workdays")
        for key, spec in given.items():
            name = str(key)
            if not _YEAR.fullmatch(name):
                raise _bad(f"years.{name}", key, "is not a four-digit year")
            year = int(name)
            if not isinstance(spec, Mapping):
                raise _bad(f"years.{name}", spec, "is not a mapping with holidays and workdays")
            for part in spec:
                if part not in _YEAR_KEYS:
                    where = f"years.{name}.{part}"
                    raise InvalidValue(f"{where}: not a year field ({', '.join(_YEAR_KEYS)})", field=where)
            for part in ("source", "notice"):
                if part in spec and not isinstance(spec[part], str):
                    raise _bad(f"years.{name}.{part}", spec[part], "is not text")
            holidays |= _parse_dates(spec.get("holidays", []), f"years.{name}.holidays", year)
            workdays |= _parse_dates(spec.get("workdays", []), f"years.{name}.workdays", year)
            years.add(year)
        both = sorted(holidays & workdays)
        if both:  # the class lets a make-up day win; in data, a date on both lists is a mistake
            raise _bad("workdays", both[0].isoformat(), "is also listed as a holiday")
        kwargs["years"] = frozenset(years)
        if "hours" in data:
            kwargs["hours"] = _parse_hours(data["hours"])
        if "weekend" in data:
            weekend = data["weekend"]
            if isinstance(weekend, str | bytes) or not isinstance(weekend, Iterable):
                raise _bad("weekend", weekend, "is not a list of weekday numbers")
            days = list(weekend)
            for i, day in enumerate(days):
                if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6:
                    raise _bad(f"weekend[{i}]", day, "is not a weekday number 0 (Monday) to 6 (Sunday)")
            kwargs["weekend"] = frozenset(days)
        if "tz" in data:
            if not isinstance(data["tz"], str):
                raise _bad("tz", data["tz"], "is not a time zone name")
            kwargs["tz"] = data["tz"]
        if "description" in data and not isinstance(data["description"], str):
            raise _bad("description", data["description"], "is not text")
        return cls(holidays=frozenset(holidays), workdays=frozenset(workdays), **kwargs)

    @classmethod
    def load(cls, path: str | PathLike[str]) -> WorkingCalendar:
        """Read a calendar from a JSON file in the :meth:`from_mapping` layout."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UnreadableFile(f"cannot read the working calendar: {exc}", file=str(path)) from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UnreadableFile(f"the working calendar is not JSON: {exc}", file=str(path)) from exc
        try:
            return cls.from_mapping(data)
        except InvalidValue as exc:
            exc.where.setdefault("file", str(path))
            raise

    # --- days -------------------------------------------------------------------------------------------

    def covers(self, year: int) -> bool:
        """Whether the calendar's data gives ``year``'s holidays (outside it, only weekends are off)."""
        if self.years is not None:
            return year in self.years
        return any(d.year == year for d in self.holidays | self.workdays)

    def is_working_day(self, d: date) -> bool:
        """Whether ``d`` is a working day: a make-up day, or else neither a holiday nor a weekend day."""
        if isinstance(d, datetime) or not isinstance(d, date):
            raise _bad("d", d, "is not a date (pass a datetime's .date() in the calendar's zone)")
        return self._working(d.toordinal())

    def _working(self, o: int) -> bool:
        """Whether the day with ordinal ``o`` is a working day."""
        if self._base[(o + 6) % 7]:
            return o not in self._off
        return o in self._on

    def _count(self, first: int, stop: int) -> int:
        """Working days with ordinals in [first, stop): whole weeks by arithmetic, exceptions by bisection."""
        if stop <= first:
            return 0
        weeks, rest = divmod(stop - first, 7)
        count = weeks * self._per_week + self._partial[(first + 6) % 7][rest]
        on, off = self._on_sorted, self._off_sorted
        count += bisect_left(on, stop) - bisect_left(on, first)
        return count - (bisect_left(off, stop) - bisect_left(off, first))

    def _nth(self, o: int, n: int) -> int:
        """The ordinal of the ``n``-th working day (n >= 1) on or after ordinal ``o``."""
        found = self._nths.get((o, n))
        if found is None:
            if len(self._nths) >= MEMO:
                self._nths.clear()
            found = self._nths[o, n] = self._find_nth(o, n)
        return found

    def _find_nth(self, o: int, n: int) -> int:
        """:meth:`_nth`, worked out."""
        while n > 7:
            # A week holds at most 7 working days, so (n - 1) // 7 weeks cannot hold the n-th one.
            weeks = (n - 1) // 7
            n -= self._count(o, o + 7 * weeks)
            o += 7 * weeks
        while True:
            if self._working(o):
                n -= 1
                if n == 0:
                    return o
            o += 1

    # --- hours ------------------------------------------------------------------------------------------

    def _local(self, moment: datetime, name: str) -> tuple[int, int]:
        """The ordinal of ``moment``'s day in the calendar's zone and its microseconds from midnight."""
        if not isinstance(moment, datetime):
            raise _bad(name, moment, "is not a datetime")
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise _bad(name, moment.isoformat(), "has no time zone; pass an aware datetime")
        local = moment.astimezone(self._zone)
        us = ((local.hour * 60 + local.minute) * 60 + local.second) * 1_000_000 + local.microsecond
        return local.toordinal(), us

    def _at(self, o: int, us: int) -> datetime:
        """The aware datetime in the calendar's zone ``us`` microseconds into the day with ordinal ``o``."""
        midnight = self._midnights.get(o)
        if midnight is None:
            if len(self._midnights) >= MEMO:
                self._midnights.clear()
            midnight = self._midnights[o] = datetime.combine(date.fromordinal(o), time.min, self._zone)
        return midnight + timedelta(microseconds=us)

    def _worked(self, us: int) -> int:
        """Working microseconds of a working day before ``us`` microseconds from midnight."""
        total = 0
        for start, end in self._periods:
            if us <= start:
                break
            total += (us if us < end else end) - start
        return total

    def _instant(self, worked: int) -> int:
        """The earliest time of a working day (in microseconds) by which ``worked`` > 0 of them elapsed."""
        for (start, end), before in zip(self._periods, self._before, strict=True):
            if worked <= before + end - start:
                return start + worked - before
        raise AssertionError(f"{worked} us is more than a working day")

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """The earliest moment by which ``hours`` working hours have elapsed since ``start`` (0 → ``start``).

        Time outside the working periods does not count, so a limit that uses up a period ends at its close
        (12:00, not 14:00) and ``hours == 0`` returns ``start`` itself, in the calendar's zone.
        """
        o, us = self._local(start, "start")
        if isinstance(hours, bool) or not isinstance(hours, int | float) or not math.isfinite(hours):
            raise _bad("hours", hours, "is not a finite number of hours")
        if hours < 0:
            raise _bad("hours", hours, "is negative")
        left = round(hours * US_PER_HOUR)
        if left == 0:
            return start.astimezone(self._zone)
        per_day = self._per_day
        if self._working(o):
            done = self._worked(us)
            if done + left <= per_day:
                return self._at(o, self._instant(done + left))
            left -= per_day - done
        days = -(-left // per_day)  # the limit ends on the days-th working day after the start's day
        try:
            return self._at(self._nth(o + 1, days), self._instant(left - (days - 1) * per_day))
        except (OverflowError, ValueError) as exc:
            raise _bad("hours", hours, "working hours run past the year 9999") from exc

    def working_hours_between(self, a: datetime, b: datetime) -> float:
        """Working hours in [a, b); 0 if ``b <= a``."""
        oa, ua = self._local(a, "a")
        ob, ub = self._local(b, "b")
        if b <= a:
            return 0.0
        if oa == ob:
            total = self._worked(ub) - self._worked(ua) if self._working(oa) else 0
            return max(total, 0) / US_PER_HOUR
        total = self._per_day * self._count(oa + 1, ob)
        if self._working(oa):
            total += self._per_day - self._worked(ua)
        if self._working(ob):
            total += self._worked(ub)
        return total / US_PER_HOUR

    # --- limits -----------------------------------------------------------------------------------------

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """The close of the ``days``-th working day after ``start``'s day (0: of its own or the next one).

        The time of day does not matter: a report at 10:00 or at 20:00 on a Friday with 1 working day is due
        at the close of the next working day (17:30); with 0 days, at the close of that Friday.
        """
        o, _ = self._local(start, "start")
        if isinstance(days, bool) or not isinstance(days, int):
            raise _bad("days", days, "is not a whole number of days")
        if days < 0:
            raise _bad("days", days, "is negative")
        try:
            due = self._nth(o, 1) if days == 0 else self._nth(o + 1, days)
            return self._at(due, self._periods[-1][1])
        except (OverflowError, ValueError) as exc:
            raise _bad("days", days, "working days run past the year 9999") from exc

    def deadline(self, start: datetime, amount: float, unit: str) -> datetime:
        """When a limit of ``amount`` working ``unit`` ("hours" or "days") starting at ``start`` runs out.

        Examples
        --------
        >>> from zoneinfo import ZoneInfo
        >>> reported = datetime(2026, 9, 30, 16, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # before National Day
        >>> default_calendar().deadline(reported, 4, "hours").isoformat()
        '2026-10-08T11:00:00+08:00'
        >>> default_calendar().deadline(reported, 1, "days").isoformat()
        '2026-10-08T17:30:00+08:00'
        """
        if unit == "hours":
            return self.add_working_hours(start, amount)
        if unit == "days":
            if (
                isinstance(amount, bool)
                or not isinstance(amount, int | float)
                or not float(amount).is_integer()
            ):
                raise _bad("amount", amount, "is not a whole number of working days")
            return self.add_working_days(start, int(amount))
        raise _bad("unit", unit, f"is not one of {', '.join(UNITS)}")

    def deadlines(self, starts: Sequence[datetime], amount: float, unit: str) -> list[datetime]:
        """:meth:`deadline` of each of ``starts`` (a limit in days worked out once per day of the zone)."""
        if unit != "days" or not starts:
            return [self.deadline(start, amount, unit) for start in starts]
        by_day: dict[int, datetime] = {}
        out = []
        for start in starts:
            o, _ = self._local(start, "start")
            due = by_day.get(o)
            if due is None:
                due = by_day[o] = self.deadline(start, amount, unit)
            out.append(due)
        return out


def _date_set(values: Iterable[date], name: str) -> frozenset[date]:
    """``values`` as a frozenset of dates, refusing datetimes and anything else."""
    days = frozenset(values)
    for d in days:
        if isinstance(d, datetime) or not isinstance(d, date):
            raise _bad(name, d, "is not a date")
    return days


def _periods(
    hours: Iterable[tuple[time, time]],
) -> tuple[tuple[tuple[time, time], ...], tuple[tuple[int, int], ...]]:
    """The working periods as tuples and in microseconds from midnight, checked to be sorted and apart."""
    pairs: list[tuple[time, time]] = []
    periods: list[tuple[int, int]] = []
    for i, pair in enumerate(hours):
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise _bad(f"hours[{i}]", pair, "is not a (start, end) pair")
        first, last = pair
        if not all(isinstance(t, time) and t.tzinfo is None for t in (first, last)):
            raise _bad(f"hours[{i}]", pair, "is not a pair of times without a time zone")
        start, end = _us(first), _us(last)
        if start >= end:
            raise _bad(f"hours[{i}]", f"{first}-{last}", "does not end after it starts")
        if periods and start < periods[-1][1]:
            raise _bad(f"hours[{i}]", f"{first}-{last}", "overlaps or precedes the period before it")
        pairs.append((first, last))
        periods.append((start, end))
    if not periods:
        raise InvalidValue("hours: a working day needs at least one working period", field="hours")
    return tuple(pairs), tuple(periods)


def _parse_dates(values: object, where: str, year: int) -> set[date]:
    """The ``YYYY-MM-DD`` strings of one year's list, in that year or (元旦 调休) the one before."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise _bad(where, values, "is not a list of dates")
    days: set[date] = set()
    for i, value in enumerate(values):
        if not isinstance(value, str) or not _DATE.fullmatch(value):
            raise _bad(f"{where}[{i}]", value, "is not a date (YYYY-MM-DD)")
        try:
            d = date.fromisoformat(value)
        except ValueError as exc:
            raise _bad(f"{where}[{i}]", value, "is not a date") from exc
        if d.year not in (year, year - 1):
            raise _bad(f"{where}[{i}]", value, f"is not in {year} (or the end of {year - 1})")
        days.add(d)
    return days


def _parse_hours(values: object) -> tuple[tuple[time, time], ...]:
    """The ``[["08:30", "12:00"], ...]`` working periods of a working day."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise _bad("hours", values, "is not a list of [start, end] times")
    periods: list[tuple[time, time]] = []
    for i, pair in enumerate(values):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise _bad(f"hours[{i}]", pair, "is not a [start, end] pair")
        ends: list[time] = []
        for j, value in enumerate(pair):
            if not isinstance(value, str) or not _TIME.fullmatch(value):
                raise _bad(f"hours[{i}][{j}]", value, "is not a time (HH:MM)")
            try:
                ends.append(time.fromisoformat(value))
            except ValueError as exc:
                raise _bad(f"hours[{i}][{j}]", value, "is not a time") from exc
        periods.append((ends[0], ends[1]))
    return tuple(periods)


@lru_cache(maxsize=1)
def default_calendar() -> WorkingCalendar:
    """The shipped calendar: China's public holidays and 调休 (``holidays_cn.json``), 08:30–17:30."""
    return WorkingCalendar.load(SHIPPED)
