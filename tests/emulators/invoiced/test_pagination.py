"""List responses exactly as Invoiced's server builds them: bare arrays, X-Total-Count and Link."""

from __future__ import annotations

import pytest

from local.invoiced import InvoicedEmulator
from tests.emulators.invoiced.conftest import Api


def _seed_customers(invoiced: InvoicedEmulator, count: int) -> list[int]:
    ids: list[int] = invoiced.control.seed(
        {"customers": [{"name": f"Customer {i:02d}"} for i in range(count)]}
    )["customers"]
    return ids


def test_first_page_links_in_order_without_previous(invoiced: InvoicedEmulator, api: Api) -> None:
    ids = _seed_customers(invoiced, 5)
    response = api.get("/customers", params={"per_page": 2})

    assert response.status_code == 200
    assert [c["id"] for c in response.json()] == ids[:2]
    assert response.headers["X-Total-Count"] == "5"
    base = f"{invoiced.base_url}/customers"
    assert response.headers["Link"] == (
        f'<{base}?per_page=2&page=1>; rel="self", '
        f'<{base}?per_page=2&page=1>; rel="first", '
        f'<{base}?per_page=2&page=2>; rel="next", '
        f'<{base}?per_page=2&page=3>; rel="last"'
    )


def test_middle_and_last_pages(invoiced: InvoicedEmulator, api: Api) -> None:
    ids = _seed_customers(invoiced, 5)
    base = f"{invoiced.base_url}/customers"

    middle = api.get("/customers", params={"page": 2, "per_page": 2})
    assert [c["id"] for c in middle.json()] == ids[2:4]
    assert middle.headers["Link"] == (
        f'<{base}?page=2&per_page=2>; rel="self", '
        f'<{base}?page=1&per_page=2>; rel="first", '
        f'<{base}?page=1&per_page=2>; rel="previous", '
        f'<{base}?page=3&per_page=2>; rel="next", '
        f'<{base}?page=3&per_page=2>; rel="last"'
    )

    last = api.get("/customers", params={"page": 3, "per_page": 2})
    assert [c["id"] for c in last.json()] == ids[4:]
    assert 'rel="next"' not in last.headers["Link"]
    assert f'<{base}?page=2&per_page=2>; rel="previous"' in last.headers["Link"]


def test_per_page_is_left_out_of_links_when_it_is_the_default(invoiced: InvoicedEmulator, api: Api) -> None:
    _seed_customers(invoiced, 3)
    base = f"{invoiced.base_url}/customers"
    expected = f'<{base}?page=1>; rel="self", <{base}?page=1>; rel="first", <{base}?page=1>; rel="last"'

    assert api.get("/customers").headers["Link"] == expected
    assert api.get("/customers", params={"per_page": 100}).headers["Link"] == expected
    assert api.get("/customers", params={"per_page": 500}).headers["Link"] == expected


@pytest.mark.parametrize(
    ("per_page", "expected_size"),
    [("500", 3), ("0", 3), ("-3", 1), ("abc", 1), ("2", 2)],
)
def test_per_page_is_clamped_like_php_casts_it(
    invoiced: InvoicedEmulator, api: Api, per_page: str, expected_size: int
) -> None:
    _seed_customers(invoiced, 3)
    response = api.get("/customers", params={"per_page": per_page})
    assert response.status_code == 200
    assert len(response.json()) == expected_size
    assert response.headers["X-Total-Count"] == "3"


def test_other_parameters_are_kept_and_encoded_in_links(invoiced: InvoicedEmulator, api: Api) -> None:
    invoiced.control.seed({"customers": [{"name": "Acme", "type": "person"} for _ in range(3)]})
    response = api.get("/customers?filter[type]=person&sort=name asc&per_page=1&page=2")

    assert response.headers["X-Total-Count"] == "3"
    base = f"{invoiced.base_url}/customers?filter%5Btype%5D=person&sort=name+asc"
    assert response.headers["Link"].split(", ")[0] == f'<{base}&page=2&per_page=1>; rel="self"'


def test_a_page_past_the_end_is_an_empty_array_with_links(invoiced: InvoicedEmulator, api: Api) -> None:
    _seed_customers(invoiced, 2)
    response = api.get("/customers", params={"page": 7})

    assert response.json() == []
    assert response.headers["X-Total-Count"] == "2"
    assert 'rel="previous"' in response.headers["Link"]
    assert 'rel="next"' not in response.headers["Link"]
    assert response.headers["Link"].endswith(f'<{invoiced.base_url}/customers?page=1>; rel="last"')


def test_an_empty_list_still_has_both_headers(api: Api) -> None:
    response = api.get("/invoices")
    assert response.json() == []
    assert response.headers["X-Total-Count"] == "0"
    assert 'rel="last"' in response.headers["Link"]


def test_deep_pages_must_be_read_in_order(api: Api) -> None:
    response = api.get("/customers", params={"page": 101})
    assert response.status_code == 400
    assert response.json() == {
        "type": "invalid_request",
        "message": "You must retrieve all preceding page numbers before retrieving this page.",
    }
    assert api.get("/customers", params={"page": 101, "sort": "name asc"}).status_code == 200


def test_deep_pages_open_up_after_the_preceding_page(invoiced: InvoicedEmulator, api: Api) -> None:
    _seed_customers(invoiced, 10001)
    assert api.get("/customers", params={"page": 100}).status_code == 200
    response = api.get("/customers", params={"page": 101})
    assert response.status_code == 200
    assert len(response.json()) == 1
