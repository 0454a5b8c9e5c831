"""SOQL relative date literals (TODAY, LAST_N_DAYS:n, THIS_QUARTER...) as half-open UTC ranges.

Semantics follow Salesforce's "Date Formats and Date Literals in WHERE" reference
(developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_dateformats.htm):
every literal is a range of time that starts at 00:00:00 of a day; ``=`` tests membership and
``<`` / ``>`` compare with the start / end of the range. Ranges are computed in UTC (the org's
time zone is UTC) and weeks start on Sunday (the en_US locale). Fiscal literals depend on the
org's fiscal-year settings and are not part of the subset.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

#: Literals without an argument.
PLAIN_LITERALS = frozenset(
    {
        "YESTERDAY",
        "TODAY",
        "TOMORROW",
        "LAST_WEEK",
        "THIS_WEEK",
        "NEXT_WEEK",
        "LAST_MONTH",
        "THIS_MONTH",
        "NEXT_MONTH",
        "LAST_90_DAYS",
        "NEXT_90_DAYS",
        "LAST_QUARTER",
        "THIS_QUARTER",
        "NEXT_QUARTER",
        "LAST_YEAR",
        "THIS_YEAR",
        "NEXT_YEAR",
    }
)

#: Literals written ``NAME:n``.
N_LITERALS = frozenset(
    {
        "LAST_N_DAYS",
        "NEXT_N_DAYS",
        "N_DAYS_AGO",
        "LAST_N_WEEKS",
        "NEXT_N_WEEKS",
        "N_WEEKS_AGO",
        "LAST_N_MONTHS",
        "NEXT_N_MONTHS",
        "N_MONTHS_AGO",
        "LAST_N_QUARTERS",
        "NEXT_N_QUARTERS",
        "N_QUARTERS_AGO",
        "LAST_N_YEARS",
        "NEXT_N_YEARS",
        "N_YEARS_AGO",
        "LAST_N_HOURS",
        "NEXT_N_HOURS",
    }
)

#: Literals whose range is measured in hours: they only apply to dateTime fields.
HOUR_LITERALS = frozenset({"LAST_N_HOURS", "NEXT_N_HOURS"})

#: Salesforce literals outside the subset (they depend on the org's fiscal-year settings).
FISCAL_PREFIXES = (
    "THIS_FISCAL_",
    "LAST_FISCAL_",
    "NEXT_FISCAL_",
    "LAST_N_FISCAL_",
    "NEXT_N_FISCAL_",
    "N_FISCAL_",
)


def _add_months(day: date, months: int) -> date:
    """The first day of the month ``months`` after the month of ``day`` (which must be a 1st)."""
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def date_range(name: str, n: int | None, now: datetime) -> tuple[date, date]:
    """The half-open range of days ``[start, end)`` a day-based literal denotes at ``now`` (UTC).

    Raises ``OverflowError`` or ``ValueError`` when the range leaves the representable calendar.
    """
    today = now.astimezone(UTC).date()
    one = timedelta(days=1)
    week = today - timedelta(days=(today.weekday() + 1) % 7)  # most recent Sunday
    month = today.replace(day=1)
    quarter = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    year = date(today.year, 1, 1)
    k = n or 0
    ranges: dict[str, tuple[date, date]]
    if name in PLAIN_LITERALS:
        ranges = {
            "YESTERDAY": (today - one, today),
            "TODAY": (today, today + one),
            "TOMORROW": (today + one, today + 2 * one),
            "LAST_WEEK": (week - 7 * one, week),
            "THIS_WEEK": (week, week + 7 * one),
            "NEXT_WEEK": (week + 7 * one, week + 14 * one),
            "LAST_MONTH": (_add_months(month, -1), month),
            "THIS_MONTH": (month, _add_months(month, 1)),
            "NEXT_MONTH": (_add_months(month, 1), _add_months(month, 2)),
            # "Starts with the current day and continues for the past 90 days" (91 days in all).
            "LAST_90_DAYS": (today - 90 * one, today + one),
            # "Starts 00:00:00 of the next day and continues for the next 90 days."
            "NEXT_90_DAYS": (today + one, today + 91 * one),
            "LAST_QUARTER": (_add_months(quarter, -3), quarter),
            "THIS_QUARTER": (quarter, _add_months(quarter, 3)),
            "NEXT_QUARTER": (_add_months(quarter, 3), _add_months(quarter, 6)),
            "LAST_YEAR": (_add_months(year, -12), year),
            "THIS_YEAR": (year, _add_months(year, 12)),
            "NEXT_YEAR": (_add_months(year, 12), _add_months(year, 24)),
        }
        return ranges[name]
    if name == "LAST_N_DAYS":  # includes today: LAST_N_DAYS:1 is yesterday and today
        return today - k * one, today + one
    if name == "NEXT_N_DAYS":  # starts tomorrow
        return today + one, today + (k + 1) * one
    if name == "N_DAYS_AGO":
        return today - k * one, today - (k - 1) * one
    if name == "LAST_N_WEEKS":  # the n full weeks before this week
        return week - 7 * k * one, week
    if name == "NEXT_N_WEEKS":
        return week + 7 * one, week + 7 * (k + 1) * one
    if name == "N_WEEKS_AGO":
        return week - 7 * k * one, week - 7 * (k - 1) * one
    if name == "LAST_N_MONTHS":  # the n full months before this month
        return _add_months(month, -k), month
    if name == "NEXT_N_MONTHS":
        return _add_months(month, 1), _add_months(month, k + 1)
    if name == "N_MONTHS_AGO":
        return _add_months(month, -k), _add_months(month, 1 - k)
    if name == "LAST_N_QUARTERS":
        return _add_months(quarter, -3 * k), quarter
    if name == "NEXT_N_QUARTERS":
        return _add_months(quarter, 3), _add_months(quarter, 3 * (k + 1))
    if name == "N_QUARTERS_AGO":
        return _add_months(quarter, -3 * k), _add_months(quarter, 3 - 3 * k)
    if name == "LAST_N_YEARS":
        return _add_months(year, -12 * k), year
    if name == "NEXT_N_YEARS":
        return _add_months(year, 12), _add_months(year, 12 * (k + 1))
    if name == "N_YEARS_AGO":
        return _add_months(year, -12 * k), _add_months(year, 12 - 12 * k)
    raise ValueError(f"not a day-based date literal: {name}")


def datetime_range(name: str, n: int | None, now: datetime) -> tuple[datetime, datetime]:
    """The half-open UTC range ``[start, end)`` a literal denotes at ``now`` for dateTime fields.

    Hour literals are aligned on whole hours like the day literals are on whole days:
    LAST_N_HOURS:n covers the current hour and the n hours before it, NEXT_N_HOURS:n the n
    hours after the current one.
    """
    if name in HOUR_LITERALS:
        hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        k = n or 0
        if name == "LAST_N_HOURS":
            return hour - timedelta(hours=k), hour + timedelta(hours=1)
        return hour + timedelta(hours=1), hour + timedelta(hours=k + 1)
    start, end = date_range(name, n, now)
    return _midnight(start), _midnight(end)
