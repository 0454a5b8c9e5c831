"""The whole local stack: the AWS stand-in, both emulators and every function wired by template.yaml.

`DevStack` is what the end-to-end tests, the demo and `billsync local up` run. It writes a local
configuration file (the deployed one lives in config/billsync.yaml), puts the credentials in the
local Secrets Manager, registers the stack's webhook URL with the Invoiced emulator and, when asked,
records its endpoints in a state file so the `billsync` command can find a running stack.
"""

from __future__ import annotations

import json
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from local.common.tls import LocalCA
from local.invoiced import InvoicedEmulator, InvoicedSettings
from local.runtime import LocalStack, StackOptions
from local.salesforce import EmulatorSettings, SalesforceEmulator

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "template.yaml"
STAGE = "local"
SOURCE_KEY = "main"
SECOND_SOURCE_KEY = "eu"  # a second Invoiced entity: the emulator's sandbox account
STATE_FILE = Path(".billsync/local/stack.json")


@dataclass
class StackSettings:
    workdir: Path = Path(".billsync/local")
    # Every resource is named `<stack_name>-<LogicalId>`, as CloudFormation names them: stacks of one
    # process (which share the AWS stand-in's backends) keep their queues and tables apart.
    stack_name: str = "billsync-local"
    salesforce: EmulatorSettings | None = None
    invoiced: InvoicedSettings | None = None
    schedules: str = "manual"  # or "timer"
    schedule_interval: float | None = None
    visibility_timeout: int | None = 2  # seconds a failed message stays invisible locally
    retry_base_seconds: float = 1.0  # local backoff: seconds, not minutes
    retry_cap_seconds: float = 15.0
    max_concurrency: int = 2
    function_timeout: float | None = None  # override every function's Timeout (crash tests)
    echo_logs: bool = False
    sync: dict[str, Any] = field(default_factory=dict)  # overrides of the sync section
    objects: dict[str, Any] = field(default_factory=dict)
    salesforce_config: dict[str, Any] = field(default_factory=dict)  # overrides of the salesforce section
    environment: dict[str, str] = field(default_factory=dict)  # more variables for every function
    webhook_secret: str = field(default_factory=lambda: secrets.token_hex(16))


class DevStack:
    def __init__(self, settings: StackSettings | None = None) -> None:
        self.settings = settings or StackSettings()
        self.workdir = self.settings.workdir.resolve()
        self.ca: LocalCA | None = None
        self.salesforce: SalesforceEmulator | None = None
        self.invoiced: InvoicedEmulator | None = None
        self.runtime: LocalStack | None = None
        self.config_path = self.workdir / "billsync.yaml"
        self._reconfigured = False

    # ------------------------------------------------------------------------------ lifecycle

    def start(self) -> DevStack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ca = LocalCA.load_or_create(self.workdir / "ca")
        self.salesforce = SalesforceEmulator(self.ca, settings=self.settings.salesforce).start()
        self.invoiced = InvoicedEmulator(self.ca, settings=self.settings.invoiced).start()
        self.write_config()
        s = self.settings
        api_port = _free_port()
        self.runtime = LocalStack(
            TEMPLATE,
            StackOptions(
                stack_name=s.stack_name,
                parameter_overrides={"Stage": STAGE},
                env_overrides={
                    "*": {
                        "BILLSYNC_CONFIG": str(self.config_path),
                        "POWERTOOLS_METRICS_NAMESPACE": "billsync-local",
                        # Functions that invoke others (the ops function) reach them through the
                        # control API's Lambda Invoke route.
                        "AWS_ENDPOINT_URL_LAMBDA": f"http://127.0.0.1:{api_port}/_local/lambda",
                        **s.environment,
                    }
                },
                api_port=api_port,
                visibility_timeout_override=s.visibility_timeout,
                schedules=s.schedules,  # type: ignore[arg-type]
                schedule_interval_override=s.schedule_interval,
                max_concurrency=s.max_concurrency,
                timeout_override=s.function_timeout,
                logs_dir=self.workdir / "logs",
                echo_logs=s.echo_logs,
            ),
        ).start()
        self.put_secrets()
        self.register_webhook()
        return self

    def stop(self) -> None:
        for part in (self.runtime, self.invoiced, self.salesforce):
            if part is not None:
                part.stop()

    def __enter__(self) -> DevStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Empty every queue, table and emulator, keeping the functions warm (between tests)."""
        assert self.runtime and self.salesforce and self.invoiced
        self.runtime.reset_state()
        self.salesforce.control.reset()
        self.invoiced.control.reset()
        self.register_webhook()
        if self._reconfigured:
            self.reconfigure()

    def reconfigure(
        self, overrides: dict[str, Any] | None = None, *, sources: tuple[str, ...] = (SOURCE_KEY,)
    ) -> None:
        """Deploy a new configuration: write it and start fresh function environments, which read it."""
        assert self.runtime
        self.write_config(overrides, sources=sources)
        self.register_webhook(sources)
        for function in self.runtime.functions:
            self.runtime.kill_worker(function)
        self._reconfigured = bool(overrides) or sources != (SOURCE_KEY,)

    # ------------------------------------------------------------------------------ wiring

    def _accounts(self) -> dict[str, tuple[str, str, str]]:
        """The Invoiced entities a local stack can sync: key -> (emulator account, base URL, API key)."""
        assert self.invoiced
        return {
            SOURCE_KEY: ("production", self.invoiced.base_url, self.invoiced.api_key),
            SECOND_SOURCE_KEY: ("sandbox", self.invoiced.sandbox_base_url, self.invoiced.sandbox_api_key),
        }

    def local_config(self, sources: tuple[str, ...] = (SOURCE_KEY,)) -> dict[str, Any]:
        assert self.ca and self.invoiced
        s = self.settings
        accounts = self._accounts()
        return {
            "salesforce": {
                "secret": f"billsync/{STAGE}/salesforce",
                "tls_ca_file": str(self.ca.ca_file),
                "api_budget_reserve_percent": 10,
                **s.salesforce_config,
            },
            "sync": {
                "lookback_seconds": 5,
                "safety_lag_seconds": 0,  # local clocks are shared; the lookback still covers late commits
                "retry_base_seconds": s.retry_base_seconds,
                "retry_cap_seconds": s.retry_cap_seconds,
                **s.sync,
            },
            "sources": [
                {
                    "key": key,
                    "connector": "invoiced",
                    "default": key == SOURCE_KEY,
                    "secret": f"billsync/{STAGE}/invoiced/{key}",
                    "settings": {"base_url": accounts[key][1]},
                    "tls_ca_file": str(self.ca.ca_file),
                }
                for key in sources
            ],
            "objects": s.objects,
        }

    def write_config(
        self, overrides: dict[str, Any] | None = None, *, sources: tuple[str, ...] = (SOURCE_KEY,)
    ) -> None:
        config = self.local_config(sources)
        for section, values in (overrides or {}).items():
            config[section] = {**config.get(section, {}), **values} if isinstance(values, dict) else values
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def put_secrets(self) -> None:
        assert self.runtime and self.salesforce and self.invoiced
        creds = self.salesforce.credentials
        values: dict[str, dict[str, Any]] = {
            f"billsync/{STAGE}/salesforce": {
                "auth": "client_credentials",
                "login_url": self.salesforce.base_url,
                "consumer_key": creds["consumer_key"],
                "consumer_secret": creds["consumer_secret"],
            },
        }
        for key, (_, _, api_key) in self._accounts().items():
            values[f"billsync/{STAGE}/invoiced/{key}"] = {
                "api_key": api_key,
                "webhook_secrets": [self.settings.webhook_secret],
            }
        client = self.runtime.boto3_client("secretsmanager")
        for name, value in values.items():
            try:
                client.create_secret(Name=name, SecretString=json.dumps(value))
            except client.exceptions.ResourceExistsException:
                client.put_secret_value(SecretId=name, SecretString=json.dumps(value))

    def source_webhook_url(self, key: str) -> str:
        assert self.runtime
        return f"{self.runtime.api_url}/webhooks/{key}"

    @property
    def webhook_url(self) -> str:
        return self.source_webhook_url(SOURCE_KEY)

    def register_webhook(self, sources: tuple[str, ...] = (SOURCE_KEY,)) -> None:
        """Point each source's Invoiced account at the stack's webhook URL (once per account)."""
        assert self.invoiced
        accounts = self._accounts()
        registered = {(w["account"], w["url"]) for w in self.invoiced.control.webhooks()}
        for key in sources:
            account, url = accounts[key][0], self.source_webhook_url(key)
            if (account, url) not in registered:
                self.invoiced.control.add_webhook(url, self.settings.webhook_secret, account=account)

    def write_state_file(self, path: Path = STATE_FILE) -> Path:
        """Record the running stack's endpoints so `billsync --local ...` can reach it."""
        assert self.runtime and self.salesforce and self.invoiced and self.ca
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "stack_name": self.settings.stack_name,
            "aws_endpoint": self.runtime.aws_endpoint,
            "api_url": self.runtime.api_url,
            "outputs": self.runtime.outputs,
            "resources": {k: str(v) for k, v in self.runtime.resources.items()},
            "config": str(self.config_path),
            "salesforce": {"base_url": self.salesforce.base_url, **self.salesforce.credentials},
            "invoiced": {"base_url": self.invoiced.base_url, "api_key": self.invoiced.api_key},
            "ca_file": str(self.ca.ca_file),
            "webhook_url": self.webhook_url,
        }
        path.write_text(json.dumps(state, indent=2, default=str))
        return path


def _free_port() -> int:
    """A port free now on 127.0.0.1, for the stack's API (its functions are told it before it starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
