"""Fuzzing the mapping engine with every preset: any record — missing fields, wrong types, odd text,
card numbers in free text — is mapped or refused with a FieldMappingError that names the fields, never
another exception, and the reasons never repeat a card number."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from billsync.domain.mapping import FieldMappingError, Mapping, MappingContext, apply_mapping, load_mapping
from billsync.domain.redaction import redact_card_numbers
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[3]
PRESETS = sorted(ROOT.glob("shared/billsync/connectors/*/mappings/*.yaml"))
CARD_NUMBER = "4111111111111111"

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.decimals(),
    st.text(max_size=30),
    st.sampled_from(
        ["", " ", "2024-02-30", "2024-03-01", "2024-03-01T10:00:00Z", "1e400", "-0", "usd", "NaN"]
    ),
    st.just(f"card {CARD_NUMBER}"),
    st.text(min_size=200, max_size=400),
)
anything = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
)


def tree(paths: list[str]) -> dict[str, Any]:
    """{'items[]': {'name': {}}, 'customer': {}} from ['items[].name', 'customer']."""
    root: dict[str, Any] = {}
    for path in paths:
        node = root
        for part in path.split("."):
            node = node.setdefault(part, {})
    return root


def shaped(node: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Records with the keys a mapping reads, each present or not, well-typed or not."""

    def value(name: str, children: dict[str, Any]) -> st.SearchStrategy[Any]:
        if not children:
            return st.one_of(scalars, anything)
        inner = shaped(children)
        if name.endswith("[]"):
            return st.one_of(st.lists(inner, max_size=3), anything)
        return st.one_of(inner, inner, anything)

    return st.fixed_dictionaries(
        {}, optional={name.removesuffix("[]"): value(name, children) for name, children in node.items()}
    )


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_any_record_is_mapped_or_refused_with_its_fields(preset: Path) -> None:
    mapping = load_mapping(preset)
    records = shaped(tree([p.replace("$", "") for p in mapping.source_paths()]))

    @given(records, st.sampled_from(["4401", "a0B5g000001AbCdEAK"]))
    def check(record: dict[str, Any], record_id: str) -> None:
        refused = map_one(mapping, record, record_id)
        if refused is not None:
            assert refused.errors and all(field and reason for field, reason in refused.errors)
            assert redact_card_numbers(str(refused)) == str(refused), str(refused)

    check()


def map_one(mapping: Mapping, record: dict[str, Any], record_id: str) -> FieldMappingError | None:
    """None when the record maps; its FieldMappingError when refused; any other exception escapes."""
    try:
        apply_mapping(mapping, record, MappingContext(source_key="main", record_id=record_id))
    except FieldMappingError as exc:
        return exc
    return None
