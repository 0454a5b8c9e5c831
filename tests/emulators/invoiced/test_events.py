"""Every write emits the right events, with the full object and the old values of what changed."""

from __future__ import annotations

from typing import Any

import pytest

from local.invoiced import ApiError, InvoicedEmulator
from tests.emulators.invoiced.conftest import Api


def _events(invoiced: InvoicedEmulator) -> list[dict[str, Any]]:
    return invoiced.control.events()


def _previous(event: dict[str, Any]) -> dict[str, Any]:
    previous = dict(event["data"].get("previous", {}))
    previous.pop("updated_at", None)
    return previous


def test_event_shape_ids_and_timestamps(invoiced: InvoicedEmulator, api: Api) -> None:
    customer = api.create("/customers", {"name": "Acme"})
    api.patch(f"/customers/{customer['id']}", {"name": "Acme Corp"})
    first, second = _events(invoiced)

    assert set(first) == {"id", "object", "type", "timestamp", "data", "user"}
    assert (first["object"], first["type"]) == ("event", "customer.created")
    assert isinstance(first["timestamp"], int)
    assert second["id"] > first["id"]
    assert "previous" not in first["data"]
    assert first["data"]["object"] == {**customer}
    assert second["data"]["object"]["name"] == "Acme Corp"
    assert first["user"]["id"] == -2

    fetched = api.ok(api.get(f"/events/{second['id']}"))
    assert fetched == second
    assert api.get("/events/1").json() == {"type": "invalid_request", "message": "Event was not found: 1"}


def test_customer_update_previous_holds_only_changed_fields(invoiced: InvoicedEmulator, api: Api) -> None:
    customer = api.create(
        "/customers", {"name": "Acme", "email": "a@acme.test", "metadata": {"tier": "gold"}}
    )
    api.patch(
        f"/customers/{customer['id']}",
        {"email": "b@acme.test", "name": "Acme", "metadata": {"tier": "silver"}},
    )
    updated = _events(invoiced)[-1]
    assert updated["type"] == "customer.updated"
    assert _previous(updated) == {"email": "a@acme.test", "metadata": {"tier": "gold"}}

    count = len(_events(invoiced))
    api.patch(f"/customers/{customer['id']}", {"name": "Acme"})
    assert len(_events(invoiced)) == count  # nothing changed, nothing to announce


def test_contact_events(invoiced: InvoicedEmulator, api: Api) -> None:
    customer = api.create("/customers", {"name": "Acme"})
    contact = api.create(
        f"/customers/{customer['id']}/contacts", {"name": "Nancy", "email": "nancy@acme.test"}
    )
    api.patch(f"/customers/{customer['id']}/contacts/{contact['id']}", {"phone": "555-0100"})
    api.delete(f"/customers/{customer['id']}/contacts/{contact['id']}")

    created, updated, deleted = _events(invoiced)[1:]
    assert [created["type"], updated["type"], deleted["type"]] == [
        "contact.created",
        "contact.updated",
        "contact.deleted",
    ]
    assert created["data"]["object"]["customer"]["id"] == customer["id"]
    assert _previous(updated) == {"phone": None}
    assert deleted["data"]["object"]["id"] == contact["id"]
    related = api.ok(api.get("/events", {"related_to": f"customer,{customer['id']}"}))
    assert len(related) == 4


def test_note_events(invoiced: InvoicedEmulator, api: Api) -> None:
    customer = api.create("/customers", {"name": "Acme"})
    note = api.create("/notes", {"customer_id": customer["id"], "notes": "First call"})
    api.patch(f"/notes/{note['id']}", {"notes": "Second call"})
    assert api.delete(f"/notes/{note['id']}").status_code == 204
    assert [e["type"] for e in _events(invoiced)[1:]] == ["note.created", "note.updated", "note.deleted"]
    assert _previous(_events(invoiced)[2]) == {"notes": "First call"}


def test_note_validation(api: Api) -> None:
    customer = api.create("/customers", {"name": "Acme"})
    assert api.post("/notes", {"notes": "Orphan"}).json() == {
        "type": "invalid_request",
        "message": "Missing customer!",
        "param": "customer",
    }
    assert api.post("/notes", {"customer_id": customer["id"]}).json()["message"] == "Notes is missing"
    missing = api.post("/notes", {"customer_id": 31337, "notes": "x"})
    assert (missing.status_code, missing.json()["message"]) == (404, "Customer was not found: 31337")
    assert api.get("/notes/1").status_code == 405  # notes are read through lists only


def test_payment_source_events_and_default_source(invoiced: InvoicedEmulator, api: Api) -> None:
    customer = api.create("/customers", {"name": "Acme"})
    token = invoiced.control.tokenize_card(last4="0005")
    card = api.ok(
        api.post(f"/customers/{customer['id']}/payment_sources", {"method": "card", "gateway_token": token})
    )
    assert api.delete(f"/customers/{customer['id']}/cards/{card['id']}").status_code == 204

    types = [e["type"] for e in _events(invoiced)]
    assert types == [
        "customer.created",
        "payment_source.created",
        "customer.updated",
        "payment_source.deleted",
        "customer.updated",
    ]
    assert _events(invoiced)[2]["data"]["object"]["payment_source"]["last4"] == "0005"
    assert [e["type"] for e in api.ok(api.get("/events", {"type": "payment_source"}))] == [
        "payment_source.deleted",
        "payment_source.created",
    ]


def test_subscription_events_and_totals(invoiced: InvoicedEmulator, api: Api) -> None:
    customer = api.create("/customers", {"name": "Acme"})
    api.create("/plans", {"id": "starter", "name": "Starter", "amount": 1200, "interval": "year"})
    api.create("/plans", {"id": "seat", "name": "Seat", "amount": 120, "interval": "year"})
    subscription = api.create(
        "/subscriptions",
        {"customer": customer["id"], "plan": "starter", "addons": [{"plan": "seat", "quantity": 5}]},
    )
    assert (subscription["status"], subscription["recurring_total"], subscription["mrr"]) == (
        "active",
        1800,
        150,
    )
    assert subscription["addons"][0]["object"] == "subscription_addon"
    assert subscription["period_end"] > subscription["period_start"]

    updated = api.ok(api.patch(f"/subscriptions/{subscription['id']}", {"quantity": 2}))
    assert updated["recurring_total"] == 3000
    canceled = api.ok(api.delete(f"/subscriptions/{subscription['id']}"))
    assert (canceled["status"], isinstance(canceled["canceled_at"], int)) == ("canceled", True)

    types = [e["type"] for e in _events(invoiced)[1:]]
    assert types == ["subscription.created", "subscription.updated", "subscription.deleted"]
    assert _previous(_events(invoiced)[2]) == {"quantity": 1, "recurring_total": 1800, "mrr": 150}
    refused = api.post("/subscriptions", {"customer": customer["id"], "plan": "enterprise"})
    assert refused.json() == {
        "type": "invalid_request",
        "message": "No such plan: enterprise",
        "param": "plan",
    }


def test_quiet_seeding_records_no_events(invoiced: InvoicedEmulator) -> None:
    invoiced.control.seed({"customers": [{"name": "Quiet"}]})
    assert _events(invoiced) == []
    invoiced.control.seed({"customers": [{"name": "Loud"}]}, quiet=False)
    assert [e["type"] for e in _events(invoiced)] == ["customer.created"]


def test_acting_as_a_user_goes_through_the_api_rules(invoiced: InvoicedEmulator, api: Api) -> None:
    customer = invoiced.control.act("create", "customers", data={"name": "Dashboard Co"})
    assert customer is not None
    assert customer["number"] == "CUST-0001"
    updated = invoiced.control.act("update", "customers", customer["id"], {"email": "ap@dashboard.test"})
    assert updated is not None
    assert updated["email"] == "ap@dashboard.test"
    event = _events(invoiced)[-1]
    assert event["user"]["first_name"] == "Pat"  # a team member, not the API key
    with pytest.raises(ApiError) as error:
        invoiced.control.act("update", "customers", customer["id"], {"email": "broken"})
    assert (error.value.status, error.value.param) == (400, "email")
    assert invoiced.control.act("delete", "customers", customer["id"]) is None
    assert api.get(f"/customers/{customer['id']}").status_code == 404
