"""The official Invoiced Python SDK works against the emulator unchanged."""

from __future__ import annotations

import invoiced as sdk
import pytest

from local.invoiced import InvoicedEmulator


def test_sdk_creates_retrieves_saves_and_deletes_a_customer(
    invoiced_sdk: sdk.Client, invoiced: InvoicedEmulator
) -> None:
    customer = invoiced_sdk.Customer.create(name="Acme", email="billing@acme.test", metadata={"crm": "001A"})
    assert customer.number == "CUST-0001"

    fetched = invoiced_sdk.Customer.retrieve(customer.id)
    fetched.name = "Acme Corp"
    assert fetched.save() is True
    assert fetched.name == "Acme Corp"
    assert fetched.metadata == {"crm": "001A"}  # save() sent only the changed key

    updated = next(e for e in invoiced.control.events() if e["type"] == "customer.updated")
    assert set(updated["data"]["previous"]) <= {"name", "updated_at"}
    assert updated["data"]["previous"]["name"] == "Acme"

    assert fetched.delete() is True
    with pytest.raises(sdk.errors.InvalidRequestError) as error:
        invoiced_sdk.Customer.retrieve(customer.id)
    assert error.value.status_code == 404
    assert str(error.value) == f"(404): Customer was not found: {customer.id}"


def test_sdk_list_follows_link_headers_across_pages(invoiced_sdk: sdk.Client) -> None:
    created = [invoiced_sdk.Customer.create(name=f"Customer {i}").id for i in range(5)]

    seen: list[int] = []
    page = 1
    while True:
        customers, metadata = invoiced_sdk.Customer.list(per_page=2, page=page)
        assert metadata.total_count == 5
        seen += [c.id for c in customers]
        if "next" not in metadata.links:
            break
        assert metadata.links["next"].endswith(f"page={page + 1}&per_page=2")
        page += 1

    assert seen == created
    assert page == 3


def test_sdk_nested_contacts(invoiced_sdk: sdk.Client) -> None:
    customer = invoiced_sdk.Customer.create(name="Acme")
    contact = customer.contacts().create(name="Nancy", email="nancy@acme.test")
    assert contact.object == "contact"

    contacts, metadata = customer.contacts().list()
    assert [c.id for c in contacts] == [contact.id]
    assert metadata.total_count == 1

    fetched = customer.contacts().retrieve(contact.id)
    fetched.title = "Controller"
    assert fetched.save() is True
    assert customer.contacts().retrieve(contact.id).title == "Controller"

    assert fetched.delete() is True
    assert customer.contacts().list()[1].total_count == 0


def test_sdk_notes_on_customers_and_invoices(invoiced_sdk: sdk.Client) -> None:
    customer = invoiced_sdk.Customer.create(name="Acme")
    invoice = invoiced_sdk.Invoice.create(customer=customer.id, items=[{"name": "Work", "unit_cost": 10}])

    customer_note = invoiced_sdk.Note.create(customer_id=customer.id, notes="Called about terms")
    invoice_note = invoiced_sdk.Note.create(invoice_id=invoice.id, notes="PO pending")
    assert (customer_note.customer, customer_note.invoice) == (customer.id, None)
    assert (invoice_note.customer, invoice_note.invoice) == (customer.id, invoice.id)

    customer_notes, _ = customer.list_notes().list()
    invoice_notes, _ = invoice.notes().list()
    assert {n.id for n in customer_notes} == {customer_note.id, invoice_note.id}
    assert [n.id for n in invoice_notes] == [invoice_note.id]

    customer_note.notes = "Agreed NET 30"  # PATCH /notes/:id
    assert customer_note.save() is True
    assert customer_note.notes == "Agreed NET 30"
    assert customer_note.delete() is True  # DELETE /notes/:id
    assert [n.id for n in customer.list_notes().list()[0]] == [invoice_note.id]


def test_sdk_idempotency_key_replays_the_first_create(
    invoiced_sdk: sdk.Client, invoiced: InvoicedEmulator
) -> None:
    first = invoiced_sdk.Customer.create(idempotency_key="create-acme-1", name="Acme")
    second = invoiced_sdk.Customer.create(idempotency_key="create-acme-1", name="Acme")

    assert second.id == first.id
    assert invoiced_sdk.Customer.list()[1].total_count == 1
    assert [e["type"] for e in invoiced.control.events()] == ["customer.created"]


def test_sdk_voids_invoices_and_payments_and_cancels_subscriptions(invoiced_sdk: sdk.Client) -> None:
    customer = invoiced_sdk.Customer.create(name="Acme")
    invoice = invoiced_sdk.Invoice.create(customer=customer.id, items=[{"name": "Work", "unit_cost": 100}])
    assert invoice.void() is True
    assert (invoice.status, invoice.balance) == ("voided", 0)

    other = invoiced_sdk.Invoice.create(customer=customer.id, items=[{"name": "Work", "unit_cost": 40}])
    payment = invoiced_sdk.Payment.create(
        amount=40, customer=customer.id, applied_to=[{"type": "invoice", "invoice": other.id, "amount": 40}]
    )
    assert invoiced_sdk.Invoice.retrieve(other.id).status == "paid"
    assert payment.delete() is True  # DELETE voids and answers 200 with the payment
    assert payment.voided is True
    assert invoiced_sdk.Invoice.retrieve(other.id).status == "not_sent"

    invoiced_sdk.Plan.create(id="starter", name="Starter", amount=49, interval="month")
    subscription = invoiced_sdk.Subscription.create(customer=customer.id, plan="starter")
    assert subscription.cancel() is True
    assert subscription.status == "canceled"


def test_sdk_payment_sources(invoiced_sdk: sdk.Client, invoiced: InvoicedEmulator) -> None:
    customer = invoiced_sdk.Customer.create(name="Acme")
    token = invoiced.control.tokenize_card(brand="Visa", last4="1881", exp_month=7, exp_year=2031)

    card = customer.payment_sources().create(method="card", gateway_token=token)
    assert isinstance(card, sdk.Card)
    assert (card.brand, card.last4, card.exp_month, card.exp_year) == ("Visa", "1881", 7, 2031)

    sources, metadata = customer.payment_sources().list()
    assert [s.id for s in sources] == [card.id]
    assert metadata.total_count == 1

    assert sources[0].delete() is True
    assert customer.payment_sources().list()[1].total_count == 0


def test_sdk_maps_errors_to_its_exception_types(invoiced_sdk: sdk.Client, invoiced: InvoicedEmulator) -> None:
    with pytest.raises(sdk.errors.InvalidRequestError) as invalid:
        invoiced_sdk.Customer.create(email="no-name@acme.test")
    assert invalid.value.error == {"type": "invalid_request", "message": "Name is missing", "param": "name"}

    wrong = sdk.Client("not-the-key")
    wrong.api_url = invoiced.base_url
    with pytest.raises(sdk.errors.AuthenticationError):
        wrong.Customer.list()

    invoiced.control.set_faults(bursts={"rate_limited": 1, "server_error": 1})
    with pytest.raises(sdk.errors.RateLimitError):
        invoiced_sdk.Customer.list()
    with pytest.raises(sdk.errors.ApiError) as server:
        invoiced_sdk.Customer.list()
    assert server.value.status_code == 500
