"""Which deployment an operator command works on, and how its failures are reported.

Every operator command takes the same options: `--stack NAME` (with `--profile` / `--region`) for a
deployed stack, or `--local` for the running local stack; `--config` for the deployment's configuration
(the local stack's own, or config/billsync.yaml); `--json` for output a script reads. The objects a
command may name are those the configuration syncs and the stack deploys.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from billsync.aws.stack import LOCAL_STATE_FILE, Stack, StackError, open_local_stack, open_stack
from billsync.config import Config, ConfigError, load_config, parse_since
from billsync.mappings import MappingSet
from billsync.usecases.catalog import ObjectInfo, object_catalog

DEFAULT_CONFIG = Path("config/billsync.yaml")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass
class Target:
    stack: Stack
    config: Config
    catalog: dict[str, ObjectInfo]  # the objects the configuration syncs and the stack deploys
    as_json: bool

    def objects(self, chosen: Sequence[str] = ()) -> list[str]:
        """The chosen objects (all when none is chosen), each checked against the deployment."""
        for name in chosen:
            self.info(name)
        return list(dict.fromkeys(chosen)) or list(self.catalog)

    def info(self, name: str) -> ObjectInfo:
        info = self.catalog.get(name)
        if info is None:
            known = ", ".join(self.catalog) or "none"
            raise click.UsageError(f"unknown object {name!r}; this deployment syncs: {known}")
        return info

    def emit(self, value: Any) -> None:
        click.echo(json.dumps(value, indent=2, default=str))


def open_target(
    *,
    stack: str | None,
    profile: str | None,
    region: str | None,
    local: bool,
    local_state: str | None,
    config: str | None,
    as_json: bool,
) -> Target:
    if local or local_state:
        if stack:
            raise click.UsageError("give either --stack or --local, not both")
        deployed = open_local_stack(Path(local_state) if local_state else LOCAL_STATE_FILE)
    elif stack:
        deployed = open_stack(stack, profile=profile, region=region)
    else:
        raise click.UsageError(
            "which deployment? give --stack NAME (with --profile/--region), or --local for the local stack"
        )
    path = Path(config) if config else Path(deployed.config_path) if deployed.config_path else DEFAULT_CONFIG
    loaded = load_config(path, env={"STAGE": "dev", **os.environ})
    catalog = object_catalog(loaded, MappingSet(loaded.mappings_path))
    deployed_names = set(deployed.deployed(catalog))
    return Target(
        stack=deployed,
        config=loaded,
        catalog={name: info for name, info in catalog.items() if name in deployed_names},
        as_json=as_json,
    )


def target_command(function: Callable[..., None]) -> Callable[..., None]:
    """Add the deployment options to a command; it receives `target` instead of them."""

    @click.option("--stack", envvar="BILLSYNC_STACK", help="The deployed stack's name (or BILLSYNC_STACK).")
    @click.option("--profile", help="AWS profile (default: AWS_PROFILE or the default profile).")
    @click.option("--region", help="AWS region (default: the profile's, or AWS_REGION).")
    @click.option("--local", is_flag=True, help="Work on the running local stack (`billsync local up`).")
    @click.option(
        "--local-state",
        type=click.Path(dir_okay=False),
        help=f"The local stack's state file (default {LOCAL_STATE_FILE}); implies --local.",
    )
    @click.option(
        "--config",
        type=click.Path(dir_okay=False),
        help=f"The deployment's configuration (default: the local stack's, or {DEFAULT_CONFIG}).",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of tables.")
    @functools.wraps(function)
    def command(
        stack: str | None,
        profile: str | None,
        region: str | None,
        local: bool,
        local_state: str | None,
        config: str | None,
        as_json: bool,
        **arguments: Any,
    ) -> None:
        with operator_errors():
            target = open_target(
                stack=stack,
                profile=profile,
                region=region,
                local=local,
                local_state=local_state,
                config=config,
                as_json=as_json,
            )
            function(target=target, **arguments)

    return command


@contextmanager
def operator_errors() -> Iterator[None]:
    """Turn what can go wrong while operating into one clear line and a non-zero exit."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
    )

    from billsync.aws.dlq import QueueUnknown
    from billsync.aws.functions import FunctionUnknown
    from billsync.aws.queues import QueueNotConfigured
    from billsync.usecases.backfill import BackfillError
    from billsync.usecases.sync_now import PullRunFailed, SyncNowError

    try:
        yield
    except SyncNowError as exc:
        if exc.status == 400:
            raise click.UsageError(str(exc)) from None
        raise click.ClickException(str(exc)) from None
    except (StackError, ConfigError, QueueUnknown, QueueNotConfigured, FunctionUnknown) as exc:
        raise click.ClickException(str(exc)) from None
    except (BackfillError, PullRunFailed) as exc:
        raise click.ClickException(str(exc)) from None
    except NoCredentialsError:
        raise click.ClickException(
            "no AWS credentials found: give --profile, or set AWS_PROFILE or the AWS_ACCESS_KEY_ID variables"
        ) from None
    except EndpointConnectionError as exc:
        raise click.ClickException(f"cannot reach AWS: {exc}") from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise click.ClickException(
            f"AWS refused {exc.operation_name}: {error.get('Code')}: {error.get('Message')}"
        ) from None
    except BotoCoreError as exc:
        raise click.ClickException(f"AWS call failed: {exc}") from None


# ------------------------------------------------------------------------------------ values


def parse_duration(value: str, option: str) -> timedelta:
    """`90s`, `15m`, `2h`, `3d`, `1w`."""
    text = value.strip().lower()
    unit = _DURATION_UNITS.get(text[-1:]) if text else None
    if unit is None or not text[:-1].isdigit():
        raise click.BadParameter(f"{value!r} is not a duration such as 30m, 2h or 3d", param_hint=option)
    return timedelta(seconds=int(text[:-1]) * unit)


def parse_when(value: str, option: str, *, now: datetime | None = None) -> datetime:
    """A time: ISO 8601 with a zone, a date (midnight UTC), or a duration ago (`2h`)."""
    text = value.strip()
    if text[-1:].lower() in _DURATION_UNITS and text[:-1].isdigit():
        return (now or datetime.now(UTC)) - parse_duration(text, option)
    if len(text) == 10 and text[4:5] == "-" and text[7:8] == "-":
        text += "T00:00:00Z"
    try:
        return parse_since(text)
    except ConfigError as exc:
        raise click.BadParameter(
            f"{exc}; give a date (2024-01-31), a time with its zone, or a duration ago (2h)",
            param_hint=option,
        ) from None


def ago(when: datetime | None, now: datetime) -> str:
    """`3m ago`, `2h ago`, or `never`."""
    if when is None:
        return "never"
    seconds = int((now - when).total_seconds())
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"
