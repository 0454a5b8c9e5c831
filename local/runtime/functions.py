"""Turn each ``AWS::Serverless::Function`` of the template into what a local worker needs.

The worker's environment is built in layers, later ones winning:

1. a few variables of the host (``PATH``, ``HOME``, locale, temp dir and CA-bundle settings) - nothing
   else leaks in, in particular no ``AWS_*`` variable and no profile;
2. the function's ``Environment.Variables`` (Globals merged, intrinsics resolved, values as strings);
3. what Lambda sets (``AWS_LAMBDA_FUNCTION_NAME``, ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``,
   ``AWS_REGION``, ``_HANDLER``, ``LAMBDA_TASK_ROOT``, ``TZ`` ...) plus ``AWS_LAMBDA_FUNCTION_TIMEOUT``,
   the local AWS endpoint and credentials (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID`` /
   ``AWS_SECRET_ACCESS_KEY`` = ``testing``; ``AWS_CONFIG_FILE`` and ``AWS_SHARED_CREDENTIALS_FILE`` point
   at /dev/null so no local profile applies) and ``LOCAL_LAYER_DIR_<LogicalId>`` for each layer SAM
   would mount at /opt without building it;
4. the caller's overrides: ``env_overrides["*"]``, then ``env_overrides[<LogicalId>]``.

``sys.path`` is the code directory (``CodeUri``), then the ``ContentUri`` of each layer built with a
``python*`` ``BuildMethod`` (SAM copies those to /opt/python), then the project root (the template's
directory), then the interpreter's own path (standard library and installed packages).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.runtime.async_invoke import AsyncConfig, Destination
from local.runtime.resources import FUNCTION_TYPE, NotEmulated, StackResources
from local.runtime.template import TemplateResource, to_text

LAYER_TYPES = ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion")
LOCAL_ACCESS_KEY = "testing"
LOCAL_SECRET_KEY = "testing"  # moto's fixed local credentials, not a secret
_RESOLVED_PROPERTIES = (
    "CodeUri",
    "DeadLetterQueue",
    "Environment",
    "EventInvokeConfig",
    "Handler",
    "Layers",
    "MemorySize",
    "PackageType",
    "Runtime",
    "Timeout",
)
_HOST_VARIABLES = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
)


@dataclass(frozen=True)
class FunctionPlan:
    """A function ready to run (``code_dir`` etc.), or the reason it cannot run locally."""

    logical_id: str
    function_name: str
    function_arn: str
    code_dir: Path | None
    handler: str
    runtime: str
    timeout: float
    memory_mb: int
    environment: dict[str, str]
    sys_path: tuple[str, ...]
    log_group_name: str
    async_config: AsyncConfig
    unavailable: str | None = None
    notes: list[NotEmulated] = field(default_factory=list)


def plan_function(
    resource: TemplateResource,
    refs: StackResources,
    *,
    endpoint: str,
    overrides: Mapping[str, Mapping[str, str]],
    timeout_override: float | None = None,
) -> FunctionPlan:
    """Resolve a function's code location, handler, limits, environment, layers and async settings."""
    template = refs.template
    evaluator = template.evaluator(refs)
    wanted = {key: value for key, value in resource.properties.items() if key in _RESOLVED_PROPERTIES}
    properties = evaluator.resolve(wanted)
    described = refs.describe(resource.logical_id)
    name, arn = described.physical_name, described.arn or ""
    runtime = to_text(properties.get("Runtime", ""))
    handler = to_text(properties.get("Handler", ""))
    timeout = timeout_override or float(to_text(properties.get("Timeout", 3)))
    memory = int(to_text(properties.get("MemorySize", 128)))
    notes: list[NotEmulated] = []
    unavailable = _unavailable(properties, runtime)
    code_dir = None
    if unavailable is None:
        code_dir = (template.root / to_text(properties["CodeUri"])).resolve()
    variables = (properties.get("Environment") or {}).get("Variables") or {}
    python_layers, mounted_layers = _layers(resource, refs, properties.get("Layers") or [], notes)
    log_group = f"/aws/lambda/{name}"
    environment = {key: os.environ[key] for key in _HOST_VARIABLES if key in os.environ}
    environment.update({to_text(key): to_text(value) for key, value in variables.items()})
    environment.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_KEY,
            "AWS_REGION": template.region,
            "AWS_DEFAULT_REGION": template.region,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_FUNCTION_TIMEOUT": to_text(timeout),
            "AWS_LAMBDA_LOG_GROUP_NAME": log_group,
            "LAMBDA_TASK_ROOT": str(code_dir or ""),
            "_HANDLER": handler,
            "TZ": ":UTC",
        }
    )
    environment.update(
        {f"LOCAL_LAYER_DIR_{layer_id}": str(path) for layer_id, path in mounted_layers.items()}
    )
    for key in ("*", resource.logical_id):
        environment.update({name: str(value) for name, value in overrides.get(key, {}).items()})
    sys_path = tuple(str(path) for path in (code_dir, *python_layers, template.root) if path is not None)
    return FunctionPlan(
        logical_id=resource.logical_id,
        function_name=name,
        function_arn=arn,
        code_dir=code_dir,
        handler=handler,
        runtime=runtime,
        timeout=timeout,
        memory_mb=memory,
        environment=environment,
        sys_path=sys_path,
        log_group_name=log_group,
        async_config=_async_config(arn, properties, notes, resource.logical_id),
        unavailable=unavailable,
        notes=notes,
    )


def _unavailable(properties: Mapping[str, Any], runtime: str) -> str | None:
    if properties.get("PackageType") == "Image":
        return "container image functions are not emulated"
    if not runtime.startswith("python"):
        return f"runtime {runtime or '(none)'} is not emulated; only python runtimes run locally"
    if not isinstance(properties.get("CodeUri"), str):
        return "CodeUri must be a local directory (inline code and S3 locations are not emulated)"
    if not properties.get("Handler"):
        return "the function has no Handler"
    return None


def _layers(
    resource: TemplateResource,
    refs: StackResources,
    layer_arns: list[Any],
    notes: list[NotEmulated],
) -> tuple[list[Path], dict[str, Path]]:
    """Split the function's layers into python layers (on sys.path) and mounted ones (env var)."""
    template = refs.template
    local_layers = {refs.describe(layer.logical_id).ref: layer for layer in template.of_type(*LAYER_TYPES)}
    python_layers: list[Path] = []
    mounted: dict[str, Path] = {}
    for arn in layer_arns:
        layer = local_layers.get(to_text(arn))
        content = layer.properties.get("ContentUri") if layer is not None else None
        if layer is None or not isinstance(content, str):
            detail = f"layer {arn} is not in the template as a local directory and is not available"
            notes.append(NotEmulated(resource.logical_id, FUNCTION_TYPE, detail))
            continue
        path = (template.root / content).resolve()
        if str(layer.metadata.get("BuildMethod", "")).startswith("python"):
            python_layers.append(path)
        else:
            mounted[layer.logical_id] = path
    return python_layers, mounted


def _destination(value: Any) -> Destination | None:
    if not isinstance(value, dict) or not value.get("Destination"):
        return None
    arn = to_text(value["Destination"])
    kind = to_text(value.get("Type") or arn.split(":")[2].upper())
    return Destination(kind, arn)


def _async_config(
    arn: str, properties: Mapping[str, Any], notes: list[NotEmulated], logical_id: str
) -> AsyncConfig:
    config = properties.get("EventInvokeConfig") or {}
    destinations = config.get("DestinationConfig") or {}
    for outcome in ("OnSuccess", "OnFailure"):
        declared = destinations.get(outcome)
        if isinstance(declared, dict) and not declared.get("Destination"):
            detail = f"EventInvokeConfig.{outcome}: destinations SAM creates itself are not emulated"
            notes.append(NotEmulated(logical_id, FUNCTION_TYPE, detail))
    dead_letter = properties.get("DeadLetterQueue") or {}
    dead_letter_target = None
    if dead_letter.get("TargetArn"):
        dead_letter_target = Destination(
            to_text(dead_letter.get("Type", "SQS")), to_text(dead_letter["TargetArn"])
        )
    return AsyncConfig(
        function_arn=arn,
        maximum_retry_attempts=int(to_text(config.get("MaximumRetryAttempts", 2))),
        on_success=_destination(destinations.get("OnSuccess")),
        on_failure=_destination(destinations.get("OnFailure")),
        dead_letter=dead_letter_target,
    )
