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


def register(cli: click.Group) -> None:
    cli.add_command(local_group)
