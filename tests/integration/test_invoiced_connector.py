"""The Invoiced connector against the Invoiced emulator, over HTTPS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from billsync.connectors.base import BillingApiError, ConnectorContext
from billsync.connectors.invoiced import InvoicedConnector, build
from billsync.domain.models import RecordState
from billsync.domain.rules import Window

from local.invoiced import InvoicedEmulator


@pytest.fixture
def connector(invoiced: InvoicedEmulator) -> InvoicedConnector:
    context = ConnectorContext(
        source_key="main",
        settings={"base_url": invoiced.base_url},
        secret={"api_key": invoiced.api_key},
        ca_file=invoiced.ca_file,
    )
    return build(context)


def seed_customers(invoiced: InvoicedEmulator, count: int) -> list[int]:
    data = {"customers": [{"name": f"Customer {n}", "ref": f"c{n}"} for n in range(count)]}
    return invoiced.control.seed(data)["customers"]


def test_a_first_read_pages_through_every_record_by_id(
    invoiced: InvoicedEmulator, connector: InvoicedConnector
) -> None:
    ids = seed_customers(invoiced, 230)
    window = Window(start=None, end=datetime.now(UTC) + timedelta(minutes=1))
    pages = list(connector.changes("customer", window, page_size=100))
    assert [len(p.records) for p in pages] == [100, 100, 30]
    assert [r.id for p in pages for r in p.records] == [str(i) for i in sorted(ids)]
    assert pages[-1].position == "snapshot:3"


def test_a_first_read_resumes_after_its_position(
    invoiced: InvoicedEmulator, connector: InvoicedConnector
) -> None:
    seed_customers(invoiced, 230)
    window = Window(start=None, end=datetime.now(UTC) + timedelta(minutes=1))
    resumed = list(connector.changes("customer", window, page_size=100, position="snapshot:2"))
    assert [len(p.records) for p in resumed] == [30]


def test_incremental_reads_come_from_the_events_feed_with_deletions(
    invoiced: InvoicedEmulator, connector: InvoicedConnector
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=2)
    customer = invoiced.control.act("create", "customers", data={"name": "Acme"})
    invoice = invoiced.control.act(
        "create",
        "invoices",
        data={"customer": customer["id"], "items": [{"name": "Plan", "quantity": 1, "unit_cost": 51.15}]},
    )
    invoiced.control.act("update", "invoices", invoice["id"], data={"purchase_order": "PO-7"})
    doomed = invoiced.control.act(
        "create",
        "invoices",
        data={"customer": customer["id"], "items": [{"name": "X", "quantity": 1, "unit_cost": 1}]},
    )
    invoiced.control.act("delete", "invoices", doomed["id"])
    window = Window(start=start, end=datetime.now(UTC) + timedelta(seconds=2))
    records = {r.id: r for p in connector.changes("invoice", window, page_size=100) for r in p.records}
    assert records[str(invoice["id"])].data["purchase_order"] == "PO-7"
    assert records[str(invoice["id"])].parents == {"customer": str(customer["id"])}
    assert records[str(doomed["id"])].state is RecordState.DELETED


def test_a_backfill_is_counted_with_one_request(
    invoiced: InvoicedEmulator, connector: InvoicedConnector
) -> None:
    seed_customers(invoiced, 130)
    everything = Window(start=None, end=datetime.now(UTC) + timedelta(minutes=1))
    assert connector.count_changes("customer", everything) == 130
    later = datetime.now(UTC) + timedelta(seconds=5)
    invoiced.control.advance_clock(10)
    invoiced.control.act("create", "customers", data={"name": "Latecomer"})
    assert connector.count_changes("customer", Window(start=later, end=later + timedelta(minutes=1))) == 1
    # Notes' list takes no time filter and cards are listed per customer: no count, never a wrong one.
    assert connector.count_changes("note", Window(start=later, end=later + timedelta(minutes=1))) is None
    assert connector.count_changes("card", everything) is None
    assert invoiced.control.calls().get("GET /customers") == 2


def test_fetch_reads_the_latest_state_and_reports_missing_records(
    invoiced: InvoicedEmulator, connector: InvoicedConnector
) -> None:
    customer = invoiced.control.act("create", "customers", data={"name": "Acme"})
    found = connector.fetch("customer", [str(customer["id"]), "999999"])
    assert found[str(customer["id"])] is not None
    assert found[str(customer["id"])].data["name"] == "Acme"
    assert found["999999"] is None


def test_create_is_idempotent_on_its_key(invoiced: InvoicedEmulator, connector: InvoicedConnector) -> None:
    payload = {"name": "Acme", "metadata": {"salesforce_id": "001000000000001AAA"}}
    first = connector.create("customer", payload, idempotency_key="billsync-main-customer-001000000000001")
    again = connector.create("customer", payload, idempotency_key="billsync-main-customer-001000000000001")
    assert first.id == again.id
    assert first.salesforce_id == "001000000000001AAA"
    assert len(invoiced.control.dump()["customers"]) == 1


def test_contacts_are_written_under_their_customer(
    invoiced: InvoicedEmulator, connector: InvoicedConnector
) -> None:
    customer = invoiced.control.act("create", "customers", data={"name": "Acme"})
    contact = connector.create(
        "contact",
        {"customer": customer["id"], "name": "Ana Lee", "email": "ana@acme.test"},
        idempotency_key="billsync-c1-k",
    )
    updated = connector.update("contact", contact.id, {"customer": customer["id"], "title": "CFO"})
    assert updated.data["title"] == "CFO"
    connector.delete("contact", contact.id, mode="delete", parent_id=str(customer["id"]))
    assert (
        connector.fetch("contact", [contact.id], parents={contact.id: str(customer["id"])})[contact.id]
        is None
    )


def test_validation_errors_carry_the_field(connector: InvoicedConnector) -> None:
    with pytest.raises(BillingApiError) as raised:
        connector.create("customer", {"email": "no-name@acme.test"}, idempotency_key="billsync-bad-1")
    assert raised.value.status == 400
    assert raised.value.field == "name"
    assert not raised.value.retryable


def test_rate_limits_are_retried_then_reported_as_retryable(
    invoiced: InvoicedEmulator, connector: InvoicedConnector
) -> None:
    connector.client.sleep = lambda _seconds: None
    invoiced.control.set_faults(bursts={"rate_limited": 2})
    assert connector.fetch("customer", ["1"])["1"] is None  # two 429s, then an answer
    invoiced.control.set_faults(bursts={"rate_limited": 10})
    with pytest.raises(BillingApiError) as raised:
        connector.fetch("customer", ["1"])
    assert raised.value.retryable
    assert raised.value.code == "RATE_LIMITED"


def test_a_proxy_page_instead_of_json_is_a_retryable_error(
    invoiced: InvoicedEmulator, connector: InvoicedConnector
) -> None:
    connector.client.sleep = lambda _seconds: None
    invoiced.control.set_faults(bursts={"bad_gateway_html": 10})
    with pytest.raises(BillingApiError) as raised:
        connector.fetch("customer", ["1"])
    assert raised.value.status == 502
    assert raised.value.retryable
