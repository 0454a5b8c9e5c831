"""`billsync local ...`: run the emulators and the local stack from the command line."""

from __future__ import annotations

import click


@click.group("local")
def local_group() -> None:
    """Run the local stack: emulators, the AWS stand-in and the functions, never deployed."""


@local_group.command("salesforce")
@click.option(
    "--port", type=int, default=8443, show_default=True, help="Port on 127.0.0.1 (0 picks a free one)."
)
@click.option(
    "--ca-file",
    type=click.Path(dir_okay=False),
    default=".billsync/ca/billsync-local-ca.pem",
    show_default=True,
    help="Where the local CA certificate is kept (created if missing).",
)
def salesforce_command(port: int, ca_file: str) -> None:
    """Serve a local Salesforce org over HTTPS until interrupted."""
    from local.salesforce.standalone import serve

    serve(port=port, ca_file=ca_file)


@local_group.command("invoiced")
@click.option(
    "--port", type=int, default=8444, show_default=True, help="Port on 127.0.0.1 (0 picks a free one)."
)
@click.option(
    "--ca-file",
    type=click.Path(dir_okay=False),
    default=".billsync/ca/billsync-local-ca.pem",
    show_default=True,
    help="Where the local CA certificate is kept (created if missing).",
)
def invoiced_command(port: int, ca_file: str) -> None:
    """Serve a local Invoiced account over HTTPS until interrupted."""
    from local.invoiced.standalone import serve

    serve(port=port, ca_file=ca_file)


@local_group.command("up")
@click.option(
    "--schedule-interval",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds between scheduled pulls.",
)
@click.option("--workdir", type=click.Path(file_okay=False), default=".billsync/local", show_default=True)
def up_command(schedule_interval: float, workdir: str) -> None:
    """Run the whole local stack in the foreground and print its endpoints."""
    import json
    import time
    from pathlib import Path

    from local.stack import DevStack, StackSettings

    settings = StackSettings(workdir=Path(workdir), schedules="timer", schedule_interval=schedule_interval)
    with DevStack(settings) as stack:
        assert stack.runtime and stack.salesforce and stack.invoiced
        state = stack.write_state_file()
        click.echo(
            json.dumps(
                {
                    "webhooks": stack.webhook_url,
                    "api": stack.runtime.api_url,
                    "aws_endpoint": stack.runtime.aws_endpoint,
                    "salesforce": stack.salesforce.base_url,
                    "invoiced": stack.invoiced.base_url,
                    "ca_file": str(stack.ca.ca_file) if stack.ca else None,
                    "config": str(stack.config_path),
                    "logs": str(stack.workdir / "logs"),
                    "state_file": str(state),
                },
                indent=2,
            )
        )
        click.echo("The local stack is running; Ctrl-C stops it.", err=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            click.echo("stopping…", err=True)


@click.command("demo")
@click.option("--customers", type=int, default=300, show_default=True)
@click.option("--invoices", type=int, default=3000, show_default=True)
@click.option("--credit-notes", type=int, default=150, show_default=True)
@click.option("--estimates", type=int, default=300, show_default=True)
@click.option("--subscriptions", type=int, default=200, show_default=True)
@click.option("--payments", type=int, default=1200, show_default=True, help="Each pays one invoice.")
@click.option("--notes", type=int, default=200, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the generated data set.")
def demo_command(seed: int, **sizes: int) -> None:
    """Run billsync on the local stack with a realistic data set, and watch it sync."""
    from local.demo.data import BillingSizes
    from local.demo.run import run_demo

    run_demo(sizes=BillingSizes(**sizes), seed=seed)


def register(cli: click.Group) -> None:
    cli.add_command(local_group)
    cli.add_command(demo_command)
