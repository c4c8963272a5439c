"""The working calendar: limits across weekends, holidays and 调休, and its data file."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geogrid.errors import InvalidValue, UnreadableFile
from geogrid.incidents.calendar import SHIPPED, WorkingCalendar, default_calendar

SH = ZoneInfo("Asia/Shanghai")

# March 2026: Wed 4th, a holiday on Thu 5th, Fri 6th, a make-up working Saturday 7th, Sun 8th, Mon 9th.
HOLIDAY, MAKEUP = date(2026, 3, 5), date(2026, 3, 7)
CAL = WorkingCalendar(holidays=frozenset({HOLIDAY}), workdays=frozenset({MAKEUP}))
PLAIN = WorkingCalendar()


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    """A moment in March 2026 (or ``month``), Shanghai time."""
    return datetime(2026, month, day, hour, minute, tzinfo=SH)


def test_days() -> None:
    assert CAL.is_working_day(date(2026, 3, 4))
    assert not CAL.is_working_day(HOLIDAY)
    assert CAL.is_working_day(MAKEUP)
    assert not CAL.is_working_day(date(2026, 3, 8))
    assert not PLAIN.is_working_day(MAKEUP)
    both = WorkingCalendar(holidays=frozenset({date(2026, 3, 14)}), workdays=frozenset({date(2026, 3, 15)}))
    assert not both.is_working_day(date(2026, 3, 14)) and both.is_working_day(date(2026, 3, 15))
    clash = WorkingCalendar(
        holidays=frozenset({date(2026, 3, 4), MAKEUP}), workdays=frozenset({date(2026, 3, 4), MAKEUP})
    )
    assert clash.is_working_day(date(2026, 3, 4)) and clash.is_working_day(MAKEUP)  # make-up days win
    with pytest.raises(InvalidValue):
        CAL.is_working_day(at(4, 10))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("start", "hours", "due"),
    [
        (at(4, 16), 4, at(6, 11)),  # Wed 1.5 h, Thursday's holiday skipped, Fri 2.5 h
        (at(4, 16), 8, at(6, 17)),  # Wed 1.5 h, Fri 3.5 h + 3 h
        (at(6, 16), 4, at(7, 11)),  # Fri 1.5 h, the make-up Saturday 2.5 h
        (at(6, 16), 9, at(9, 9)),  # Fri 1.5 h, Sat 7 h, Sun off, Mon 0.5 h
        (at(6, 19), 2, at(7, 10, 30)),  # Friday evening: from the make-up Saturday's opening
        (at(5, 10), 1, at(6, 9, 30)),  # reported on the holiday: from Friday's opening
        (at(8, 10), 1, at(9, 9, 30)),  # reported on Sunday
        (at(9, 7), 1, at(9, 9, 30)),  # before the opening
        (at(9, 12, 30), 1, at(9, 15)),  # in the lunch break
        (at(9, 8, 30), 3.5, at(9, 12)),  # a limit that uses up a period ends at its close
        (at(9, 8, 30), 7, at(9, 17, 30)),
        (at(9, 8, 30), 7.25, at(10, 8, 45)),
        (at(9, 11), 0.5, at(9, 11, 30)),
        (at(9, 11, 30), 0.75, at(9, 14, 15)),
        (at(6, 19), 0, at(6, 19)),  # no hours: the start itself
        (at(9, 10), 0, at(9, 10)),
    ],
)
def test_add_working_hours(start: datetime, hours: float, due: datetime) -> None:
    got = CAL.add_working_hours(start, hours)
    assert got == due and got.tzinfo == SH
    assert CAL.working_hours_between(start, got) == pytest.approx(hours, abs=1e-9)


def test_without_the_makeup_day() -> None:
    assert PLAIN.add_working_hours(at(6, 19), 2) == at(9, 10, 30)  # Friday evening: Monday
    assert PLAIN.add_working_days(at(6, 10), 1) == at(9, 17, 30)


def test_other_zones_in_shanghai_out() -> None:
    start = datetime(2026, 3, 4, 8, 0, tzinfo=UTC)  # 16:00 in Shanghai
    got = CAL.add_working_hours(start, 4)
    assert got == at(6, 11) and got.utcoffset() == timedelta(hours=8)
    assert CAL.working_hours_between(start, datetime(2026, 3, 6, 3, 0, tzinfo=UTC)) == 4.0


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        (at(6, 10), 1, at(7, 17, 30)),  # Friday: the make-up Saturday
        (at(6, 20), 1, at(7, 17, 30)),  # the time of day does not matter
        (at(6, 10), 2, at(9, 17, 30)),
        (at(4, 10), 1, at(6, 17, 30)),  # Wednesday: Thursday is a holiday
        (at(4, 10), 3, at(9, 17, 30)),
        (at(5, 10), 1, at(6, 17, 30)),  # on the holiday
        (at(8, 10), 1, at(9, 17, 30)),  # on Sunday
        (at(9, 10), 5, at(16, 17, 30)),
        (at(9, 10), 0, at(9, 17, 30)),  # 0 days: the close of its own day
        (at(5, 10), 0, at(6, 17, 30)),  # ... or of the next working day
    ],
)
def test_add_working_days(start: datetime, days: int, due: datetime) -> None:
    assert CAL.add_working_days(start, days) == due
    assert CAL.deadline(start, days, "days") == due


@pytest.mark.parametrize("weekend", [frozenset({5, 6}), frozenset({6}), frozenset()])
def test_long_limits_match_day_by_day(weekend: frozenset[int]) -> None:
    # Many holidays and make-up days: the week arithmetic must agree with counting one day at a time,
    # also when a week has 6 or 7 working days.
    holidays = frozenset(date(2026, 1, 1) + timedelta(days=d) for d in range(0, 365, 11))
    workdays = frozenset(
        d for d in (date(2026, 1, 3) + timedelta(days=7 * w) for w in range(0, 52, 5)) if d not in holidays
    )
    cal = WorkingCalendar(holidays=holidays, workdays=workdays, weekend=weekend)
    start = datetime(2026, 1, 2, 10, tzinfo=SH)
    day, seen = start.date(), 0
    for days in range(1, 200):
        day += timedelta(days=1)
        while not cal.is_working_day(day):
            day += timedelta(days=1)
        seen += 1
        assert cal.add_working_days(start, days) == datetime.combine(day, time(17, 30), SH)
        # 5.5 h left on the start's day, days - 1 whole days, then the morning of the last one
        assert cal.add_working_hours(start, 5.5 + 7 * (days - 1) + 3.5) == datetime.combine(day, time(12), SH)
    assert seen == 199


@pytest.mark.parametrize("days", [7, 8, 14, 15, 70, 71])
def test_every_day_working(days: int) -> None:
    # Weeks of 7 working days: skipping whole weeks must not jump past the last one.
    cal = WorkingCalendar(weekend=frozenset())
    assert cal.add_working_days(at(2, 10), days) == at(2, 17, 30) + timedelta(days=days)
    assert cal.add_working_hours(at(2, 17, 30), 7 * days) == at(2, 17, 30) + timedelta(days=days)


def reference_hours(cal: WorkingCalendar, a: datetime, b: datetime) -> float:
    """Working hours in [a, b), one day and one period at a time."""
    a, b = a.astimezone(SH), b.astimezone(SH)
    total, day = timedelta(0), a.date()
    while day <= b.date():
        if cal.is_working_day(day):
            for start, end in cal.hours:
                lo = max(a, datetime.combine(day, start, SH))
                hi = min(b, datetime.combine(day, end, SH))
                total += max(hi - lo, timedelta(0))
        day += timedelta(days=1)
    return total / timedelta(hours=1)


moments = st.datetimes(
    min_value=datetime(2026, 2, 20), max_value=datetime(2026, 4, 30), timezones=st.just(SH)
)
working_moments = st.builds(
    lambda day, period, minutes: (
        datetime.combine(date(2026, 2, 20) + timedelta(days=day), period, SH) + timedelta(minutes=minutes)
    ),
    st.integers(0, 60),
    st.sampled_from([time(8, 30), time(14, 0)]),
    st.floats(0, 209.99),
).filter(lambda s: CAL.is_working_day(s.date()))
limits = st.floats(min_value=0, max_value=400, allow_nan=False, allow_infinity=False)


@settings(deadline=None, max_examples=300)
@given(start=st.one_of(working_moments, moments), hours=limits)
def test_between_inverts_add(start: datetime, hours: float) -> None:
    due = CAL.add_working_hours(start, hours)
    assert due >= start
    assert CAL.working_hours_between(start, due) == pytest.approx(hours, abs=1e-9)


@settings(deadline=None, max_examples=200)
@given(a=moments, b=moments)
def test_between_matches_day_by_day(a: datetime, b: datetime) -> None:
    got = CAL.working_hours_between(a, b)
    assert got == pytest.approx(reference_hours(CAL, a, b), abs=1e-9)
    if b <= a:
        assert got == 0


def test_unit_and_bad_amounts() -> None:
    assert CAL.deadline(at(4, 16), 4, "hours") == at(6, 11)
    assert CAL.deadline(at(6, 10), 1.0, "days") == at(7, 17, 30)
    bad: list[tuple[Any, Any, str]] = [
        (1, "weeks", "unit"),
        (1.5, "days", "amount"),
        (-1, "hours", "hours"),
        (-1, "days", "days"),
        (float("nan"), "hours", "hours"),
        (float("inf"), "hours", "hours"),
        (1e12, "hours", "hours"),
    ]
    for amount, unit, name in bad:
        with pytest.raises(InvalidValue) as info:
            CAL.deadline(at(4, 16), amount, unit)
        assert info.value.where["field"] == name


def test_naive_datetimes_are_refused() -> None:
    naive, aware = datetime(2026, 3, 4, 10), at(4, 10)
    calls = [
        ("start", lambda: CAL.add_working_hours(naive, 1)),
        ("start", lambda: CAL.add_working_days(naive, 1)),
        ("start", lambda: CAL.deadline(naive, 1, "hours")),
        ("a", lambda: CAL.working_hours_between(naive, aware)),
        ("b", lambda: CAL.working_hours_between(aware, naive)),
    ]
    for name, call in calls:
        with pytest.raises(InvalidValue, match="time zone") as info:
            call()
        assert info.value.where["field"] == name


GOOD: dict[str, Any] = {
    "years": {"2026": {"holidays": ["2026-03-05"], "workdays": ["2026-03-07"], "source": "https://example"}},
    "hours": [["08:30", "12:00"], ["14:00", "17:30"]],
    "weekend": [5, 6],
    "tz": "Asia/Shanghai",
}


def test_from_mapping() -> None:
    cal = WorkingCalendar.from_mapping(GOOD)
    assert cal == WorkingCalendar(holidays=CAL.holidays, workdays=CAL.workdays, years=frozenset({2026}))
    assert cal.covers(2026) and not cal.covers(2027)
    assert WorkingCalendar.from_mapping({}) == WorkingCalendar(years=frozenset())
    assert CAL.covers(2026) and not CAL.covers(2025)  # without years: where its days fall
    short = WorkingCalendar.from_mapping({"hours": [["09:00", "17:00"]], "weekend": [6]})
    assert short.add_working_hours(at(7, 16), 2) == at(9, 10)  # Saturday works, Sunday does not


def changed(path: str, value: Any) -> dict[str, Any]:
    """GOOD with the dotted ``path`` set to ``value`` (a final ``[i]`` sets a list item)."""
    data = json.loads(json.dumps(GOOD))
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    if last.endswith("]"):
        key, index = last[:-1].split("[")
        node[key][int(index)] = value
    else:
        node[last] = value
    return data


@pytest.mark.parametrize(
    ("data", "field", "text"),
    [
        (
            changed("years.2026.holidays", ["2026-03-05", "2026-01-02", "2026-02-03", "2026-13-01"]),
            "years.2026.holidays[3]",
            "'2026-13-01' is not a date",
        ),
        (changed("years.2026.holidays[0]", "5 March"), "years.2026.holidays[0]", "'5 March'"),
        (changed("years.2026.holidays[0]", 20260305), "years.2026.holidays[0]", "20260305"),
        (changed("years.2026.holidays[0]", "2031-03-05"), "years.2026.holidays[0]", "not in 2026"),
        (changed("years.2026.workdays[0]", "2026-02-30"), "years.2026.workdays[0]", "'2026-02-30'"),
        (changed("years.2026.workdays", "2026-03-07"), "years.2026.workdays", "not a list"),
        (changed("years.2026.workdays[0]", "2026-03-05"), "workdays", "also listed as a holiday"),
        (changed("years.2026.holiday", []), "years.2026.holiday", "not a year field"),
        (changed("years.2026.source", 7), "years.2026.source", "7"),
        (changed("years.26", {}), "years.26", "four-digit year"),
        (changed("years.2026", ["2026-03-05"]), "years.2026", "not a mapping"),
        (changed("years", ["2026"]), "years", "not a mapping"),
        (changed("hours[1]", ["14:00"]), "hours[1]", "not a [start, end] pair"),
        (changed("hours", "08:30-17:30"), "hours", "not a list"),
        (changed("hours", [["08:30", "8pm"]]), "hours[0][1]", "'8pm'"),
        (changed("hours", [["08:30", "25:00"]]), "hours[0][1]", "'25:00'"),
        (changed("hours", [["12:00", "08:30"]]), "hours[0]", "does not end after it starts"),
        (changed("hours", [["08:30", "12:00"], ["11:00", "17:30"]]), "hours[1]", "overlaps"),
        (changed("hours", [["14:00", "17:30"], ["08:30", "12:00"]]), "hours[1]", "overlaps or precedes"),
        (changed("hours", []), "hours", "at least one"),
        (changed("weekend", [5, 7]), "weekend[1]", "7"),
        (changed("weekend", ["sat"]), "weekend[0]", "'sat'"),
        (changed("weekend", [True]), "weekend[0]", "True"),
        (changed("weekend", 5), "weekend", "not a list"),
        (changed("weekend", list(range(7))), "weekend", "every day"),
        (changed("tz", "Asia/Beijing"), "tz", "'Asia/Beijing'"),
        (changed("tz", 8), "tz", "8"),
        (changed("holidays", ["2026-03-05"]), "holidays", "not a calendar field"),
        ([GOOD], "calendar", "not a mapping"),
    ],
)
def test_from_mapping_errors_name_the_field(data: Any, field: str, text: str) -> None:
    with pytest.raises(InvalidValue) as info:
        WorkingCalendar.from_mapping(data)
    assert info.value.where["field"] == field
    assert info.value.detail.startswith(f"{field}: ")
    assert text in info.value.detail


def test_direct_construction_is_checked() -> None:
    with pytest.raises(InvalidValue) as info:
        WorkingCalendar(holidays=frozenset({at(5, 0)}))  # a datetime, not a date
    assert info.value.where["field"] == "holidays"
    with pytest.raises(InvalidValue) as info:
        WorkingCalendar(hours=((time(8, 30), time(12)), (time(12), time(11))))
    assert info.value.where["field"] == "hours[1]"
    touching = WorkingCalendar(hours=((time(8), time(12)), (time(12), time(16))))
    assert touching.add_working_hours(at(9, 11), 2) == at(9, 13)


def test_load(tmp_path: Any) -> None:
    path = tmp_path / "calendar.json"
    path.write_text(json.dumps(GOOD), encoding="utf-8")
    assert WorkingCalendar.load(path).is_working_day(MAKEUP)
    path.write_text(json.dumps(changed("years.2026.holidays[0]", "2026-13-01")), encoding="utf-8")
    with pytest.raises(InvalidValue) as info:
        WorkingCalendar.load(path)
    assert info.value.where == {"field": "years.2026.holidays[0]", "file": str(path)}
    path.write_text("{", encoding="utf-8")
    with pytest.raises(UnreadableFile):
        WorkingCalendar.load(path)
    with pytest.raises(UnreadableFile):
        WorkingCalendar.load(tmp_path / "missing.json")


def test_shipped_calendar() -> None:
    cal = default_calendar()
    assert cal is default_calendar()
    data = json.loads(SHIPPED.read_text(encoding="utf-8"))
    assert all(spec["source"].startswith("http") for spec in data["years"].values())
    for year in map(int, data["years"]):
        assert cal.covers(year)
    assert not cal.covers(2019)
    assert not cal.is_working_day(date(2026, 10, 1))
    assert cal.is_working_day(date(2026, 10, 10))  # Saturday, 调休
    assert not cal.is_working_day(date(2026, 2, 23))  # Monday, 春节
    # National Day: a report on Wed 30 September 2026 with one working day is due on Thursday 8 October.
    assert cal.deadline(datetime(2026, 9, 30, 10, tzinfo=SH), 1, "days") == datetime(
        2026, 10, 8, 17, 30, tzinfo=SH
    )
    assert cal.deadline(datetime(2026, 9, 30, 10, tzinfo=SH), 8, "hours") == datetime(
        2026, 10, 8, 11, tzinfo=SH
    )
    # Every make-up day falls on a weekend; every date is in its year (or the end of the year before).
    for year, spec in data["years"].items():
        assert all(date.fromisoformat(d).weekday() >= 5 for d in spec["workdays"])
        assert all(date.fromisoformat(d).year in (int(year), int(year) - 1) for d in spec["holidays"])
