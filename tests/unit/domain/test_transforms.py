"""The mapping transforms: every transform's conversions and refusals, the registry, and card safety."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from billsync.domain.transforms import (
    REDACTED,
    REGISTRY,
    Call,
    TransformConfigError,
    TransformError,
    check_kinds,
    compile_step,
    compile_steps,
    describe_value,
    is_card_number,
    key_text,
    run_steps,
)
from hypothesis import given, settings
from hypothesis import strategies as st

DOCS = Path(__file__).resolve().parents[3] / "docs" / "mapping.md"
CHICAGO_WINTER = timezone(timedelta(hours=-6))
CHICAGO_SUMMER = timezone(timedelta(hours=-5))
VISA = "4111111111111111"
FULL_WIDTH_VISA = "".join(chr(0xFF10 + int(digit)) for digit in VISA)  # the same digits, full width


def run(transform: Any, value: Any, *, sensitive: bool = False, source: str = "main") -> Any:
    """Compile one transform as a mapping file writes it and run it on a value."""
    return run_steps(value, compile_steps([transform]), Call(source, sensitive))


def refusal(transform: Any, value: Any, *, sensitive: bool = False) -> str:
    with pytest.raises(TransformError) as caught:
        run(transform, value, sensitive=sensitive)
    return caught.value.reason


# --- conversions ----------------------------------------------------------------------------------

CONVERSIONS = [
    # numbers
    ("decimal", 51.15, Decimal("51.15")),
    ("decimal", 0.1, Decimal("0.1")),
    ("decimal", 120, Decimal(120)),
    ("decimal", Decimal("45.00"), Decimal("45.00")),
    ("decimal", "120.0", Decimal("120.0")),
    ("decimal", " -12.5 ", Decimal("-12.5")),
    ("decimal", "1e3", Decimal("1e3")),
    ("decimal", ".5", Decimal("0.5")),
    ("cents", 4900, Decimal("49.00")),
    ("cents", "4905", Decimal("49.05")),
    ("cents", -150, Decimal("-1.50")),
    ("cents", Decimal(4900), Decimal("49.00")),
    ({"round": 2}, Decimal("2.675"), Decimal("2.68")),
    ({"round": 2}, Decimal("-2.675"), Decimal("-2.68")),
    ({"round": 0}, Decimal("2.5"), Decimal(3)),
    ({"round": 2}, 7, Decimal("7.00")),
    ("integer", "12", 12),
    ("integer", Decimal("12.0"), 12),
    ("integer", 12.0, 12),
    ("integer", " -3 ", -3),
    ("integer", "4.000", 4),
    # times
    ("unix_date", 1717000000, date(2024, 5, 29)),
    ("unix_date", "1717000000", date(2024, 5, 29)),
    ("unix_date", 0, date(1970, 1, 1)),
    ("unix_datetime", 1717000000, datetime(2024, 5, 29, 16, 26, 40, tzinfo=UTC)),
    ("unix_datetime", "-1", datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ("epoch_ms", 1709287200123, datetime(2024, 3, 1, 10, 0, 0, 123000, tzinfo=UTC)),
    ("epoch_ms", "1709287200000", datetime(2024, 3, 1, 10, 0, tzinfo=UTC)),
    ("iso_date", "2024-05-01", date(2024, 5, 1)),
    ("iso_date", "2024-05-01T23:30:00-04:00", date(2024, 5, 1)),
    ("iso_date", "2024-05-01 10:00:00", date(2024, 5, 1)),
    ("iso_date", date(2024, 5, 1), date(2024, 5, 1)),
    ("iso_datetime", "2024-05-01T10:43:31-04:00", datetime(2024, 5, 1, 14, 43, 31, tzinfo=UTC)),
    ("iso_datetime", "2024-03-01T10:00:00.000+0000", datetime(2024, 3, 1, 10, tzinfo=UTC)),
    ("iso_datetime", "2024-03-01T10:00:00Z", datetime(2024, 3, 1, 10, tzinfo=UTC)),
    ("iso_datetime", "2024-03-01T10:00:00.5+00:00", datetime(2024, 3, 1, 10, 0, 0, 500000, tzinfo=UTC)),
    ("iso_datetime", "2024-03-01T10:00:00.123456789Z", datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)),
    ("iso_datetime", "2024-03-01T10:00+05:30", datetime(2024, 3, 1, 4, 30, tzinfo=UTC)),
    ("iso_datetime", "2024-03-01 10:00:00+02", datetime(2024, 3, 1, 8, tzinfo=UTC)),
    (
        "iso_datetime",
        datetime(2024, 3, 1, 4, tzinfo=CHICAGO_WINTER),
        datetime(2024, 3, 1, 10, tzinfo=UTC),
    ),
    (
        {"iso_datetime": {"assume_timezone": "America/Chicago"}},
        "2024-01-15 08:00:00",
        datetime(2024, 1, 15, 14, tzinfo=UTC),
    ),
    (
        {"iso_datetime": {"assume_timezone": "America/Chicago"}},
        "2024-07-15T08:00:00",
        datetime(2024, 7, 15, 13, tzinfo=UTC),
    ),
    (
        {"iso_datetime": {"assume_timezone": "America/Chicago"}},
        "2024-07-15T08:00:00Z",
        datetime(2024, 7, 15, 8, tzinfo=UTC),
    ),
    (
        {"datetime_format": {"format": "%Y-%m-%d %H:%M:%S", "timezone": "America/Chicago"}},
        "2022-10-25 08:50:45",
        datetime(2022, 10, 25, 13, 50, 45, tzinfo=UTC),
    ),
    (
        {"datetime_format": {"format": "%Y-%m-%d %H:%M:%S", "timezone": "America/Chicago"}},
        "2024-01-05 00:00:00",
        datetime(2024, 1, 5, 6, tzinfo=UTC),
    ),
    (
        {"datetime_format": "%Y-%m-%d %H:%M:%S"},
        "2024-06-01 09:12:44",
        datetime(2024, 6, 1, 9, 12, 44, tzinfo=UTC),
    ),
    (
        {"datetime_format": {"format": "%Y-%m-%dT%H:%M:%S%z", "timezone": "America/Chicago"}},
        "2024-06-01T09:00:00+0200",
        datetime(2024, 6, 1, 7, tzinfo=UTC),
    ),
    ({"date_format": "%m/%d/%Y"}, "6/1/2024", date(2024, 6, 1)),
    ("to_unix", date(2024, 5, 29), 1716940800),
    ("to_unix", datetime(2024, 5, 29, 16, 26, 40, tzinfo=UTC), 1717000000),
    ("to_unix", datetime(2024, 5, 29, 16, 26, 40, 999999, tzinfo=UTC), 1717000000),
    ("to_unix", "2024-05-29", 1716940800),
    ("to_unix", "2024-05-29T16:26:40.000+0000", 1717000000),
    ("to_unix", datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC), -1),
    ("to_date", datetime(2024, 5, 1, 3, tzinfo=UTC), date(2024, 5, 1)),
    ({"to_date": {"timezone": "America/Chicago"}}, datetime(2024, 5, 1, 3, tzinfo=UTC), date(2024, 4, 30)),
    ("to_date", "2024-05-01T23:30:00-05:00", date(2024, 5, 1)),
    ({"to_date": {"timezone": "UTC"}}, "2024-05-01T23:30:00-05:00", date(2024, 5, 2)),
    ("to_date", "2024-05-01", date(2024, 5, 1)),
    ("to_date", date(2024, 5, 1), date(2024, 5, 1)),
    (
        {"strftime": {"format": "%Y-%m-%d %H:%M:%S", "timezone": "America/Chicago"}},
        datetime(2022, 10, 25, 13, 50, 45, tzinfo=UTC),
        "2022-10-25 08:50:45",
    ),
    ({"strftime": "%d/%m/%Y"}, date(2024, 6, 1), "01/06/2024"),
    # text
    ("upper", "usd", "USD"),
    ("lower", "USD", "usd"),
    ("strip", "  Acme \n", "Acme"),
    ({"truncate": 3}, "abcdef", "abc"),
    ({"truncate": 3}, "ab", "ab"),
    ({"truncate": 2}, "éèà", "éè"),
    ("string", "x", "x"),
    ("string", 3100, "3100"),
    ("string", Decimal("51.10"), "51.10"),
    ("string", Decimal("1E+2"), "100"),
    ("string", Decimal("-0.00"), "0.00"),
    ("string", 1e20, "100000000000000000000"),
    ("string", Decimal("1E+999999999"), "1E+999999999"),
    ("string", True, "true"),
    ("string", date(2024, 5, 1), "2024-05-01"),
    ("string", datetime(2024, 5, 1, 4, tzinfo=CHICAGO_SUMMER), "2024-05-01T09:00:00Z"),
    ("boolean", True, True),
    ("boolean", False, False),
    ("boolean", "TRUE", True),
    ("boolean", " no ", False),
    ("boolean", "yes", True),
    ("boolean", "0", False),
    ("boolean", "T", True),
    ("boolean", "F", False),
    ("boolean", 1, True),
    ("boolean", 0, False),
    ({"split_last": ":"}, "a:b:c", "c"),
    ({"split_last": "/"}, "plain", "plain"),
    ({"split_last": "::"}, "x::y", "y"),
    ("source_id", "main:3100", "3100"),
    ("source_id", "main:inv:1", "inv:1"),
    ("last4", "XXXX-XXXX-XXXX-1111", "1111"),
    ("last4", "x6789", "6789"),
    ("last4", VISA, "1111"),
    ("last4", "**** **** **** 4242", "4242"),
    ("last4", 123456, "3456"),
    ("card_safe", "hello", "hello"),
    ("card_safe", "4111111111111112", "4111111111111112"),  # fails the Luhn check
    ("card_safe", "411111111111", "411111111111"),  # 12 digits: too short to be a card
    ("card_safe", 42, 42),
    ("card_safe", {"a": 1}, {"a": 1}),
    # maps and links
    ({"picklist": {"draft": "Draft", "paid": "Paid"}}, "paid", "Paid"),
    ({"picklist": {1: "Open", 2: "Paid"}}, 2, "Paid"),
    ({"picklist": {1: "Open", 2: "Paid"}}, "2", "Paid"),
    ({"picklist": {1: "Open", 2: "Paid"}}, Decimal("2.0"), "Paid"),
    ({"picklist": {"1.5": "odd"}}, Decimal("1.50"), "odd"),
    ({"picklist": {True: "Yes", False: "No"}}, True, "Yes"),
    ({"picklist": {"true": "Yes"}}, True, "Yes"),
    ({"picklist": {"a": None}}, "a", None),
    ({"picklist": {"map": {"a": "A"}, "default": "Other"}}, "b", "Other"),
    ({"picklist": {"map": {"a": "A"}, "default": None}}, "b", None),
    ({"picklist": {"map": {"a": "A"}, "passthrough": True}}, "b", "b"),
    ({"picklist": {"map": {"a": "A"}, "passthrough": True}}, "a", "A"),
    ({"picklist": {"map": "not a map"}}, "map", "not a map"),  # "map" is just a key here
    ({"parent": {"object": "Account", "external_id": "Billing_Id__c"}}, 3100, {"Billing_Id__c": "main:3100"}),
    (
        {"parent": {"object": "Account", "external_id": "Billing_Id__c"}},
        "cus_1",
        {"Billing_Id__c": "main:cus_1"},
    ),
    ("external_id", 3100, "main:3100"),
    ("external_id", " 77 ", "main:77"),
    # other
    ({"default": "NET 30"}, None, "NET 30"),
    ({"default": "NET 30"}, "NET 15", "NET 15"),
    ({"default": 0}, None, 0),
    ({"null_if": ""}, "", None),
    ({"null_if": ["", "0000-00-00 00:00:00"]}, "0000-00-00 00:00:00", None),
    ({"null_if": [0]}, Decimal("0.00"), None),
    ({"null_if": [""]}, "x", "x"),
    ("json", {"b": [2, 3], "a": Decimal("1.10")}, '{"a":1.1,"b":[2,3]}'),
    ("json", [date(2024, 1, 2), None, True], '["2024-01-02",null,true]'),
    ("json", {"n": Decimal("0.1000000000000000000001")}, '{"n":"0.1000000000000000000001"}'),
    ("json", {"é": "ü"}, '{"é":"ü"}'),
    ({"join": ", "}, ["a", None, 3, Decimal("1.50")], "a, 3, 1.50"),
    ({"join": ";"}, ["A", "B"], "A;B"),
    ({"join": ";"}, [], None),
    ({"join": ";"}, [None], None),
]


@pytest.mark.parametrize(("transform", "value", "expected"), CONVERSIONS, ids=repr)
def test_transform_converts(transform: Any, value: Any, expected: Any) -> None:
    result = run(transform, value)
    assert result == expected
    assert type(result) is type(expected)
    if isinstance(result, datetime):
        assert result.utcoffset() == timedelta(0)


def test_every_transform_has_a_conversion_test() -> None:
    tested = {next(iter(t)) if isinstance(t, dict) else t for t, _, _ in CONVERSIONS}
    assert tested == set(REGISTRY)


@pytest.mark.parametrize("name", sorted(set(REGISTRY) - {"default"}))
def test_a_null_value_skips_every_transform_but_default(name: str) -> None:
    step = compile_step(yaml.safe_load(REGISTRY[name].example))
    assert run_steps(None, [step], Call("main")) is None


def test_default_runs_on_null_and_later_steps_see_its_value() -> None:
    steps = compile_steps([{"default": 0}, "decimal", {"round": 2}])
    assert run_steps(None, steps, Call("main")) == Decimal("0.00")


def test_transforms_run_left_to_right() -> None:
    steps = compile_steps(["strip", "upper", {"truncate": 3}])
    assert run_steps("  usdx ", steps, Call("main")) == "USD"


# --- refusals -------------------------------------------------------------------------------------

REFUSALS = [
    ("decimal", "abc", "'abc' is not a number"),
    ("decimal", "", "'' is not a number"),
    ("decimal", "1,234.56", "is not a number"),
    ("decimal", True, "true is a boolean, not a number"),
    ("decimal", "NaN", "is not a number"),
    ("decimal", Decimal("Infinity"), "is not a finite number"),
    ("decimal", float("nan"), "is not a finite number"),
    ("decimal", [1], "a list of 1 is not a number"),
    ("decimal", "1e999999999", "is out of range"),
    ("decimal", Decimal("1E-200"), "is out of range"),
    ("decimal", "\u0661\u0662", "is not a number"),  # Arabic-Indic digits are not billing numbers
    ("cents", "49.5", "is not a whole number of cents"),
    ("cents", 49.0, "is not a whole number of cents"),
    ("cents", Decimal("0.5"), "is not a whole number of cents"),
    ("cents", True, "is not a whole number of cents"),
    ("cents", "abc", "is not a whole number of cents"),
    ({"round": 2}, "2.5", "is not a number (convert it with decimal first)"),
    ({"round": 2}, False, "is a boolean"),
    ({"round": 18}, Decimal("1E+20"), "is too large to round to 18 places"),
    ("integer", "12.5", "has a fractional part"),
    ("integer", 12.5, "has a fractional part"),
    ("integer", "twelve", "is not a whole number"),
    ("integer", True, "is a boolean"),
    ("integer", "9" * 5000, "is out of range"),
    ("unix_date", "2024-05-01", "is not Unix seconds"),
    ("unix_date", 1.5, "is not Unix seconds"),
    ("unix_date", True, "is not Unix seconds"),
    ("unix_date", "1" * 5000, "is not Unix seconds"),
    ("unix_datetime", 10**15, "is out of range for a date"),
    ("epoch_ms", "soon", "is not Unix milliseconds"),
    ("epoch_ms", 10**18, "is out of range for a date"),
    ("epoch_ms", False, "is not Unix milliseconds"),
    ("iso_date", "2024-13-01", "is not an ISO 8601 date or datetime"),
    ("iso_date", "01/05/2024", "is not an ISO 8601 date or datetime"),
    ("iso_date", "20240501", "is not an ISO 8601 date or datetime"),
    ("iso_date", datetime(2024, 5, 1, tzinfo=UTC), "is a datetime (use to_date)"),
    ("iso_date", 20240501, "is not text"),
    ("iso_datetime", "2024-03-01T10:00:00", "has no time zone offset (set assume_timezone)"),
    ("iso_datetime", "2024-03-01", "is a date without a time (use iso_date)"),
    ("iso_datetime", "2024-03-01T25:00:00Z", "is not an ISO 8601 date or datetime"),
    ("iso_datetime", "2024-03-01T10:00:00+24:00", "is not an ISO 8601 date or datetime"),
    ("iso_datetime", "yesterday", "is not an ISO 8601 date or datetime"),
    ("iso_datetime", datetime(2024, 3, 1, 10), "has no time zone offset"),  # noqa: DTZ001 - the naive input under test
    ("iso_datetime", date(2024, 3, 1), "is a date without a time"),
    ("iso_datetime", 1709287200, "is not text"),
    ({"datetime_format": "%Y-%m-%d %H:%M:%S"}, "2024-06-01", "does not match the format"),
    ({"datetime_format": "%Y-%m-%d %H:%M:%S"}, 5, "is not text"),
    ({"date_format": "%m/%d/%Y"}, "2024-06-01", "does not match the format"),
    ("to_unix", "2024-03-01T10:00:00", "has no time zone offset"),
    ("to_unix", datetime(2024, 3, 1), "has no time zone"),  # noqa: DTZ001 - the naive input under test
    ("to_unix", "soon", "is not an ISO 8601 date or datetime"),
    ("to_unix", 1709287200, "is not a date or datetime"),
    ("to_date", datetime(2024, 3, 1), "has no time zone"),  # noqa: DTZ001 - the naive input under test
    ("to_date", 5, "is not a date or datetime"),
    ({"strftime": "%Y"}, "2024-03-01", "is not a date or datetime"),
    ({"strftime": "%Y"}, datetime(2024, 3, 1), "has no time zone"),  # noqa: DTZ001 - the naive input under test
    ("upper", 5, "5 is not text (upper needs text; use string first)"),
    ("lower", b"x", "is not text"),
    ("strip", 1.5, "is not text"),
    ({"truncate": 5}, 123456, "is not text"),
    ("string", {"a": 1}, "an object is not a single value (use json or join)"),
    ("string", [1], "a list of 1 is not a single value"),
    ("string", Decimal("NaN"), "is not a finite number"),
    ("boolean", "maybe", "'maybe' is not a boolean"),
    ("boolean", 2, "2 is not a boolean"),
    ("boolean", 1.0, "is not a boolean"),
    ({"split_last": ":"}, 5, "is not text"),
    ("source_id", "3100", "is not a billsync id"),
    ("source_id", "main:", "is not a billsync id"),
    ("source_id", ":3100", "is not a billsync id"),
    ("source_id", 3100, "is not text"),
    ("last4", "x12", "at least 4 digits"),
    ("last4", "card ending 1234", "is not a card or account number"),
    ("last4", True, "is not a card or account number"),
    ("card_safe", VISA, "looks like a full card number"),
    ("card_safe", int(VISA), "looks like a full card number"),
    ("card_safe", "4111 1111 1111 1111", "looks like a full card number"),
    ("card_safe", "4111-1111-1111-1111", "looks like a full card number"),
    ("card_safe", FULL_WIDTH_VISA, "looks like a full card number"),
    ("card_safe", "4111\u20131111\u20131111\u20131111", "looks like a full card number"),  # en dashes
    ({"picklist": {"a": "A", "b": "B"}}, "x", "unknown value 'x' for picklist (known: a, b)"),
    ({"picklist": {"a": "A"}}, "A", "unknown value 'A' for picklist"),  # keys are case-sensitive
    ({"picklist": {"a": "A"}}, {"a": 1}, "unknown value an object for picklist"),
    ({"picklist": {f"k{i}": i for i in range(25)}}, "x", "k19, and 5 more)"),
    ({"parent": {"object": "Account", "external_id": "Billing_Id__c"}}, True, "is not an id"),
    ({"parent": {"object": "Account", "external_id": "Billing_Id__c"}}, "  ", "an empty id"),
    ({"parent": {"object": "Account", "external_id": "Billing_Id__c"}}, 1.5, "is not an id"),
    ("external_id", {"id": 1}, "is not an id"),
    ("json", "text", "is not an object or a list"),
    ("json", {"a": {1, 2}}, "cannot be written as JSON"),
    ("json", {"a": Decimal("NaN")}, "is not a finite number"),
    ({"join": ","}, "a,b", "is not a list"),
    ({"join": ","}, [["nested"]], "is not a single value"),
]


@pytest.mark.parametrize(("transform", "value", "reason"), REFUSALS, ids=repr)
def test_transform_refuses(transform: Any, value: Any, reason: str) -> None:
    assert reason in refusal(transform, value)


def test_every_transform_that_can_refuse_has_a_refusal_test() -> None:
    tested = {next(iter(t)) if isinstance(t, dict) else t for t, _, _ in REFUSALS}
    assert set(REGISTRY) - tested == {"default", "null_if"}  # these two accept every value


def test_refusal_of_a_sensitive_value_redacts_it() -> None:
    assert refusal("decimal", "secret-abc", sensitive=True) == f"{REDACTED} is not a number"
    assert refusal({"picklist": {"a": "A"}}, "secret", sensitive=True) == (
        f"unknown value {REDACTED} for picklist (known: a)"
    )
    assert "secret" not in refusal("string", {"secret": 1}, sensitive=True)
    assert "secret" not in refusal({"join": ","}, [["secret"]], sensitive=True)


def test_refusals_never_show_card_numbers_or_long_values() -> None:
    assert VISA not in refusal("decimal", f"card {VISA}")
    assert "1111" not in refusal("decimal", "pay with 4111 1111 1111 1111 please")
    long_reason = refusal("decimal", "x" * 500)
    assert len(long_reason) < 100


# --- arguments, checked when the mapping is loaded ------------------------------------------------

CONFIG_REFUSALS = [
    ("uper", "unknown transform 'uper': did you mean 'upper'?"),
    ("zzz", "unknown transform 'zzz': see docs/mapping.md for the list"),
    ("coalesce", "write `from: [first.path, second.path]`"),
    ("reverse_picklist", "write a picklist in the to_billing mapping itself"),
    ({"truncate": -1}, "should be greater than or equal to 1 (got -1)"),
    ({"truncate": 0}, "should be greater than or equal to 1"),
    ({"truncate": "80"}, "should be a valid integer (got '80')"),
    ({"truncate": True}, "should be a valid integer"),
    ("truncate", "truncate needs arguments, e.g. {truncate: 80}"),
    ({"round": 2.5}, "should be a valid integer"),
    ({"round": -1}, "should be greater than or equal to 0"),
    ({"round": 19}, "should be less than or equal to 18"),
    ({"upper": 3}, "upper takes no arguments"),
    ({"upper": {}}, "upper takes no arguments"),
    ({"picklist": {}}, "the map is empty"),
    ({"picklist": {"map": {}}}, "the map is empty"),
    ({"picklist": {"a": "A", "default": "X"}}, "put the values under map:"),
    ({"picklist": {"map": {"a": "A"}, "default": "X", "passthrough": True}}, "not both"),
    ({"picklist": {"map": {"a": "A"}, "fallback": "X"}}, "unknown key 'fallback'"),
    ({"picklist": {1: "A", "1": "B"}}, "the key '1' appears twice"),
    ({"picklist": {"a": ["A"]}}, "expected a single value"),
    ({"picklist": {None: "None"}}, "null never reaches a picklist"),
    ({"picklist": "a"}, "should be a mapping of keys to values (got 'a')"),
    ({"parent": {"object": "Account"}}, "'external_id' is required"),
    ({"parent": {"object": "Account", "external_id": "Billing Id"}}, "is not a Salesforce API name"),
    ({"parent": "Account"}, "should be a mapping of keys to values"),
    ({"datetime_format": {"format": "%Y-%m-%d", "timezone": "Mars/Base"}}, "unknown time zone 'Mars/Base'"),
    ({"datetime_format": {"format": "%H:%M"}}, "has no year"),
    ({"datetime_format": {"format": "%Y-%m-%d", "tz": "UTC"}}, "unknown key 'tz'"),
    ({"datetime_format": {"timezone": "UTC"}}, "'format' is required"),
    ({"date_format": "%Y %Q"}, "cannot read back the text it writes"),
    ({"strftime": "plain"}, "has no % directive"),
    ({"iso_datetime": {"assume_timezone": "Nowhere"}}, "unknown time zone"),
    ({"iso_datetime": {"assume": "UTC"}}, "unknown key 'assume'"),
    ({"to_date": {"timezone": 5}}, "should be a valid string"),
    ({"split_last": ""}, "should have at least 1 character"),
    ({"join": 1}, "should be a valid string"),
    ({"default": None}, "default needs arguments"),
    ({"default": [1]}, "expected a single value"),
    ({"null_if": []}, "give one or more values"),
    ({"null_if": [None]}, "null is already null"),
    ({"upper": None, "lower": None}, "write a transform as its name"),
    (["upper"], "write a transform as its name"),
    ({5: None}, "a transform name must be text"),
]


@pytest.mark.parametrize(("raw", "message"), CONFIG_REFUSALS, ids=repr)
def test_transform_written_wrongly_is_refused(raw: Any, message: str) -> None:
    with pytest.raises(TransformConfigError) as caught:
        compile_step(raw)
    assert message in str(caught.value)


def test_argument_problems_carry_the_path_below_the_transform() -> None:
    with pytest.raises(TransformConfigError) as caught:
        compile_steps(["upper", {"parent": {"object": "Account"}}, {"truncate": -1}])
    assert [path for path, _ in caught.value.problems] == [(1, "parent", "external_id"), (2, "truncate")]


def test_optional_arguments_can_be_left_out() -> None:
    assert compile_step("iso_datetime").args is None
    assert compile_step({"to_date": None}).args is None


def test_a_single_transform_need_not_be_a_list() -> None:
    assert [step.name for step in compile_steps("upper")] == ["upper"]
    assert compile_steps(None) == ()


def test_a_step_remembers_how_it_was_written() -> None:
    written = [{"truncate": 80}, "upper", {"picklist": {"a": "A"}}]
    assert [step.as_written() for step in compile_steps(written)] == written


# --- kinds, checked when the mapping is loaded ----------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "start", "kind", "problem"),
    [
        (["decimal", {"round": 2}], "any", "number", None),
        (
            ["upper", {"round": 2}],
            "any",
            "number",
            "round takes an integer or a decimal number, but the value is text here after upper",
        ),
        (
            ["unix_date", "upper"],
            "any",
            "text",
            "upper takes text, but the value is a date here after unix_date",
        ),
        (
            [{"round": 2}],
            "text",
            "number",
            "round takes an integer or a decimal number, but the value is text here",
        ),
        (["decimal", "string", {"truncate": 5}], "any", "text", None),
        (["iso_datetime", "to_unix"], "any", "integer", None),
        (
            [{"parent": {"object": "A", "external_id": "B__c"}}, "upper"],
            "any",
            "text",
            "upper takes text, but the value is a parent link here after parent",
        ),
        ([{"picklist": {"a": "A", "b": "B"}}], "any", "text", None),
        ([{"picklist": {"a": 1, "b": 2}}], "any", "integer", None),
        ([{"picklist": {"a": 1, "b": "B"}}], "any", "any", None),
        ([{"picklist": {"map": {"a": "A"}, "passthrough": True}}], "integer", "any", None),
        ([{"picklist": {"map": {"a": "A"}, "default": "Z"}}], "any", "text", None),
        (["card_safe"], "integer", "integer", None),
        ([{"default": "x"}], "text", "text", None),
        ([{"default": 0}], "text", "any", None),
        (["json"], "text", "text", "json takes a list or an object, but the value is text here"),
    ],
    ids=repr,
)
def test_kinds_flow_through_a_transform_list(
    steps: list[Any], start: Any, kind: str, problem: str | None
) -> None:
    found, problems = check_kinds(compile_steps(steps), start)
    assert found == kind
    assert [message for _, message in problems] == ([problem] if problem else [])


# --- the registry and its documentation -----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registry_entry_is_complete_and_its_example_compiles(name: str) -> None:
    entry = REGISTRY[name]
    assert entry.summary
    assert entry.accepts
    step = compile_step(yaml.safe_load(entry.example))
    assert step.name == name


def test_docs_describe_exactly_the_registered_transforms() -> None:
    documented = set(
        re.findall(r"^#### `([a-z_0-9]+)`$", DOCS.read_text(encoding="utf-8"), flags=re.MULTILINE)
    )
    assert documented == set(REGISTRY)


def test_docs_show_each_transform_with_arguments_as_the_registry_does() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for entry in REGISTRY.values():
        if entry.args is not None and entry.args_required:
            assert entry.example in text, entry.name


# --- card safety ----------------------------------------------------------------------------------


def _luhn_complete(body: str) -> str:
    """The body followed by the check digit that makes it pass the Luhn check."""
    for check in "0123456789":
        candidate = body + check
        total = 0
        for position, char in enumerate(reversed(candidate)):
            digit = int(char) * (2 if position % 2 else 1)
            total += digit - 9 if digit > 9 else digit
        if total % 10 == 0:
            return candidate
    raise AssertionError("unreachable: one check digit always completes the number")


card_numbers = st.integers(min_value=12, max_value=18).flatmap(
    lambda length: st.text(alphabet="0123456789", min_size=length, max_size=length).map(_luhn_complete)
)


@st.composite
def formatted(draw: st.DrawFn, digits: str) -> str:
    """The digits with spaces and dashes sprinkled between and around them."""
    separators = st.text(alphabet=" -\u2013\u00a0", max_size=2)
    parts = [draw(separators)]
    for digit in digits:
        parts += [digit, draw(separators)]
    return "".join(parts)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), digits=card_numbers)
def test_card_safe_never_lets_a_card_number_through_nor_shows_it(data: st.DataObject, digits: str) -> None:
    value = data.draw(formatted(digits))
    assert is_card_number(value)
    with pytest.raises(TransformError) as caught:
        run("card_safe", value)
    assert caught.value.reason == "looks like a full card number"
    assert digits not in str(caught.value)
    assert digits[-4:] not in str(caught.value)


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_card_safe_passes_anything_else_unchanged(text: str) -> None:
    if not is_card_number(text):
        assert run("card_safe", text) == text


@given(digits=card_numbers)
def test_describe_value_never_shows_a_card_number(digits: str) -> None:
    for value in (digits, f"note: {digits} thanks", int(digits)):
        assert digits not in describe_value(value)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "null"),
        (True, "true"),
        ("abc", "'abc'"),
        (Decimal("1.50"), "1.50"),
        (date(2024, 1, 2), "2024-01-02"),
        (time(10, 30), "10:30:00"),
        ({"a": 1}, "an object"),
        ([1, 2], "a list of 2"),
        ("x" * 100, "'" + "x" * 57 + "...'"),
    ],
)
def test_describe_value(value: Any, shown: str) -> None:
    assert describe_value(value) == shown
    assert describe_value(value, sensitive=True) == REDACTED


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1, "1"),
        ("1", "1"),
        (Decimal("1.0"), "1"),
        (1.0, "1"),
        (Decimal("1.50"), "1.5"),
        (True, "true"),
        ("x", "x"),
    ],
)
def test_key_text_compares_numbers_by_value(value: Any, text: str) -> None:
    assert key_text(value) == text
