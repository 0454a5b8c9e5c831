"""Driving a running stack: drain, reset_state, pause/resume, and the HTTP control API."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import requests

from local.runtime import LocalStack

from .conftest import queue_counts, records, send


def client() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def test_drain_waits_for_queues_and_invocations(app_stack: LocalStack, record_dir: Path) -> None:
    label = uuid.uuid4().hex[:12]
    send(app_stack, "WorkQueue", [{"tag": label, "id": f"{label}-{index}"} for index in range(4)])
    app_stack.drain(15)
    assert len(records(record_dir, label)) == 4
    assert queue_counts(app_stack, "WorkQueue") == (0, 0, 0)


def test_drain_names_what_is_still_busy(app_stack: LocalStack) -> None:
    label = uuid.uuid4().hex[:12]
    app_stack.pause_event_sources()
    try:
        send(app_stack, "WorkQueue", [{"tag": label, "id": label}])
        with pytest.raises(TimeoutError, match=r"WorkQueue: 1 visible, 0 in flight, 0 delayed"):
            app_stack.drain(0.3)
        over_http = client().post(f"{app_stack.api_url}/_local/drain", params={"timeout": "0.2"})
        assert over_http.status_code == 504
        assert "WorkQueue: 1 visible" in over_http.json()["message"]
    finally:
        app_stack.resume_event_sources()
    app_stack.drain(10)


def test_reset_state_empties_queues_and_tables_and_keeps_workers_warm(app_stack: LocalStack) -> None:
    dynamodb = app_stack.boto3_client("dynamodb")
    for index in range(30):
        dynamodb.put_item(TableName="fixture-Table", Item={"pk": {"S": f"p{index}"}, "sk": {"S": "s"}})
    app_stack.pause_event_sources()
    send(app_stack, "WorkQueue", [{"tag": "reset", "id": "reset"}])
    send(app_stack, "WorkDLQ", [{"tag": "reset", "id": "dead"}])
    warm = app_stack.invoke("EchoFunction", {"action": "counter"})

    app_stack.reset_state()

    assert dynamodb.scan(TableName="fixture-Table")["Count"] == 0
    assert queue_counts(app_stack, "WorkQueue") == (0, 0, 0)
    assert queue_counts(app_stack, "WorkDLQ") == (0, 0, 0)
    assert app_stack.invocations == []
    still_warm = app_stack.invoke("EchoFunction", {"action": "counter"})
    assert still_warm.payload["pid"] == warm.payload["pid"]
    # The sources were paused before the reset, so they stay paused until resumed.
    send(app_stack, "WorkQueue", [{"tag": "reset", "id": "after"}])
    with pytest.raises(TimeoutError):
        app_stack.drain(0.3)
    app_stack.resume_event_sources()
    app_stack.drain(10)


def test_control_api_drives_the_stack_from_another_process(app_stack: LocalStack) -> None:
    session = client()
    base = f"{app_stack.api_url}/_local"
    resources = session.get(f"{base}/resources").json()
    assert resources["WorkQueue"]["url"] == app_stack.resources["WorkQueue"].url
    assert session.get(f"{base}/outputs").json() == app_stack.outputs
    assert {
        "logical_id": "Bucket",
        "type": "AWS::S3::Bucket",
        "detail": "resource type is not emulated",
    } in session.get(f"{base}/not-emulated").json()
    sources = session.get(f"{base}/event-sources").json()
    assert {"function": "WorkerFunction", "event": "Queue", "type": "SQS"}.items() <= sources[0].items()

    invoked = session.post(f"{base}/invoke/SlowFunction", json={"seconds": 0}).json()
    assert invoked["ok"] is True
    fired = session.post(f"{base}/schedules/ScheduledFunction/Pull/fire").json()
    assert fired["payload"]["received"]["action"] == "pull"
    assert session.post(f"{base}/drain", params={"timeout": "10"}).json() == {"drained": True}
    invocations = session.get(f"{base}/invocations").json()
    assert {record["request_id"] for record in invocations} >= {invoked["request_id"], fired["request_id"]}
    assert session.post(f"{base}/workers/SlowFunction/kill").json() == {"killed": 1}
    assert session.post(f"{base}/workers/Nope/kill").status_code == 404
    assert session.get(f"{base}/unknown").status_code == 404
