"""Fingerprints for echo detection: what billsync sends and what Salesforce returns for it compare equal."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from billsync.domain.fingerprint import canonical_value, fingerprint
from billsync.domain.mapping import MappingContext, apply_mapping, load_mapping_dict
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[3]

# --- canonical values -----------------------------------------------------------------------------

SAME = [
    [Decimal("45.00"), 45, Decimal("45.0"), 45.0, Decimal("4.5E+1")],
    [Decimal("0.10"), 0.1, Decimal("0.1")],
    [Decimal("-0.00"), 0, Decimal(0)],
    [
        datetime(2024, 3, 1, 10, tzinfo=UTC),
        datetime(2024, 3, 1, 4, tzinfo=timezone(timedelta(hours=-6))),
        "2024-03-01T10:00:00.000+0000",
        "2024-03-01T10:00:00Z",
        "2024-03-01T10:00:00+00:00",
        "2024-03-01T05:00:00.000-05:00",
        datetime(2024, 3, 1, 10, 0, 0, 999, tzinfo=UTC),  # below a millisecond
    ],
    [datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=UTC), "2024-03-01T10:00:00.123+0000"],
    [date(2024, 3, 1), "2024-03-01"],
    [time(10, 0), "10:00:00.000Z"],
    [
        {"Billing_Id__c": "main:1"},
        {
            "attributes": {"type": "Account", "url": "/services/data/v59.0/sobjects/Account/001"},
            "Billing_Id__c": "main:1",
        },
        {"Billing_Id__c": "main:1", "Other__c": None},
    ],
    [None, "", {}, [], {"Billing_Id__c": None}, {"attributes": {"type": "Account"}}],
    [True, "true"],
    [45, Decimal("45.0"), "45"],  # a text field returns the text of the number written into it
]


@pytest.mark.parametrize("values", SAME, ids=repr)
def test_values_that_mean_the_same_have_the_same_canonical_value(values: list[Any]) -> None:
    assert len({canonical_value(value) for value in values}) == 1


DIFFERENT = [
    (True, 1),
    (False, 0),
    ("abc", "ABC"),
    ("abc", "abc "),
    (Decimal(45), "45.00"),  # text is compared as written
    (Decimal("45.1"), Decimal("45.01")),
    (datetime(2024, 3, 1, 10, tzinfo=UTC), datetime(2024, 3, 1, 10, 0, 0, 1000, tzinfo=UTC)),
    (date(2024, 3, 1), datetime(2024, 3, 1, tzinfo=UTC)),
    ("2024-03-01T10:00:00", "2024-03-01T10:00:00Z"),  # text without an offset is only text
    ({"Billing_Id__c": "main:1"}, {"Billing_Id__c": "main:2"}),
    (["a", None], ["a"]),
    ({"attributes": "a plain field"}, None),  # only Salesforce's attributes block is ignored
]


@pytest.mark.parametrize(("left", "right"), DIFFERENT, ids=repr)
def test_values_that_differ_have_different_canonical_values(left: Any, right: Any) -> None:
    assert canonical_value(left) != canonical_value(right)


def test_canonical_value_of_an_absurd_number_stays_small() -> None:
    assert (
        canonical_value(Decimal("1E+999999999"))
        == canonical_value(Decimal("10E+999999998"))
        == "1E+999999999"
    )
    assert canonical_value(Decimal("123E+2000")) == "1.23E+2002"


def test_canonical_value_refuses_naive_datetimes_and_unknown_types() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        canonical_value(datetime(2024, 3, 1))  # noqa: DTZ001 - the naive input under test
    with pytest.raises(TypeError, match="cannot fingerprint a set"):
        canonical_value({1, 2})


# --- fingerprints ---------------------------------------------------------------------------------


def test_fingerprint_ignores_key_order_null_fields_and_the_attributes_block() -> None:
    sent = {"Total__c": Decimal("45.00"), "Name": "INV-1", "Notes__c": None}
    returned = {"attributes": {"type": "Billing_Invoice__c"}, "Name": "INV-1", "Total__c": 45.0}

    assert fingerprint(sent) == fingerprint(returned)
    assert fingerprint(sent) != fingerprint({**returned, "Total__c": 45.01})
    assert fingerprint({}) == fingerprint({"A__c": None})


def test_fingerprint_of_nested_values_is_stable() -> None:
    fields = {"items": [{"quantity": Decimal("2.0"), "name": "a"}], "ship_to": {"city": "Lyon"}}
    assert fingerprint(fields) == fingerprint(
        {"ship_to": {"city": "Lyon"}, "items": [{"name": "a", "quantity": 2}]}
    )


def test_fingerprint_is_the_sha256_of_the_sorted_canonical_json_in_any_process() -> None:
    fields = {"Total__c": Decimal("51.15"), "When__c": datetime(2024, 3, 1, 10, tzinfo=UTC), "Name": "\u00e9"}
    canonical = b'{"Name":"\\u00e9","Total__c":"51.15","When__c":"2024-03-01T10:00:00.000Z"}'
    script = (
        "from datetime import UTC, datetime; from decimal import Decimal;"
        "from billsync.domain.fingerprint import fingerprint;"
        "print(fingerprint({'When__c': datetime(2024, 3, 1, 10, tzinfo=UTC), 'Name': '\\u00e9',"
        " 'Total__c': Decimal('51.15')}))"
    )

    other = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT / "shared"), "PYTHONHASHSEED": "123"},
    )

    assert fingerprint(fields) == hashlib.sha256(canonical).hexdigest()
    assert other.stdout.strip() == fingerprint(fields)


# --- the Salesforce round trip --------------------------------------------------------------------


def salesforce_json(value: Any) -> str:
    """A value as Salesforce writes it in REST JSON: datetimes in UTC with milliseconds and +0000,
    numbers as JSON numbers, empty text as null, parent links as the queried parent record."""
    if value is None or value == "":
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        moment = value.astimezone(UTC)
        return json.dumps(moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000")
    if isinstance(value, date):
        return json.dumps(value.isoformat())
    if isinstance(value, Decimal):
        text = format(value, "f")
        return text + ".0" if "." not in text and value == value.to_integral_value() else text
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        attributes = json.dumps({"type": "Account", "url": "/services/data/v59.0/sobjects/Account/001xx"})
        items = ",".join(f"{json.dumps(key)}:{salesforce_json(item)}" for key, item in value.items())
        return '{"attributes":' + attributes + "," + items + "}"
    return json.dumps(value)


def round_trip(fields: dict[str, Any]) -> dict[str, Any]:
    text = (
        "{" + ",".join(f"{json.dumps(key)}:{salesforce_json(value)}" for key, value in fields.items()) + "}"
    )
    parsed: dict[str, Any] = json.loads(text, parse_float=Decimal)
    return parsed


zones = st.sampled_from(
    [
        UTC,
        timezone(timedelta(hours=-4)),
        timezone(timedelta(hours=5, minutes=30)),
        ZoneInfo("America/Chicago"),
    ]
)
values = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**15), max_value=10**15, places=4),
    st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**6), max_value=10**6, places=0),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31)),
    st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2200, 12, 30), timezones=zones),  # noqa: DTZ001 - bounds only
    st.text(),
    st.booleans(),
    st.none(),
    st.builds(lambda vendor_id: {"Billing_Id__c": f"main:{vendor_id}"}, st.integers(min_value=1)),
)
field_names = st.from_regex(r"[A-Z][A-Za-z0-9_]{0,20}__c", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(fields=st.dictionaries(field_names, values, max_size=8))
def test_fingerprint_of_sent_values_equals_fingerprint_of_what_salesforce_returns(
    fields: dict[str, Any],
) -> None:
    assert fingerprint(fields) == fingerprint(round_trip(fields))


@settings(max_examples=150, deadline=None)
@given(
    total=st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**9), max_value=10**9, places=2),
    when=st.integers(min_value=0, max_value=4_000_000_000),
    name=st.text(max_size=120),
    customer=st.integers(min_value=1, max_value=10**9),
)
def test_fingerprint_of_mapped_values_survives_the_salesforce_round_trip(
    total: Decimal, when: int, name: str, customer: int
) -> None:
    mapping = load_mapping_dict(
        {
            "object": "invoice",
            "direction": "to_salesforce",
            "salesforce": {"object": "Billing_Invoice__c", "external_id": "Billing_Id__c"},
            "fields": [
                {"to": "Name", "from": "name", "transform": [{"truncate": 80}]},
                {"to": "Total__c", "from": "total", "transform": ["decimal", {"round": 2}]},
                {"to": "Invoice_Date__c", "from": "date", "transform": ["unix_date"]},
                {"to": "Issued_At__c", "from": "date", "transform": ["unix_datetime"]},
                {
                    "to": "Account__r",
                    "from": "customer",
                    "transform": [{"parent": {"object": "Account", "external_id": "Billing_Id__c"}}],
                },
            ],
        }
    )
    record = {"name": name, "total": str(total), "date": when, "customer": customer}

    mapped = apply_mapping(mapping, record, MappingContext("main", "1")).fields

    assert fingerprint(mapped) == fingerprint(round_trip(mapped))
