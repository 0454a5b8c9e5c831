"""`billsync config ...` and `billsync mapping ...`: check a configuration and read mappings."""

from __future__ import annotations

import os
import sys
from importlib import resources

import click

from billsync.config import ConfigError, load_config
from billsync.connectors import connector_names
from billsync.domain.mapping import MappingError
from billsync.domain.models import Direction
from billsync.mappings import MappingSet


@click.group("config")
def config_group() -> None:
    """Check the deployment configuration."""


@config_group.command("validate")
@click.argument("path", default="config/billsync.yaml", type=click.Path(dir_okay=False))
def validate(path: str) -> None:
    """Validate a configuration file and every mapping it would use."""
    env = {"STAGE": "dev", **os.environ}
    try:
        config = load_config(path, env=env)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    problems = []
    mappings = MappingSet(config.mappings_path)
    used = 0
    for source in config.sources:
        if source.connector not in connector_names():
            problems.append(
                f"source {source.key}: unknown connector {source.connector!r} (known: {', '.join(connector_names())})"
            )
            continue
        for file_name in mappings.all_files(source.connector):
            object_name, direction, _ = file_name.split(".")
            try:
                mappings.require(source.connector, object_name, Direction(direction))
                used += 1
            except MappingError as exc:
                problems.append(str(exc))
    for name in config.objects:
        known = {f.split(".")[0] for s in config.sources for f in mappings.all_files(s.connector)}
        if name not in known:
            problems.append(f"objects.{name}: no configured connector syncs {name!r}")
    if config.mappings_path is not None and config.mappings_path.is_dir():
        for override in sorted(config.mappings_path.glob("*/*.yaml")):
            connector, (object_name, direction, _) = override.parent.name, override.name.split(".")
            try:
                mappings.require(connector, object_name, Direction(direction))
            except (MappingError, ValueError) as exc:
                problems.append(f"{override}: {exc}")
    if problems:
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(1)
    click.echo(f"{path}: valid ({len(config.sources)} source(s), {used} mapping(s) checked)")


@click.group("mapping")
def mapping_group() -> None:
    """Read the mapping presets."""


@mapping_group.command("show")
@click.argument("connector")
@click.argument("object_name")
@click.argument("direction", type=click.Choice([d.value for d in Direction]))
def show(connector: str, object_name: str, direction: str) -> None:
    """Print a connector's preset mapping (copy it under mappings/ to override it)."""
    preset = resources.files("billsync.connectors").joinpath(
        connector, "mappings", f"{object_name}.{direction}.yaml"
    )
    if not preset.is_file():
        raise click.ClickException(f"{connector} has no preset for {object_name} {direction}")
    click.echo(preset.read_text(), nl=False)


def register(cli: click.Group) -> None:
    cli.add_command(config_group)
    cli.add_command(mapping_group)
