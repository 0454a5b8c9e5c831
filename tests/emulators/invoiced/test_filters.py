"""List filters: updated_after/updated_before, filter[...], metadata[...], sort, dates, and the events feed."""

from __future__ import annotations

import pytest

from local.invoiced import InvoicedEmulator
from tests.emulators.invoiced.conftest import Api

T = 1_700_000_000


def _seed_timeline(invoiced: InvoicedEmulator) -> dict[str, int]:
    refs: dict[str, int] = invoiced.control.seed(
        {
            "customers": [
                {"ref": "before", "name": "Before", "created_at": T - 10, "updated_at": T - 1},
                {"ref": "at", "name": "At", "created_at": T - 10, "updated_at": T},
                {"ref": "after", "name": "After", "created_at": T - 10, "updated_at": T + 1},
            ]
        }
    )["refs"]
    return refs


def _ids(api: Api, path: str, params: object = None) -> list[int]:
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()]


def test_updated_after_is_strictly_greater(invoiced: InvoicedEmulator, api: Api) -> None:
    refs = _seed_timeline(invoiced)
    assert _ids(api, "/customers", {"updated_after": T}) == [refs["after"]]
    assert _ids(api, "/customers", {"updated_after": T - 1}) == [refs["at"], refs["after"]]
    assert _ids(api, "/customers", {"updated_before": T}) == [refs["before"]]
    assert _ids(api, "/customers", {"updated_after": T - 1, "updated_before": T + 1}) == [refs["at"]]


@pytest.mark.parametrize("value", ["0", "-5", "abc", ""])
def test_updated_after_at_or_below_zero_is_ignored(invoiced: InvoicedEmulator, api: Api, value: str) -> None:
    _seed_timeline(invoiced)
    assert len(_ids(api, "/customers", {"updated_after": value})) == 3


def test_a_change_moves_updated_at_past_the_cursor(invoiced: InvoicedEmulator, api: Api) -> None:
    refs = _seed_timeline(invoiced)
    api.ok(api.patch(f"/customers/{refs['before']}", {"phone": "555-0100"}))
    assert refs["before"] in _ids(api, "/customers", {"updated_after": T + 1})


def test_filter_is_exact_and_case_insensitive(invoiced: InvoicedEmulator, api: Api) -> None:
    refs = invoiced.control.seed(
        {
            "customers": [
                {"ref": "a", "name": "Acme", "type": "company"},
                {"ref": "b", "name": "Acme Corp", "type": "person"},
            ]
        }
    )["refs"]
    assert _ids(api, "/customers?filter[name]=acme") == [refs["a"]]
    assert _ids(api, "/customers?filter[type]=person") == [refs["b"]]
    assert _ids(api, "/customers?filter[name]=Acme&filter[type]=person") == []


def test_unknown_filter_fields_are_refused(api: Api) -> None:
    response = api.get("/customers?filter[favourite_colour]=blue")
    assert response.status_code == 400
    assert response.json() == {
        "type": "invalid_request",
        "message": "Invalid filter parameter: favourite_colour",
    }


def test_metadata_filter(invoiced: InvoicedEmulator, api: Api) -> None:
    refs = invoiced.control.seed(
        {
            "customers": [
                {"ref": "a", "name": "A", "metadata": {"crm_id": "001A"}},
                {"ref": "b", "name": "B", "metadata": {"crm_id": "001B"}},
                {"ref": "c", "name": "C"},
            ]
        }
    )["refs"]
    assert _ids(api, "/customers?metadata[crm_id]=001B") == [refs["b"]]


def test_sort_by_updated_at_both_ways_and_invalid_sorts(invoiced: InvoicedEmulator, api: Api) -> None:
    refs = _seed_timeline(invoiced)
    ascending = [refs["before"], refs["at"], refs["after"]]
    assert _ids(api, "/customers", {"sort": "updated_at asc"}) == ascending
    assert _ids(api, "/customers", {"sort": "updated_at desc"}) == ascending[::-1]
    response = api.get("/customers", params={"sort": "shoe_size asc"})
    assert response.status_code == 400
    assert response.json()["message"] == "Invalid sort parameter: shoe_size asc"


def test_invoice_date_range_filters(invoiced: InvoicedEmulator, api: Api) -> None:
    refs = invoiced.control.seed(
        {
            "customers": [{"ref": "c", "name": "Acme"}],
            "invoices": [
                {
                    "ref": "early",
                    "customer": "@c",
                    "date": T - 86400,
                    "payment_terms": "NET 30",
                    "items": [{"name": "A", "unit_cost": 1}],
                },
                {"ref": "late", "customer": "@c", "date": T, "items": [{"name": "B", "unit_cost": 1}]},
            ],
        }
    )["refs"]
    assert _ids(api, "/invoices", {"start_date": T}) == [refs["late"]]
    assert _ids(api, "/invoices", {"end_date": T - 1}) == [refs["early"]]
    # Only the invoice with payment terms has a due date, long past.
    assert _ids(api, f"/invoices?filter[customer]={refs['c']}&filter[status]=past_due") == [refs["early"]]
    assert _ids(api, "/invoices?filter[status]=not_sent") == [refs["late"]]


def test_events_are_newest_first_and_filter_by_object_and_event_type(
    invoiced: InvoicedEmulator, api: Api
) -> None:
    customer = api.create("/customers", {"name": "Acme"})
    invoice = api.create(
        "/invoices", {"customer": customer["id"], "items": [{"name": "Work", "unit_cost": 10}]}
    )
    api.create(
        "/payments",
        {
            "amount": 10,
            "customer": customer["id"],
            "applied_to": [{"type": "invoice", "invoice": invoice["id"], "amount": 10}],
        },
    )

    events = api.ok(api.get("/events"))
    assert [e["type"] for e in events] == [
        "invoice.paid",
        "payment.created",
        "invoice.created",
        "customer.created",
    ]
    assert [e["id"] for e in events] == sorted((e["id"] for e in events), reverse=True)

    assert [e["type"] for e in api.ok(api.get("/events", {"type": "invoice"}))] == [
        "invoice.paid",
        "invoice.created",
    ]
    assert [e["type"] for e in api.ok(api.get("/events?filter[type]=invoice.paid"))] == ["invoice.paid"]
    refused = api.get("/events", {"type": "invoice.paid"})
    assert refused.status_code == 400
    assert refused.json()["message"] == "Object type not recognized: invoice.paid"


def test_events_related_to_and_date_window(invoiced: InvoicedEmulator, api: Api) -> None:
    first = api.create("/customers", {"name": "First"})
    second = api.create("/customers", {"name": "Second"})
    api.create("/invoices", {"customer": second["id"], "items": [{"name": "Work", "unit_cost": 10}]})

    related = api.ok(api.get("/events", {"related_to": f"customer,{second['id']}"}))
    assert [e["type"] for e in related] == ["invoice.created", "customer.created"]
    assert all(e["data"]["object"]["id"] != first["id"] for e in related)

    now = invoiced.control.clock()["now"]
    assert len(api.ok(api.get("/events", {"start_date": now - 60, "end_date": now + 60}))) == 3
    assert api.ok(api.get("/events", {"start_date": now + 60})) == []
