"""billsync's configuration file (`billsync.yaml`): sources, switches, Salesforce settings, mappings.

The file is validated when it is loaded: unknown keys, bad values and references to unknown
connectors are refused with the path of the offending key. `${NAME}` is replaced by the environment
variable NAME (for example `${STAGE}` in secret names), so one file serves every stage.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

_ENV_REF = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
_KEY = re.compile(r"^[a-z][a-z0-9-]{0,19}$")


class ConfigError(ValueError):
    """The configuration cannot be used; the message says where and why."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SalesforceSettings(_Section):
    secret: str = Field(description="Secrets Manager name of the connected-app credentials.")
    api_version: str = Field(default="59.0", pattern=r"^\d{2}\.0$")
    org_id: str | None = Field(default=None, description="Pin: the sync stops if the org differs.")
    api_budget_reserve_percent: float = Field(default=10.0, ge=0, le=90)
    bulk_threshold: int = Field(
        default=10_000,
        ge=1,
        description="Writes of one object in a batch from this many on go as one Bulk API 2.0 job.",
    )
    client_name: str = Field(default="billsync", pattern=r"^[A-Za-z0-9_-]{1,40}$")
    tls_ca_file: str | None = Field(default=None, description="A CA bundle to trust (local stacks only).")
    timeout_seconds: float = Field(default=30.0, gt=0)


class SyncSettings(_Section):
    enabled: bool = True
    mode: Literal["automatic", "manual"] = "automatic"
    initial_since: AwareDatetime | None = None
    lookback_seconds: int = Field(default=60, ge=0)
    safety_lag_seconds: int = Field(default=5, ge=0)
    retry_base_seconds: float = Field(default=30.0, gt=0)
    retry_cap_seconds: float = Field(default=900.0, gt=0)
    log_retention_days: int = Field(default=30, ge=1, le=365)
    mirror_log_to_salesforce: bool = False
    page_size: int = Field(default=200, ge=1, le=200)


class WebhookSettings(_Section):
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=10_485_760)
    replay_window_seconds: int = Field(default=259_200, ge=60)


class SourceSettings(_Section):
    key: str
    connector: str
    secret: str
    default: bool = False
    settings: dict[str, Any] = Field(default_factory=dict)
    tls_ca_file: str | None = None

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not _KEY.match(value):
            raise ValueError(
                "a source key is 1-20 characters: lower-case letters, digits and '-', starting with a letter"
            )
        return value


class ObjectSettings(_Section):
    enabled: bool = True
    mode: Literal["automatic", "manual"] | None = None  # None: the global mode
    delete_policy: Literal["mark", "delete"] = "mark"


class Config(_Section):
    salesforce: SalesforceSettings
    sources: list[SourceSettings] = Field(min_length=1)
    sync: SyncSettings = SyncSettings()
    webhooks: WebhookSettings = WebhookSettings()
    objects: dict[str, ObjectSettings] = Field(default_factory=dict)
    mappings_dir: str | None = None

    # Where the file was read from; relative paths in it are resolved against its folder.
    base_dir: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _sources(self) -> Config:
        keys = [s.key for s in self.sources]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"duplicate source keys: {', '.join(duplicates)}")
        defaults = [s.key for s in self.sources if s.default]
        if len(defaults) > 1:
            raise ValueError(f"only one source may be the default, found: {', '.join(defaults)}")
        return self

    @cached_property
    def by_key(self) -> dict[str, SourceSettings]:
        return {s.key: s for s in self.sources}

    def source(self, key: str) -> SourceSettings:
        try:
            return self.by_key[key]
        except KeyError:
            raise ConfigError(f"unknown source {key!r}; configured: {', '.join(self.by_key)}") from None

    @property
    def default_source(self) -> SourceSettings:
        for s in self.sources:
            if s.default:
                return s
        return self.sources[0]

    def object_settings(self, name: str) -> ObjectSettings:
        return self.objects.get(name, ObjectSettings())

    def object_enabled(self, name: str) -> bool:
        return self.sync.enabled and self.object_settings(name).enabled

    def object_automatic(self, name: str) -> bool:
        mode = self.object_settings(name).mode or self.sync.mode
        return self.object_enabled(name) and mode == "automatic"

    def resolve_path(self, value: str) -> Path:
        path = Path(value)
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        return path

    @property
    def mappings_path(self) -> Path | None:
        return self.resolve_path(self.mappings_dir) if self.mappings_dir else None


def _substitute(value: Any, env: dict[str, str], where: str) -> Any:
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise ConfigError(f"{where}: environment variable {name} is not set")
            return env[name]

        return _ENV_REF.sub(repl, value)
    if isinstance(value, dict):
        return {k: _substitute(v, env, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, env, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def parse_config(
    data: Any, *, base_dir: Path | None = None, env: dict[str, str] | None = None, name: str = "config"
) -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: expected a mapping at the top level")
    data = _substitute(data, dict(os.environ if env is None else env), name)
    try:
        config = Config.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<top>'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{name}: {problems}") from None
    return config


def load_config(path: str | Path, *, env: dict[str, str] | None = None) -> Config:
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration file {file}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from None
    return parse_config(data, base_dir=file.parent, env=env, name=str(file))


def parse_since(value: str) -> datetime:
    """Parse an aware ISO time given on a command line or in an event."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"not an ISO 8601 time: {value!r}") from None
    if parsed.tzinfo is None:
        raise ConfigError(f"the time {value!r} needs a time zone (for example 2024-03-01T00:00:00Z)")
    return parsed
