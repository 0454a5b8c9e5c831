"""Schedule expressions: next firing times of rate, cron and at expressions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from local.runtime.cron import At, Cron, Rate, ScheduleExpressionError, parse_expression

# 2026-03-04 is a Wednesday.
NOW = datetime(2026, 3, 4, 10, 7, 30, tzinfo=UTC)


def next_fire(expression: str, after: datetime = NOW, timezone: str = "UTC") -> datetime | None:
    parsed = parse_expression(expression, timezone)
    assert isinstance(parsed, Cron)
    return parsed.next_after(after)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("cron(0/15 * * * ? *)", utc(2026, 3, 4, 10, 15)),
        ("cron(5-30/5 * * * ? *)", utc(2026, 3, 4, 10, 10)),
        ("cron(0 3 * * ? *)", utc(2026, 3, 5, 3, 0)),
        ("cron(0 18 ? * MON-FRI *)", utc(2026, 3, 4, 18, 0)),
        ("cron(0 9 ? * SAT,SUN *)", utc(2026, 3, 7, 9, 0)),
        ("cron(0 9 ? * 1 *)", utc(2026, 3, 8, 9, 0)),
        ("cron(0 0 1 * ? *)", utc(2026, 4, 1, 0, 0)),
        ("cron(0 0 L * ? *)", utc(2026, 3, 31, 0, 0)),
        ("cron(0 12 ? * 6L *)", utc(2026, 3, 27, 12, 0)),
        ("cron(0 12 ? * 2#1 *)", utc(2026, 4, 6, 12, 0)),
        ("cron(0 12 15W * ? *)", utc(2026, 3, 16, 12, 0)),
        ("cron(0 12 1W * ? *)", utc(2026, 4, 1, 12, 0)),
        ("cron(0 0 29 FEB ? *)", utc(2028, 2, 29, 0, 0)),
        ("cron(0 0 1 1 ? 2030-2031)", utc(2030, 1, 1, 0, 0)),
        ("cron(0 0 1 1 ? 2020)", None),
    ],
)
def test_cron_next_fire_times(expression: str, expected: datetime | None) -> None:
    assert next_fire(expression) == expected


def test_cron_fires_strictly_after_the_given_time() -> None:
    assert next_fire("cron(0/15 * * * ? *)", utc(2026, 3, 4, 10, 15)) == utc(2026, 3, 4, 10, 30)


def test_cron_follows_the_schedule_time_zone() -> None:
    # 03:00 in Paris is 02:00 UTC in winter and 01:00 UTC in summer.
    assert next_fire("cron(0 3 * * ? *)", timezone="Europe/Paris") == utc(2026, 3, 5, 2, 0)
    assert next_fire("cron(0 3 * * ? *)", utc(2026, 7, 1), "Europe/Paris") == utc(2026, 7, 1, 1, 0)


def test_rate_and_at_expressions() -> None:
    assert parse_expression("rate(5 minutes)") == Rate(300)
    assert parse_expression("rate(1 hour)") == Rate(3600)
    assert parse_expression("rate(2 days)") == Rate(172800)
    rate = Rate(300)
    assert rate.next_after(utc(2026, 1, 1, 0, 7), anchor=utc(2026, 1, 1, 0, 0)) == utc(2026, 1, 1, 0, 10)
    at = parse_expression("at(2030-01-01T03:00:00)", "Europe/Paris")
    assert at == At(utc(2030, 1, 1, 2, 0))
    assert isinstance(at, At)
    assert at.next_after(NOW) == utc(2030, 1, 1, 2, 0)
    assert at.next_after(utc(2031, 1, 1)) is None


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("rate(1 minutes)", "singular"),
        ("rate(5 minute)", "singular"),
        ("rate(0 minutes)", "positive"),
        ("cron(0 3 * * *)", "6 fields"),
        ("cron(0 3 * * MON *)", "exactly one of"),
        ("cron(0 3 ? * ? *)", "exactly one of"),
        ("cron(61 3 * * ? *)", "outside 0-59"),
        ("cron(0 3 LW * ? *)", "not supported"),
        ("cron(0 3 ? * MON#7 *)", "not supported"),
        ("at(2030-01-01)", "expected at"),
        ("every 5 minutes", "unsupported schedule expression"),
    ],
)
def test_unknown_syntax_is_refused_clearly(expression: str, message: str) -> None:
    with pytest.raises(ScheduleExpressionError, match=message):
        parse_expression(expression)


def test_at_is_only_for_eventbridge_scheduler() -> None:
    with pytest.raises(ScheduleExpressionError, match="unsupported"):
        parse_expression("at(2030-01-01T00:00:00)", allow_at=False)
