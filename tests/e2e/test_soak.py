"""The soak at CI size: Invoiced changes through the whole local stack under injected faults (see
bench/soak.py); Salesforce ends equal to Invoiced, with nothing lost or duplicated and exactly one
dead letter, with its reason, per permanently rejected record. `make soak` runs it at full size."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from bench.soak import run_soak, soak_settings
from local.stack import DevStack

CHANGES = int(os.environ.get("BILLSYNC_SOAK_CHANGES", "2000"))  # about 200 s on this 2-core machine


@pytest.fixture(scope="module")
def soak_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    with DevStack(soak_settings(tmp_path_factory.mktemp("soak-stack"), seed=11)) as stack:
        stack.reset()  # the AWS stand-in's backends are shared in the process: start from empty tables
        yield stack


@pytest.mark.timeout(1200)
def test_nothing_is_lost_or_duplicated_under_faults(soak_stack: DevStack) -> None:
    report = run_soak(soak_stack, CHANGES, seed=11)
    assert report.mismatches == []
    assert (report.lost, report.duplicated) == (0, 0)
    assert report.permanent_rejections >= 1
    assert report.permanent_with_one_letter == report.permanent_rejections
    assert report.dead_letters_by_code.get("STRING_TOO_LONG") == report.permanent_rejections
    assert report.redriven >= report.dead_letters
    assert report.worker_killed
    for fault in ("SERVER_UNAVAILABLE", "UNABLE_TO_LOCK_ROW", "REQUEST_LIMIT_EXCEEDED"):
        assert report.faults_injected.get(f"salesforce {fault}", 0) > 0, fault
    assert sum(v for k, v in report.faults_injected.items() if k.startswith("invoiced ")) > 0
    assert report.webhook_deliveries > CHANGES  # duplicates were delivered
