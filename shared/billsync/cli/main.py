"""Entry point of the `billsync` command.

Command groups from other installed parts (the local stack registers `billsync local ...`) are
found through the `billsync.cli` entry-point group, so this package never imports them directly.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="billsync")
def cli() -> None:
    """billsync: keep a billing system and Salesforce in sync."""


def load_plugins() -> None:
    from billsync.cli import config_commands, dlq_commands, sync_commands

    config_commands.register(cli)
    for command in (
        dlq_commands.dlq_group,
        sync_commands.sync_group,
        sync_commands.backfill_command,
        sync_commands.status_command,
        sync_commands.log_command,
    ):
        cli.add_command(command)
    for entry in entry_points(group="billsync.cli"):
        register = entry.load()
        register(cli)


def main() -> None:
    load_plugins()
    cli()
