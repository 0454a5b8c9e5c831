"""The configuration file: validated when loaded, with the path of whatever is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from billsync.config import ConfigError, load_config, parse_config, parse_since

MINIMAL = {
    "salesforce": {"secret": "billsync/${STAGE}/salesforce"},
    "sources": [{"key": "main", "connector": "invoiced", "secret": "billsync/${STAGE}/invoiced/main"}],
}


def test_environment_references_are_substituted() -> None:
    config = parse_config(MINIMAL, env={"STAGE": "prod"})
    assert config.salesforce.secret == "billsync/prod/salesforce"
    assert config.source("main").secret == "billsync/prod/invoiced/main"


def test_a_missing_environment_variable_is_named() -> None:
    with pytest.raises(ConfigError, match="STAGE is not set"):
        parse_config(MINIMAL, env={})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"salesforce": {"secret": "x", "colour": "blue"}},
            "salesforce.colour: Extra inputs are not permitted",
        ),
        ({"sources": []}, "sources"),
        ({"sources": [{"key": "Main!", "connector": "invoiced", "secret": "s"}]}, "sources.0.key"),
        ({"sync": {"mode": "sometimes"}}, "sync.mode"),
        ({"salesforce": {"secret": "x", "api_budget_reserve_percent": 95}}, "api_budget_reserve_percent"),
    ],
)
def test_bad_values_are_refused_with_their_path(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_config({**MINIMAL, **change}, env={"STAGE": "dev"})


def test_duplicate_and_double_default_sources_are_refused() -> None:
    source = {"key": "main", "connector": "invoiced", "secret": "s", "default": True}
    with pytest.raises(ConfigError, match="duplicate source keys: main"):
        parse_config({**MINIMAL, "sources": [source, source]}, env={"STAGE": "dev"})
    other = {**source, "key": "eu"}
    with pytest.raises(ConfigError, match="only one source may be the default"):
        parse_config({**MINIMAL, "sources": [source, other]}, env={"STAGE": "dev"})


def test_switches_combine_global_and_object_settings() -> None:
    config = parse_config(
        {
            **MINIMAL,
            "sync": {"mode": "manual"},
            "objects": {"invoice": {"mode": "automatic"}, "note": {"enabled": False}},
        },
        env={"STAGE": "dev"},
    )
    assert config.object_automatic("invoice")
    assert not config.object_automatic("customer")
    assert not config.object_enabled("note")
    off = parse_config({**MINIMAL, "sync": {"enabled": False}}, env={"STAGE": "dev"})
    assert not off.object_enabled("invoice")


def test_files_resolve_relative_paths_and_report_bad_yaml(tmp_path: Path) -> None:
    path = tmp_path / "billsync.yaml"
    path.write_text(
        "salesforce: {secret: s}\nsources: [{key: main, connector: invoiced, secret: s}]\nmappings_dir: maps\n"
    )
    assert load_config(path, env={}).mappings_path == tmp_path / "maps"
    path.write_text("salesforce: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path, env={})
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml", env={})


def test_since_needs_a_time_zone() -> None:
    assert parse_since("2024-03-01T00:00:00Z").utcoffset() is not None
    with pytest.raises(ConfigError, match="needs a time zone"):
        parse_since("2024-03-01T00:00:00")
    with pytest.raises(ConfigError, match="not an ISO 8601 time"):
        parse_since("yesterday")


def test_the_shipped_configuration_is_valid() -> None:
    config = load_config(Path(__file__).parents[2] / "config" / "billsync.yaml", env={"STAGE": "dev"})
    assert config.default_source.key == "main"
