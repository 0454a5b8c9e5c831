"""A small, fast run of the performance benchmark's code (`make bench` runs it at full size)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from local.stack import DevStack

BENCH = Path(__file__).parents[2] / "bench" / "performance.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("billsync_bench_performance", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_a_small_backfill_is_measured_against_the_floor(bench: ModuleType, stack: DevStack) -> None:
    dynamo = bench.DynamoCounter()
    try:
        ids, linked = bench.seed(stack, 30)
        measured = bench.billsync_backfill(stack, dynamo, 30)
        measured["baseline"] = bench.baseline(stack, ids[:3], linked)
    finally:
        dynamo.restore()
    assert measured["invoices"] == 30
    assert measured["lines"] == 75  # two or three lines each
    assert measured["salesforce"]["by_endpoint"]["POST /composite"] == 1
    assert measured["salesforce"]["lock_failures"] == 0
    assert measured["dynamodb"]["by_operation"]["BatchGetItem"] >= 1
    assert measured["dynamodb"]["requests"] > 0
    assert measured["baseline"]["invoices"] == 3
    # per invoice: the account lookup, the upsert, the invoice lookup; then one upsert per line (2, 3, 2)
    assert measured["baseline"]["requests_per_invoice"] == round((3 * 3 + 7) / 3, 2)
    assert measured["peak_memory_mb"] is not None


def test_the_report_states_each_figure_beside_its_target(bench: ModuleType) -> None:
    size = {
        "invoices": 1000,
        "lines": 2500,
        "seconds": 10.0,
        "pull_runs": 1,
        "invoices_per_second": 100.0,
        "speedup": 30.0,
        "salesforce": {"requests": 4, "floor_n_over_200": 5, "target": 5.2, "lock_failures": 0},
        "dynamodb": {"requests": 80, "per_record": 0.08, "per_record_including_lines": 0.02},
        "peak_memory_mb": 300.0,
        "baseline": {"invoices": 60, "invoices_per_second": 2.0, "requests_per_invoice": 5.5},
    }
    report = {
        "machine": {"cores": 2, "python": "3.11", "load_average_before": [1], "load_average_after": [1]},
        "latency_model": {"per_request_ms": 100, "per_record_ms": 2},
        "cold_import_ms": {"invoice": 120.0, "webhook": 300.0},
        "webhook": {"events": 10, "p50_ms": 5.0, "p99_ms": 9.0, "max_ms": 9.5},
        "row_locks": {"workers": 4, "accounts": 8, "invoices": 320, "grouped_by_parent": 0, "not_grouped": 9},
        "sizes": [size],
    }
    text = bench.render(report)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert "30.0x" in rows["throughput, invoices/s (with their lines)"]
    assert rows["throughput, invoices/s (with their lines)"].endswith("| meets |")
    assert rows["peak memory of the sync function (worker RSS high-water mark)"].endswith("| **misses** |")
    assert "webhook 300" in rows["cold import time per handler (median of 3 fresh interpreters)"]
    assert rows["cold import time per handler (median of 3 fresh interpreters)"].endswith("| **misses** |")
    assert "100 ms per request plus 2 ms per record" in text
