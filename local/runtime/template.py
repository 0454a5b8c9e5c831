"""Read a SAM template the way CloudFormation and the SAM transform do.

YAML with CloudFormation's short-form tags, Parameters (defaults, overrides, validation), pseudo
parameters, Conditions, Mappings, SAM ``Globals`` merged into each resource with SAM's documented rules
(primitives replaced, maps merged, lists additive with the global entries first), SAM's implicit APIs,
and an evaluator for the intrinsic functions. Resource references are answered by a ``ResourceRefs``
object, so the same evaluator serves before and after the resources exist.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

ACCOUNT_ID = "123456789012"
PARTITION = "aws"
URL_SUFFIX = "amazonaws.com"

IMPLICIT_HTTP_API = "ServerlessHttpApi"
IMPLICIT_REST_API = "ServerlessRestApi"

_GLOBALS_SECTIONS = {
    "AWS::Serverless::Function": "Function",
    "AWS::Serverless::HttpApi": "HttpApi",
    "AWS::Serverless::Api": "Api",
    "AWS::Serverless::SimpleTable": "SimpleTable",
}


class TemplateError(Exception):
    """The template cannot be read, or a value in it cannot be resolved."""


class _NoValue:
    """``AWS::NoValue``: the property or list item that holds it is removed."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


# ---------------------------------------------------------------------------------------------- YAML


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader plus the CloudFormation tags; dates stay strings, as CloudFormation reads them."""


_CfnLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    key = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    return {key: value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template_file(path: Path) -> dict[str, Any]:
    """Parse a template file (YAML with short-form tags, or JSON)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"cannot read template {path}: {exc}") from exc
    try:
        document = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=_CfnLoader)  # noqa: S506
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise TemplateError(f"{path}: not a valid template: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path}: a template needs a Resources mapping")
    return document


# ------------------------------------------------------------------------------------------ helpers


def is_intrinsic(value: Any) -> bool:
    """True for ``{"Ref": ...}``, ``{"Condition": ...}`` and ``{"Fn::...": ...}``."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    key, argument = next(iter(value.items()))
    if key == "Condition":
        return isinstance(argument, str)
    return bool(key == "Ref" or str(key).startswith("Fn::"))


def to_text(value: Any) -> str:
    """Render a resolved scalar as CloudFormation does when it needs a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (str, int, float)):
        return str(value)
    raise TemplateError(f"expected a string, got {json.dumps(value, default=str)}")


_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def _sub_names(text: str) -> Iterator[str]:
    for match in _SUB_VARIABLE.finditer(text):
        name = match.group(1).strip()
        if not name.startswith("!"):
            yield name


def references(value: Any) -> set[str]:
    """Logical ids (resources or parameters) that ``value`` refers to through Ref, GetAtt or Sub."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        if len(value) == 1 and "Ref" in value and isinstance(value["Ref"], str):
            found.add(value["Ref"])
        elif len(value) == 1 and "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            if isinstance(target, str):
                target = target.split(".", 1)
            if isinstance(target, list) and target and isinstance(target[0], str):
                found.add(target[0])
        elif len(value) == 1 and "Fn::Sub" in value:
            sub = value["Fn::Sub"]
            text, variables = (sub, {}) if isinstance(sub, str) else (sub[0], sub[1] if len(sub) > 1 else {})
            found |= {name.split(".", 1)[0] for name in _sub_names(text) if name not in variables}
            found |= references(variables)
        else:
            for item in value.values():
                found |= references(item)
    return {name for name in found if not name.startswith("AWS::")}


# ------------------------------------------------------------------------------------------ globals


def _merge_token(value: Any) -> str:
    if isinstance(value, dict):
        return "primitive" if is_intrinsic(value) else "dict"
    if isinstance(value, list):
        return "list"
    return "primitive"


def merge_globals(global_value: Any, local_value: Any) -> Any:
    """SAM's Globals rules: primitives (and intrinsics) are replaced, maps merged, lists additive.

    See the SAM Globals documentation ("Overridable"): map entries of the resource override the global
    ones; for lists the global entries are prepended to the resource's list.
    """
    token = _merge_token(global_value)
    if token != _merge_token(local_value) or token == "primitive":
        return local_value
    if token == "dict":
        merged = dict(global_value)
        for key, value in local_value.items():
            merged[key] = merge_globals(global_value[key], value) if key in global_value else value
        return merged
    return [*global_value, *local_value]


# ----------------------------------------------------------------------------------------- template


@dataclass(frozen=True)
class TemplateResource:
    """One active resource: its properties already carry the SAM Globals for its type."""

    logical_id: str
    type: str
    properties: Mapping[str, Any]
    metadata: Mapping[str, Any]
    depends_on: tuple[str, ...]


class ResourceRefs(Protocol):
    """Answers ``Ref`` and ``Fn::GetAtt`` on resources, as CloudFormation would."""

    def ref(self, logical_id: str) -> Any: ...

    def get_att(self, logical_id: str, attribute: str) -> Any: ...


@dataclass
class Template:
    """A parsed template with its parameters and conditions settled."""

    path: Path
    document: dict[str, Any]
    stack_name: str
    region: str
    parameters: dict[str, Any]
    conditions: dict[str, bool]
    resources: dict[str, TemplateResource]
    inactive: dict[str, str]
    import_values: Mapping[str, str] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def mappings(self) -> Mapping[str, Any]:
        return self.document.get("Mappings") or {}

    @property
    def outputs(self) -> Mapping[str, Any]:
        return self.document.get("Outputs") or {}

    def pseudo_parameters(self) -> dict[str, Any]:
        return pseudo_parameters(self.stack_name, self.region)

    def evaluator(self, refs: ResourceRefs | None) -> Intrinsics:
        return Intrinsics(
            parameters=self.parameters,
            pseudo=self.pseudo_parameters(),
            conditions=self.conditions,
            mappings=self.mappings,
            refs=refs,
            import_values=self.import_values,
            region=self.region,
        )

    def of_type(self, *types: str) -> list[TemplateResource]:
        return [resource for resource in self.resources.values() if resource.type in types]


def pseudo_parameters(stack_name: str, region: str) -> dict[str, Any]:
    return {
        "AWS::Region": region,
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::Partition": PARTITION,
        "AWS::URLSuffix": URL_SUFFIX,
        "AWS::StackName": stack_name,
        "AWS::StackId": f"arn:{PARTITION}:cloudformation:{region}:{ACCOUNT_ID}:stack/{stack_name}/local",
        "AWS::NotificationARNs": [],
        "AWS::NoValue": NO_VALUE,
    }


def load_template(
    path: str | Path,
    *,
    stack_name: str,
    region: str,
    parameter_overrides: Mapping[str, str] | None = None,
    import_values: Mapping[str, str] | None = None,
) -> Template:
    """Parse ``path``, settle parameters and conditions, and apply SAM Globals."""
    template_path = Path(path).resolve()
    document = load_template_file(template_path)
    parameters = resolve_parameters(document.get("Parameters") or {}, parameter_overrides or {})
    pseudo = pseudo_parameters(stack_name, region)
    conditions = evaluate_conditions(
        document.get("Conditions") or {}, parameters, pseudo, document.get("Mappings") or {}, region
    )
    globals_section = document.get("Globals") or {}
    resources: dict[str, TemplateResource] = {}
    inactive: dict[str, str] = {}
    for logical_id, body in document["Resources"].items():
        if not isinstance(body, dict) or not isinstance(body.get("Type"), str):
            raise TemplateError(f"resource {logical_id} has no Type")
        condition = body.get("Condition")
        if condition is not None:
            if condition not in conditions:
                raise TemplateError(f"resource {logical_id} names unknown condition {condition}")
            if not conditions[condition]:
                inactive[logical_id] = f"Condition {condition} is false"
                continue
        resource_type = body["Type"]
        properties = body.get("Properties") or {}
        section = _GLOBALS_SECTIONS.get(resource_type)
        if section and isinstance(globals_section.get(section), dict):
            properties = merge_globals(globals_section[section], properties)
        depends_on = body.get("DependsOn") or []
        resources[logical_id] = TemplateResource(
            logical_id=logical_id,
            type=resource_type,
            properties=properties,
            metadata=body.get("Metadata") or {},
            depends_on=tuple([depends_on] if isinstance(depends_on, str) else depends_on),
        )
    _add_implicit_apis(resources, globals_section)
    return Template(
        path=template_path,
        document=document,
        stack_name=stack_name,
        region=region,
        parameters=parameters,
        conditions=conditions,
        resources=resources,
        inactive=inactive,
        import_values=dict(import_values or {}),
    )


def _add_implicit_apis(resources: dict[str, TemplateResource], globals_section: Mapping[str, Any]) -> None:
    """SAM creates ServerlessHttpApi / ServerlessRestApi for API events that name no API."""
    wanted: dict[str, str] = {}
    for resource in list(resources.values()):
        if resource.type != "AWS::Serverless::Function":
            continue
        for event in (resource.properties.get("Events") or {}).values():
            declared = event.get("Properties") or {}
            if event.get("Type") == "HttpApi" and "ApiId" not in declared:
                wanted[IMPLICIT_HTTP_API] = "AWS::Serverless::HttpApi"
            elif event.get("Type") == "Api" and "RestApiId" not in declared:
                wanted[IMPLICIT_REST_API] = "AWS::Serverless::Api"
    for logical_id, resource_type in wanted.items():
        if logical_id in resources:
            continue
        section = globals_section.get(_GLOBALS_SECTIONS[resource_type])
        properties: dict[str, Any] = dict(section) if isinstance(section, dict) else {}
        if resource_type == "AWS::Serverless::Api":
            properties.setdefault("StageName", "Prod")
        resources[logical_id] = TemplateResource(logical_id, resource_type, properties, {}, ())


# --------------------------------------------------------------------------------------- parameters

_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def resolve_parameters(declared: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, Any]:
    """Apply defaults and overrides, and validate each value against its declaration."""
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise TemplateError(f"parameter overrides name undeclared parameters: {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, declaration in declared.items():
        spec = declaration or {}
        if name in overrides:
            raw = overrides[name]
        elif "Default" in spec:
            raw = spec["Default"]
        else:
            raise TemplateError(f"parameter {name} has no default and no override")
        values[name] = _validate_parameter(name, spec, raw)
    return values


def _validate_parameter(name: str, spec: Mapping[str, Any], raw: Any) -> Any:
    kind = str(spec.get("Type", "String"))
    if kind.startswith("AWS::SSM::Parameter::Value"):
        raise TemplateError(f"parameter {name} reads SSM ({kind}); pass its value as a parameter override")
    is_list = kind == "CommaDelimitedList" or kind.startswith("List<")
    if isinstance(raw, list):
        items = [to_text(item) for item in raw]
    else:
        text = to_text(raw)
        items = [item.strip() for item in text.split(",")] if is_list else [text]
    allowed = [to_text(value) for value in spec.get("AllowedValues") or []]
    for item in items:
        if kind in ("Number", "List<Number>"):
            if not _NUMBER.match(item):
                raise TemplateError(f"parameter {name} must be a number, got {item!r}")
            number = float(item)
            if "MinValue" in spec and number < float(spec["MinValue"]):
                raise TemplateError(f"parameter {name} is below MinValue {spec['MinValue']}: {item}")
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                raise TemplateError(f"parameter {name} is above MaxValue {spec['MaxValue']}: {item}")
            matches = any(float(value) == number for value in allowed if _NUMBER.match(value))
        else:
            matches = item in allowed
        if allowed and not matches:
            raise TemplateError(f"parameter {name} must be one of {allowed}, got {item!r}")
        if "AllowedPattern" in spec and not re.fullmatch(str(spec["AllowedPattern"]), item):
            raise TemplateError(f"parameter {name} does not match {spec['AllowedPattern']}: {item!r}")
        if "MinLength" in spec and len(item) < int(spec["MinLength"]):
            raise TemplateError(f"parameter {name} is shorter than MinLength {spec['MinLength']}")
        if "MaxLength" in spec and len(item) > int(spec["MaxLength"]):
            raise TemplateError(f"parameter {name} is longer than MaxLength {spec['MaxLength']}")
    return items if is_list else items[0]


def evaluate_conditions(
    declared: Mapping[str, Any],
    parameters: Mapping[str, Any],
    pseudo: Mapping[str, Any],
    mappings: Mapping[str, Any],
    region: str,
) -> dict[str, bool]:
    """Evaluate every condition; conditions may refer to each other (cycles are refused)."""
    settled: dict[str, bool] = {}
    in_progress: set[str] = set()

    def condition(name: str) -> bool:
        if name in settled:
            return settled[name]
        if name not in declared:
            raise TemplateError(f"unknown condition {name}")
        if name in in_progress:
            raise TemplateError(f"condition {name} refers to itself")
        in_progress.add(name)
        value = evaluator.resolve(declared[name])
        in_progress.discard(name)
        if not isinstance(value, bool):
            raise TemplateError(f"condition {name} does not evaluate to true or false")
        settled[name] = value
        return value

    evaluator = Intrinsics(
        parameters=parameters,
        pseudo=pseudo,
        conditions=None,
        condition_lookup=condition,
        mappings=mappings,
        refs=None,
        import_values={},
        region=region,
    )
    for name in declared:
        condition(name)
    return settled


# --------------------------------------------------------------------------------------- intrinsics


class Intrinsics:
    """Evaluates CloudFormation intrinsic functions over a template value."""

    def __init__(
        self,
        *,
        parameters: Mapping[str, Any],
        pseudo: Mapping[str, Any],
        conditions: Mapping[str, bool] | None,
        mappings: Mapping[str, Any],
        refs: ResourceRefs | None,
        import_values: Mapping[str, str],
        region: str,
        condition_lookup: Callable[[str], bool] | None = None,
    ) -> None:
        self._parameters = parameters
        self._pseudo = pseudo
        self._conditions = conditions
        self._condition_lookup = condition_lookup
        self._mappings = mappings
        self._refs = refs
        self._imports = import_values
        self._region = region
        self._functions: dict[str, Callable[[Any], Any]] = {
            "Ref": self._ref,
            "Condition": self._condition,
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::If": self._if,
            "Fn::Equals": self._equals,
            "Fn::Not": self._not,
            "Fn::And": self._and,
            "Fn::Or": self._or,
            "Fn::Join": self._join,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
            "Fn::FindInMap": self._find_in_map,
            "Fn::Base64": self._base64,
            "Fn::GetAZs": self._get_azs,
            "Fn::ImportValue": self._import_value,
            "Fn::Length": self._length,
            "Fn::ToJsonString": self._to_json_string,
        }

    def resolve(self, value: Any) -> Any:
        """Resolve every intrinsic in ``value``; ``AWS::NoValue`` entries are dropped."""
        if isinstance(value, list):
            return [item for item in (self.resolve(item) for item in value) if item is not NO_VALUE]
        if isinstance(value, dict):
            if is_intrinsic(value):
                name, argument = next(iter(value.items()))
                function = self._functions.get(name)
                if function is None:
                    raise TemplateError(f"intrinsic function {name} is not supported locally")
                return function(argument)
            resolved = {key: self.resolve(item) for key, item in value.items()}
            return {key: item for key, item in resolved.items() if item is not NO_VALUE}
        return value

    def resolve_text(self, value: Any) -> str:
        return to_text(self.resolve(value))

    # -- references

    def _ref(self, name: Any) -> Any:
        name = self.resolve(name)
        if not isinstance(name, str):
            raise TemplateError(f"Ref needs a name, got {name!r}")
        if name in self._pseudo:
            return self._pseudo[name]
        if name in self._parameters:
            return self._parameters[name]
        if self._refs is None:
            raise TemplateError(f"Ref {name}: only parameters can be referenced here")
        return self._refs.ref(name)

    def _get_att(self, argument: Any) -> Any:
        argument = self.resolve(argument)
        if isinstance(argument, str):
            argument = argument.split(".", 1)
        if not (
            isinstance(argument, list) and len(argument) == 2 and all(isinstance(a, str) for a in argument)
        ):
            raise TemplateError(f"Fn::GetAtt needs [LogicalId, Attribute], got {argument!r}")
        if self._refs is None:
            raise TemplateError(
                f"Fn::GetAtt {argument[0]}.{argument[1]}: resources cannot be referenced here"
            )
        return self._refs.get_att(argument[0], argument[1])

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, str):
            text, variables = argument, {}
        elif isinstance(argument, list) and len(argument) == 2 and isinstance(argument[1], dict):
            text, variables = argument[0], {key: self.resolve(value) for key, value in argument[1].items()}
        else:
            raise TemplateError(f"Fn::Sub needs a string or [string, variables], got {argument!r}")
        if not isinstance(text, str):
            raise TemplateError(f"Fn::Sub needs a string, got {text!r}")

        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return to_text(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return to_text(self._get_att([logical_id, attribute]))
            value = self._ref(name)
            return ",".join(to_text(item) for item in value) if isinstance(value, list) else to_text(value)

        return _SUB_VARIABLE.sub(replace, text)

    # -- conditions

    def _condition(self, name: Any) -> bool:
        if not isinstance(name, str):
            raise TemplateError(f"Condition needs a name, got {name!r}")
        if self._condition_lookup is not None:
            return self._condition_lookup(name)
        if self._conditions is None or name not in self._conditions:
            raise TemplateError(f"unknown condition {name}")
        return self._conditions[name]

    def _truth(self, value: Any) -> bool:
        resolved = self.resolve(value)
        if isinstance(resolved, bool):
            return resolved
        if resolved in ("true", "false"):
            return bool(resolved == "true")
        raise TemplateError(f"expected a condition, got {resolved!r}")

    def _if(self, argument: Any) -> Any:
        if not (isinstance(argument, list) and len(argument) == 3):
            raise TemplateError(f"Fn::If needs [condition, if-true, if-false], got {argument!r}")
        return self.resolve(argument[1] if self._condition(argument[0]) else argument[2])

    def _equals(self, argument: Any) -> bool:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"Fn::Equals needs two values, got {argument!r}")
        left, right = (self.resolve(item) for item in argument)
        if isinstance(left, (list, dict)) or isinstance(right, (list, dict)):
            return bool(left == right)
        return to_text(left) == to_text(right)

    def _not(self, argument: Any) -> bool:
        if not (isinstance(argument, list) and len(argument) == 1):
            raise TemplateError(f"Fn::Not needs one condition, got {argument!r}")
        return not self._truth(argument[0])

    def _and(self, argument: Any) -> bool:
        if not isinstance(argument, list) or not argument:
            raise TemplateError(f"Fn::And needs a list of conditions, got {argument!r}")
        return all(self._truth(item) for item in argument)

    def _or(self, argument: Any) -> bool:
        if not isinstance(argument, list) or not argument:
            raise TemplateError(f"Fn::Or needs a list of conditions, got {argument!r}")
        return any(self._truth(item) for item in argument)

    # -- strings and lists

    def _join(self, argument: Any) -> str:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"Fn::Join needs [delimiter, list], got {argument!r}")
        delimiter, items = self.resolve(argument[0]), self.resolve(argument[1])
        if not isinstance(items, list):
            raise TemplateError(f"Fn::Join needs a list, got {items!r}")
        return to_text(delimiter).join(to_text(item) for item in items)

    def _select(self, argument: Any) -> Any:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"Fn::Select needs [index, list], got {argument!r}")
        index, items = self.resolve(argument[0]), self.resolve(argument[1])
        if not isinstance(items, list):
            raise TemplateError(f"Fn::Select needs a list, got {items!r}")
        position = int(to_text(index))
        if not 0 <= position < len(items):
            raise TemplateError(f"Fn::Select index {position} is out of range for {items!r}")
        return items[position]

    def _split(self, argument: Any) -> list[str]:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"Fn::Split needs [delimiter, string], got {argument!r}")
        delimiter, text = (self.resolve_text(item) for item in argument)
        return text.split(delimiter)

    def _find_in_map(self, argument: Any) -> Any:
        if not (isinstance(argument, list) and len(argument) in (3, 4)):
            raise TemplateError(f"Fn::FindInMap needs [map, key, key], got {argument!r}")
        names = [self.resolve_text(item) for item in argument[:3]]
        try:
            return self._mappings[names[0]][names[1]][names[2]]
        except (KeyError, TypeError):
            if len(argument) == 4 and isinstance(argument[3], dict) and "DefaultValue" in argument[3]:
                return self.resolve(argument[3]["DefaultValue"])
            raise TemplateError(f"Fn::FindInMap: {'/'.join(names)} is not in the Mappings") from None

    def _base64(self, argument: Any) -> str:
        return base64.b64encode(self.resolve_text(argument).encode()).decode()

    def _get_azs(self, argument: Any) -> list[str]:
        region = self.resolve_text(argument) or self._region
        return [f"{region}{zone}" for zone in "abc"]

    def _import_value(self, argument: Any) -> str:
        name = self.resolve_text(argument)
        if name not in self._imports:
            raise TemplateError(f"Fn::ImportValue {name}: pass its value in StackOptions.import_values")
        return self._imports[name]

    def _length(self, argument: Any) -> int:
        items = self.resolve(argument)
        if not isinstance(items, list):
            raise TemplateError(f"Fn::Length needs a list, got {items!r}")
        return len(items)

    def _to_json_string(self, argument: Any) -> str:
        return json.dumps(self.resolve(argument), separators=(",", ":"))
