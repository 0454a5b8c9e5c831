"""Every error path with Invoiced's status and body: auth, routing, validation, limits, faults."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from local.invoiced import InvoicedEmulator
from tests.emulators.invoiced.conftest import Api

MISSING = (
    "Missing API key! HINT: You can pass in your API key as the username parameter using HTTP Basic Auth."
)


def _session(invoiced: InvoicedEmulator) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = invoiced.ca_file
    return session


def test_missing_api_key(invoiced: InvoicedEmulator) -> None:
    response = _session(invoiced).get(f"{invoiced.base_url}/customers", timeout=5)
    assert response.status_code == 401
    assert response.json() == {"type": "invalid_request", "message": MISSING}
    assert response.headers["WWW-Authenticate"] == 'Basic realm="Invoiced"'
    assert response.headers["Cache-Control"] == "no-cache, no-store"
    assert "Retry-After" not in response.headers


def test_wrong_api_key_is_scrubbed_in_the_message(invoiced: InvoicedEmulator) -> None:
    response = _session(invoiced).get(f"{invoiced.base_url}/customers", auth=("abcdefghijkl", ""), timeout=5)
    assert response.status_code == 401
    assert response.json() == {
        "type": "invalid_request",
        "message": "We could not authenticate you with the API Key: abc******jkl",
    }


def test_a_password_makes_the_username_an_account_name(invoiced: InvoicedEmulator) -> None:
    response = _session(invoiced).get(f"{invoiced.base_url}/customers", auth=("acme", "secret"), timeout=5)
    assert response.status_code == 401
    assert response.json()["message"] == "We did not find an account matching the username: acme"


def test_bearer_tokens_are_accepted(invoiced: InvoicedEmulator) -> None:
    session = _session(invoiced)
    ok = session.get(
        f"{invoiced.base_url}/customers", headers={"Authorization": f"Bearer {invoiced.api_key}"}
    )
    assert ok.status_code == 200
    bad = session.get(f"{invoiced.base_url}/customers", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401


def test_success_responses_carry_invoiceds_headers(api: Api) -> None:
    response = api.get("/customers")
    assert response.headers["Cache-Control"] == "no-cache, no-store"
    assert response.headers["WWW-Authenticate"] == 'Basic realm="Invoiced"'
    assert response.headers["Content-Type"] == "application/json"


def test_production_and_sandbox_are_separate_accounts(
    invoiced: InvoicedEmulator, api: Api, sandbox_api: Api
) -> None:
    production = api.create("/customers", {"name": "Production Co"})
    sandbox = sandbox_api.create("/customers", {"name": "Sandbox Co"})

    assert [c["name"] for c in api.ok(api.get("/customers"))] == ["Production Co"]
    assert [c["name"] for c in sandbox_api.ok(sandbox_api.get("/customers"))] == ["Sandbox Co"]
    assert sandbox_api.get(f"/customers/{production['id']}").status_code == 404
    assert api.get(f"/customers/{sandbox['id']}").status_code == 404

    crossed = _session(invoiced).get(f"{invoiced.sandbox_base_url}/customers", auth=(invoiced.api_key, ""))
    assert crossed.status_code == 401
    assert crossed.json()["message"].startswith("We could not authenticate you with the API Key: ")


def test_not_found_messages(api: Api) -> None:
    assert api.get("/customers/123").json() == {
        "type": "invalid_request",
        "message": "Customer was not found: 123",
    }
    assert api.get("/customers/123").status_code == 404
    assert api.get("/credit_notes/9").json()["message"] == "Credit Note was not found: 9"
    response = api.get("/foo")
    assert response.status_code == 404
    assert response.json() == {"type": "invalid_request", "message": "Request was not recognized: GET /foo"}


def test_unknown_routes_need_a_key_first(invoiced: InvoicedEmulator) -> None:
    assert _session(invoiced).get(f"{invoiced.base_url}/foo", timeout=5).status_code == 401


def test_method_not_allowed(api: Api) -> None:
    response = api.session.put(api.url("/customers"), json={}, timeout=5)
    assert response.status_code == 405
    assert response.json()["message"] == "Method not allowed: PUT /customers"


@pytest.mark.parametrize(
    ("body", "message", "param"),
    [
        ({}, "Name is missing", "name"),
        ({"name": "A", "email": "not-an-email"}, "Email must be a valid email address", "email"),
        ({"name": "A", "type": "alien"}, "Type must be one of the allowed values", "type"),
        ({"name": "A", "currency": "dollars"}, "Currency is invalid", "currency"),
        ({"name": "A", "number": "x" * 33}, "Number must be a string of the proper length", "number"),
        (
            {"name": "A", "created_at": 5},
            "Mass assignment of created_at on Customer is not allowed",
            "created_at",
        ),
        (
            {"name": "A", "metadata": {f"k{i}": "v" for i in range(11)}},
            "There can only be up to 10 metadata values. 11 values were provided.",
            "metadata",
        ),
        (
            {"name": "A", "metadata": {"k" * 41: "v"}},
            f"The `{'k' * 41}` metadata key exceeds the 40 character limit.",
            "metadata",
        ),
        (
            {"name": "A", "metadata": {"note": "v" * 256}},
            "The provided value for metadata.note exceeds the 255 character limit.",
            "metadata",
        ),
    ],
)
def test_validation_errors_are_400_with_param(
    api: Api, body: dict[str, object], message: str, param: str
) -> None:
    response = api.post("/customers", body)
    assert response.status_code == 400
    assert response.json() == {"type": "invalid_request", "message": message, "param": param}
    assert api.ok(api.get("/customers")) == []


def test_metadata_at_the_limits_is_accepted(api: Api) -> None:
    metadata = {f"{i}{'k' * 39}": "v" * 255 for i in range(10)}
    customer = api.create("/customers", {"name": "A", "metadata": metadata})
    assert customer["metadata"] == metadata


def test_numbers_are_unique_per_account(api: Api, sandbox_api: Api) -> None:
    api.create("/customers", {"name": "A", "number": "ACME-1"})
    response = api.post("/customers", {"name": "B", "number": "acme-1"})
    assert response.status_code == 400
    assert response.json() == {
        "type": "invalid_request",
        "message": "The given customer number has already been taken: acme-1",
        "param": "number",
    }
    sandbox_api.create("/customers", {"name": "B", "number": "ACME-1"})


def test_concurrency_limit_answers_429_to_a_real_parallel_request(
    invoiced: InvoicedEmulator, api: Api
) -> None:
    invoiced.control.update_settings(concurrency_limit=1)
    invoiced.control.set_faults(latency_ms=400)
    barrier = threading.Barrier(2)
    results: list[requests.Response] = []

    def call() -> None:
        session = _session(invoiced)
        barrier.wait()
        results.append(session.get(f"{invoiced.base_url}/customers", auth=(invoiced.api_key, ""), timeout=10))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(r.status_code for r in results) == [200, 429]
    limited = next(r for r in results if r.status_code == 429)
    assert limited.json() == {
        "type": "rate_limit_error",
        "message": "Too many concurrent requests! You can only make 1 concurrent requests at a time.",
    }
    assert "Retry-After" not in limited.headers
    invoiced.control.set_faults(latency_ms=0)
    assert api.get("/customers").status_code == 200  # the slot was given back


def test_the_default_limit_is_twenty_and_counted_per_key(invoiced: InvoicedEmulator) -> None:
    assert invoiced.control.settings.concurrency_limit == 20
    invoiced.control.set_faults(latency_ms=300)
    statuses: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(22)

    def call(key: str, base: str) -> None:
        session = _session(invoiced)
        barrier.wait()
        status = session.get(f"{base}/customers", auth=(key, ""), timeout=10).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=call, args=(invoiced.api_key, invoiced.base_url)) for _ in range(21)]
    threads.append(threading.Thread(target=call, args=(invoiced.sandbox_api_key, invoiced.sandbox_base_url)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 21 + [429]


def test_injected_server_error(invoiced: InvoicedEmulator, api: Api) -> None:
    invoiced.control.set_faults(bursts={"server_error": 1})
    response = api.post("/customers", {"name": "A"})
    assert response.status_code == 500
    body = response.json()
    assert body["type"] == "api_error"
    assert body["message"].startswith("There was an error processing your request.")
    assert "Correlation ID: " in body["message"]
    assert api.ok(api.get("/customers")) == []  # nothing was written
    assert invoiced.control.faults.injected == {"server_error": 1}


@pytest.mark.parametrize(
    ("kind", "status", "html"),
    [
        ("bad_gateway_html", 502, True),
        ("bad_gateway_empty", 502, False),
        ("unavailable_html", 503, True),
        ("unavailable_empty", 503, False),
    ],
)
def test_injected_proxy_errors_are_not_json(
    invoiced: InvoicedEmulator, api: Api, kind: str, status: int, html: bool
) -> None:
    invoiced.control.set_faults(bursts={kind: 1})
    response = api.get("/customers")
    assert response.status_code == status
    if html:
        assert response.headers["Content-Type"] == "text/html"
        assert f"<h1>{status} " in response.text
    else:
        assert response.content == b""
    assert api.get("/customers").status_code == 200


def test_injected_rate_limit(invoiced: InvoicedEmulator, api: Api) -> None:
    invoiced.control.set_faults(every={"rate_limited": 2})
    assert [api.get("/customers").status_code for _ in range(4)] == [200, 429, 200, 429]


def test_faults_are_seeded_and_reproducible(invoiced: InvoicedEmulator, api: Api) -> None:
    def run() -> list[int]:
        invoiced.control.set_faults(seed=7, rates={"server_error": 0.5})
        return [api.get("/customers").status_code for _ in range(12)]

    first = run()
    assert first == run()
    assert set(first) == {200, 500}


def test_faults_never_touch_the_control_api(invoiced: InvoicedEmulator, api: Api) -> None:
    invoiced.control.set_faults(rates={"server_error": 1.0})
    response = api.session.get(api.url("/_emulator/calls"), timeout=5)
    assert response.status_code == 200
    assert invoiced.control.faults.injected == {}


def test_a_dropped_connection_after_the_write(invoiced: InvoicedEmulator, api: Api) -> None:
    invoiced.control.set_faults(bursts={"connection_drop": 1})
    with pytest.raises(requests.ConnectionError):
        api.post("/customers", {"name": "Lost answer"}, headers={"Idempotency-Key": "retry-me-001"})

    written = api.ok(api.get("/customers"))
    assert [c["name"] for c in written] == ["Lost answer"]  # processed, only the answer was lost
    retried = api.post("/customers", {"name": "Lost answer"}, headers={"Idempotency-Key": "retry-me-001"})
    assert retried.status_code == 201
    assert retried.json()["id"] == written[0]["id"]
    assert len(api.ok(api.get("/customers"))) == 1


def test_idempotency_replays_errors_too_and_keys_are_per_api_key(api: Api, sandbox_api: Api) -> None:
    first = api.post("/customers", {}, headers={"Idempotency-Key": "bad-create-1"})
    assert first.status_code == 400
    second = api.post("/customers", {"name": "Now valid"}, headers={"Idempotency-Key": "bad-create-1"})
    assert (second.status_code, second.json()) == (400, first.json())
    other_account = sandbox_api.post(
        "/customers", {"name": "Fine"}, headers={"Idempotency-Key": "bad-create-1"}
    )
    assert other_account.status_code == 201


@pytest.mark.parametrize(
    ("method", "key", "message"),
    [
        (
            "GET",
            "long-enough-key",
            "Unsupported method: GET. Idempotency keys can only be used with POST and PATCH requests.",
        ),
        ("POST", "short", "Idempotency key is too short. Must be at least 6 characters long."),
        ("POST", "k" * 65, "Idempotency key is too long. Must be no longer than 64 characters."),
    ],
)
def test_invalid_idempotency_keys(api: Api, method: str, key: str, message: str) -> None:
    response = api.session.request(
        method, api.url("/customers"), json={"name": "A"}, headers={"Idempotency-Key": key}, timeout=5
    )
    assert response.status_code == 400
    assert response.json() == {"type": "invalid_request", "message": message}


def test_malformed_json_body(api: Api) -> None:
    response = api.session.post(
        api.url("/customers"), data=b"{not json", headers={"Content-Type": "application/json"}, timeout=5
    )
    assert response.status_code == 400
    assert response.json()["type"] == "invalid_request"


def test_call_counts_by_route_template(invoiced: InvoicedEmulator, api: Api, sandbox_api: Api) -> None:
    customer = api.create("/customers", {"name": "A"})
    api.get(f"/customers/{customer['id']}")
    api.get("/customers/999999")
    sandbox_api.get("/customers")
    assert invoiced.control.calls("production") == {
        "POST /customers": 1,
        "GET /customers/{id}": 2,
    }
    assert invoiced.control.calls() == {"POST /customers": 1, "GET /customers/{id}": 2, "GET /customers": 1}


def test_latency_is_fixed_plus_per_record_returned(invoiced: InvoicedEmulator, api: Api) -> None:
    ids = invoiced.control.seed({"customers": [{"name": f"C{i}"} for i in range(5)]})["customers"]
    invoiced.control.set_faults(latency_ms=30, latency_per_record_ms=40)

    started = time.monotonic()
    assert len(api.ok(api.get("/customers"))) == 5
    assert time.monotonic() - started >= 0.03 + 5 * 0.04

    started = time.monotonic()
    api.ok(api.get(f"/customers/{ids[0]}"))
    single = time.monotonic() - started
    assert 0.07 <= single < 0.03 + 5 * 0.04


def test_idempotency_keys_expire_after_a_day(invoiced: InvoicedEmulator, api: Api) -> None:
    first = api.post("/customers", {"name": "Acme"}, headers={"Idempotency-Key": "daily-key-1"})
    invoiced.control.advance_clock(86400)
    second = api.post("/customers", {"name": "Acme"}, headers={"Idempotency-Key": "daily-key-1"})
    assert second.status_code == 201
    assert second.json()["id"] != first.json()["id"]
