"""EventBridge schedule expressions: ``rate(...)``, ``cron(...)`` (AWS's six fields) and ``at(...)``.

Cron fields are Minutes, Hours, Day-of-month, Month, Day-of-week, Year. Supported: ``*``, ``?``,
lists, ranges, steps (``*/5``, ``0/15``, ``5-30/5``), month and weekday names, ``L`` (last day of the
month; ``5L`` the last Thursday), ``W`` (``15W``, the weekday nearest the 15th) and ``#`` (``2#1``,
the first Monday). Day-of-month and day-of-week cannot both be given: one of them must be ``?``.
Days of week run from 1 (SUN) to 7 (SAT). Anything else is refused with a message naming it.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
_WEEKDAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_RATE = re.compile(r"rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_MAX_YEARS = 300


class ScheduleExpressionError(ValueError):
    """The schedule expression is not one the local scheduler understands."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleExpressionError(f"unknown time zone {name!r}") from exc


@dataclass(frozen=True)
class Rate:
    seconds: int

    def next_after(self, after: datetime, anchor: datetime) -> datetime:
        """The first tick of ``anchor + k * rate`` (k >= 1) strictly after ``after``."""
        periods = max(1, int((after - anchor).total_seconds() // self.seconds) + 1)
        return anchor + timedelta(seconds=periods * self.seconds)


@dataclass(frozen=True)
class At:
    when: datetime

    def next_after(self, after: datetime) -> datetime | None:
        return self.when if self.when > after else None


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: tuple[str, frozenset[int]]
    months: frozenset[int]
    weekdays: tuple[str, frozenset[int], int]
    years: frozenset[int] | None
    timezone: ZoneInfo

    def next_after(self, after: datetime) -> datetime | None:
        """The first firing strictly after ``after`` (an aware datetime), in UTC; None if none is left."""
        local = after.astimezone(self.timezone).replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = local.date()
        earliest = (local.hour, local.minute)
        limit = date(min(local.year + _MAX_YEARS, 9999), 1, 1)
        while day < limit:
            if self.years is not None and day.year not in self.years:
                later = [year for year in self.years if year > day.year]
                if not later:
                    return None
                day, earliest = date(min(later), 1, 1), (0, 0)
                continue
            if day.month not in self.months:
                day, earliest = _first_of_next_month(day), (0, 0)
                continue
            if self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        if (hour, minute) >= earliest:
                            fire = datetime(day.year, day.month, day.day, hour, minute, tzinfo=self.timezone)
                            return fire.astimezone(UTC)
            day, earliest = day + timedelta(days=1), (0, 0)
        return None

    def _day_matches(self, day: date) -> bool:
        last = calendar.monthrange(day.year, day.month)[1]
        kind, values = self.days
        if kind == "last":
            return day.day == last
        if kind == "weekday":
            return day.day == _nearest_weekday(day.year, day.month, next(iter(values)))
        if kind == "set":
            return day.day in values
        weekday_kind, weekdays, nth = self.weekdays
        aws_weekday = (day.weekday() + 1) % 7 + 1
        if aws_weekday not in weekdays:
            return False
        if weekday_kind == "last":
            return day.day + 7 > last
        if weekday_kind == "nth":
            return (day.day - 1) // 7 + 1 == nth
        return True


ScheduleExpression = Rate | At | Cron


def _first_of_next_month(day: date) -> date:
    return date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)


def _nearest_weekday(year: int, month: int, target: int) -> int:
    last = calendar.monthrange(year, month)[1]
    if target > last:
        return -1
    weekday = date(year, month, target).weekday()
    if weekday == 5:  # Saturday: the Friday before, or the Monday after the 1st
        return target - 1 if target > 1 else target + 2
    if weekday == 6:  # Sunday: the Monday after, or the Friday before the month's last day
        return target + 1 if target < last else target - 2
    return target


def _number(token: str, names: dict[str, int], field: str) -> int:
    if token.upper() in names:
        return names[token.upper()]
    if not token.isdigit():
        raise ScheduleExpressionError(f"{field}: {token!r} is not a number or a name")
    return int(token)


def _values(
    text: str, low: int, high: int, field: str, names: dict[str, int] | None = None
) -> frozenset[int]:
    names = names or {}
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        if step_text and not step_text.isdigit():
            raise ScheduleExpressionError(f"{field}: bad step in {part!r}")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ScheduleExpressionError(f"{field}: bad step in {part!r}")
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, last = base.split("-", 1)
            start, end = _number(first, names, field), _number(last, names, field)
        else:
            start = _number(base, names, field)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high) or start > end:
            raise ScheduleExpressionError(f"{field}: {part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def parse_cron(body: str, timezone: ZoneInfo) -> Cron:
    fields = body.split()
    if len(fields) != 6:
        raise ScheduleExpressionError(f"cron({body}) needs 6 fields (minutes hours day month weekday year)")
    minute_text, hour_text, day_text, month_text, weekday_text, year_text = fields
    if (day_text == "?") == (weekday_text == "?"):
        raise ScheduleExpressionError(
            f"cron({body}): exactly one of day-of-month and day-of-week must be '?'"
        )
    days: tuple[str, frozenset[int]] = ("any", frozenset())
    weekdays: tuple[str, frozenset[int], int] = ("any", frozenset(), 0)
    if day_text != "?":
        if day_text == "L":
            days = ("last", frozenset())
        elif re.fullmatch(r"\d{1,2}W", day_text):
            days = ("weekday", _values(day_text[:-1], 1, 31, "day-of-month"))
        elif re.search(r"[LW#]", day_text):
            raise ScheduleExpressionError(f"cron({body}): day-of-month {day_text!r} is not supported")
        else:
            days = ("set", _values(day_text, 1, 31, "day-of-month"))
    else:
        last = re.fullmatch(r"(\w+)L", weekday_text)
        nth = re.fullmatch(r"(\w+)#([1-5])", weekday_text)
        if weekday_text == "L":
            weekdays = ("last", frozenset({7}), 0)
        elif last:
            weekdays = ("last", _values(last.group(1), 1, 7, "day-of-week", _WEEKDAYS), 0)
        elif nth:
            weekdays = ("nth", _values(nth.group(1), 1, 7, "day-of-week", _WEEKDAYS), int(nth.group(2)))
        elif re.search(r"[LW#]", weekday_text):
            raise ScheduleExpressionError(f"cron({body}): day-of-week {weekday_text!r} is not supported")
        else:
            weekdays = ("set", _values(weekday_text, 1, 7, "day-of-week", _WEEKDAYS), 0)
    return Cron(
        minutes=_values(minute_text, 0, 59, "minutes"),
        hours=_values(hour_text, 0, 23, "hours"),
        days=days,
        months=_values(month_text, 1, 12, "month", _MONTHS),
        weekdays=weekdays,
        years=None if year_text == "*" else _values(year_text, 1970, 2199, "year"),
        timezone=timezone,
    )


def parse_expression(text: str, timezone: str = "UTC", *, allow_at: bool = True) -> ScheduleExpression:
    """Parse a ``rate(...)``, ``cron(...)`` or (for EventBridge Scheduler) ``at(...)`` expression."""
    expression = text.strip()
    tz = zone(timezone)
    rate = _RATE.fullmatch(expression)
    if rate:
        value, unit = int(rate.group(1)), rate.group(2)
        if value < 1:
            raise ScheduleExpressionError(f"{expression}: the rate must be a positive number")
        if (value == 1) == unit.endswith("s"):
            raise ScheduleExpressionError(
                f"{expression}: use the singular unit for 1 and the plural otherwise"
            )
        return Rate(value * _UNIT_SECONDS[unit.rstrip("s")])
    if expression.startswith("cron(") and expression.endswith(")"):
        return parse_cron(expression[5:-1], tz)
    if allow_at and expression.startswith("at(") and expression.endswith(")"):
        try:
            when = datetime.fromisoformat(expression[3:-1].strip())
        except ValueError as exc:
            raise ScheduleExpressionError(f"{expression}: expected at(yyyy-mm-ddThh:mm:ss)") from exc
        if when.tzinfo is not None or len(expression[3:-1].strip()) != 19:
            raise ScheduleExpressionError(f"{expression}: expected at(yyyy-mm-ddThh:mm:ss)")
        return At(when.replace(tzinfo=tz).astimezone(UTC))
    raise ScheduleExpressionError(f"unsupported schedule expression {expression!r}")
