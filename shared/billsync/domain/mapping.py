"""The mapping engine: declarative YAML mappings between a billing system and Salesforce.

A mapping file describes one billsync object in one direction: which Salesforce object it becomes (or
comes from), which field goes where, how each value is converted on the way (transforms, see
`billsync.domain.transforms`), and the child collections (line items, subscription items, payment
applications) that travel with it. docs/mapping.md is the reference of the format.

Mappings are validated completely when they are loaded: a misspelt key, an unknown transform, a
transform that cannot take what the step before it produces, or a field the engine owns all raise
`MappingError` with the file, line and column and the path of the offending key. Applying a loaded
mapping to a record only meets data problems, which raise `FieldMappingError` for that one record.

The module is pure: it reads the YAML text or file handed to it and nothing else.
"""

from __future__ import annotations

import difflib
import re
import string
from collections import abc
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from billsync.domain.transforms import (
    KIND_NAMES,
    Call,
    Kind,
    SubPath,
    TransformConfigError,
    TransformError,
    TransformStep,
    check_kinds,
    compile_steps,
    describe_value,
    kind_of,
    pydantic_error_text,
    run_steps,
    scalar_value,
    text_of,
)

__all__ = [
    "ChildSalesforce",
    "ChildSpec",
    "FieldMappingError",
    "FieldSpec",
    "MappedChild",
    "MappedRecord",
    "Mapping",
    "MappingContext",
    "MappingError",
    "MappingProblem",
    "SalesforceTarget",
    "apply_mapping",
    "load_mapping",
    "load_mapping_dict",
    "relationship_id_field",
]

Direction = Literal["to_salesforce", "to_billing"]
Owner = Literal["origin", "billing"]
Owners = Literal["all", "billing"]

_SF_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_SNAKE = re.compile(r"[a-z][a-z0-9_]*")
_BILLING_TARGET = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z_][A-Za-z0-9_\-]*)*")
_ORDER_BY = re.compile(r"[A-Za-z][A-Za-z0-9_.]*(?:\s+(?:ASC|DESC|asc|desc))?(?:\s+NULLS\s+(?:FIRST|LAST))?")
_MAX_NODES = 50_000  # a mapping file is small; this stops alias bombs before they expand


# --- errors ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MappingProblem:
    """One configuration mistake: where it is and what is wrong."""

    path: str  # e.g. "fields[3].transform[0].picklist"; "" for the whole file
    message: str
    line: int | None = None  # 1-based, when the mapping was loaded from YAML
    column: int | None = None


class MappingError(ValueError):
    """A mapping billsync refuses to use. The message lists every problem found, one a line, each as
    `<name>:<line>:<column>: <path>: <message>` (the position when the mapping was read from YAML).

    Raise it with a list of `MappingProblem`s, or with a plain message for a problem of the whole mapping.
    """

    def __init__(self, problems: str | abc.Sequence[MappingProblem], name: str | None = None) -> None:
        if isinstance(problems, str):
            problems = [MappingProblem("", problems)]
        if not problems:
            raise ValueError("a MappingError needs at least one problem")
        self.name = name
        self.problems = tuple(problems)
        first = self.problems[0]
        self.path, self.line, self.column = first.path, first.line, first.column
        super().__init__("\n".join(self._describe(problem) for problem in self.problems))

    def _describe(self, problem: MappingProblem) -> str:
        where = [self.name] if self.name else []
        if problem.line is not None:
            where.append(f"{problem.line}:{problem.column}")
        parts = [":".join(where)] if where else []
        parts += [problem.path] if problem.path else []
        return ": ".join([*parts, problem.message])

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.problems, self.name))


class FieldMappingError(ValueError):
    """A record that cannot be mapped. `errors` lists every (target field, reason); `field`/`reason` are the first.

    Reasons never contain the value of a sensitive field, nor anything that looks like a card number.
    """

    def __init__(
        self, field_or_errors: str | abc.Sequence[tuple[str, str]], reason: str | None = None
    ) -> None:
        if isinstance(field_or_errors, str):
            errors = [(field_or_errors, reason or "")]
        else:
            errors = [(str(field), str(why)) for field, why in field_or_errors]
        if not errors:
            raise ValueError("a FieldMappingError needs at least one error")
        self.errors = errors
        self.field, self.reason = errors[0]
        if len(errors) == 1:
            message = f"{self.field}: {self.reason}"
        else:
            message = f"{len(errors)} fields cannot be mapped: " + "; ".join(f"{f}: {r}" for f, r in errors)
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.errors,))


def _problems(problems: abc.Sequence[tuple[SubPath, str]]) -> PydanticCustomError:
    """Report problems found below the value being validated, each with its own path."""
    return PydanticCustomError(
        "billsync_mapping", "{message}", {"message": problems[0][1], "problems": [list(p) for p in problems]}
    )


# --- paths ----------------------------------------------------------------------------------------

_SPECIALS = ("$index", "$source", "$id")
_SPECIAL_KINDS: dict[str, Kind] = {"$index": "integer", "$source": "text", "$id": "text"}
_SEGMENT = re.compile(r"([^.\[\]{}\s$][^.\[\]{}\s]*)((?:\[-?\d+\])*)")


@dataclass(frozen=True)
class _Path:
    text: str
    special: str | None  # "$index", "$source", "$id", "$parent" or None
    steps: tuple[str | int, ...]  # keys and list indexes, below the record (or the parent for $parent)


@lru_cache(maxsize=4096)
def _parse_path(text: str) -> _Path:
    """A source path → its steps. Raises ValueError with a reason for paths that are not well formed."""
    if text in _SPECIALS:
        return _Path(text, text, ())
    special, rest = None, text
    if text.startswith("$parent."):
        special, rest = "$parent", text[len("$parent.") :]
    elif text.startswith("$"):
        raise ValueError(f"unknown special path {text!r} (known: $index, $source, $id, $parent.<path>)")
    steps: list[str | int] = []
    for segment in rest.split("."):
        match = _SEGMENT.fullmatch(segment)
        if not match:
            raise ValueError(
                f"{text!r} is not a path (keys joined by dots, with list indexes like items[0].name)"
            )
        steps.append(match.group(1))
        steps.extend(int(index) for index in re.findall(r"-?\d+", match.group(2)))
    return _Path(text, special, tuple(steps))


_MISSING: Any = object()


def _walk(value: Any, steps: abc.Iterable[str | int]) -> Any:
    for step in steps:
        if isinstance(step, int):
            if (
                isinstance(value, abc.Sequence)
                and not isinstance(value, str | bytes)
                and -len(value) <= step < len(value)
            ):
                value = value[step]
            else:
                return _MISSING
        elif isinstance(value, abc.Mapping) and step in value:
            value = value[step]
        else:
            return _MISSING
    return value


def _checked_path(text: str) -> str:
    _parse_path(text)
    return text


SourcePath = Annotated[StrictStr, AfterValidator(_checked_path)]


@lru_cache(maxsize=1024)
def _template_parts(template: str) -> tuple[tuple[str, str | None], ...]:
    """A template → (literal text, placeholder path or None) pairs. Raises ValueError when malformed."""
    parts: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        if name is not None:
            if spec or conversion:
                raise ValueError(
                    f"{{{name}}}: format specs are not supported; convert values with transforms"
                )
            if not name:
                raise ValueError("an empty placeholder {}: write the source path between the braces")
            _parse_path(name)
        parts.append((literal, name))
    return tuple(parts)


# --- the model of a mapping file ------------------------------------------------------------------


def _salesforce_name(value: str) -> str:
    if not _SF_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a Salesforce API name")
    return value


def _snake_case(value: str) -> str:
    if not _SNAKE.fullmatch(value):
        raise ValueError(f"{value!r} is not a snake_case name")
    return value


def _at_least_one(value: Any) -> Any:
    if isinstance(value, list | tuple) and not value:
        raise ValueError("give at least one field")
    return value


SalesforceName = Annotated[StrictStr, AfterValidator(_salesforce_name)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class SalesforceTarget(_Model):
    """The Salesforce side of a mapping, and the fields billsync itself maintains there."""

    object: SalesforceName
    external_id: SalesforceName
    origin_field: SalesforceName | None = None
    synced_at_field: SalesforceName | None = None
    version_field: SalesforceName | None = None
    deleted_field: SalesforceName | None = None
    where: StrictStr | None = None  # to_billing: a SOQL condition selecting the records that flow
    # to_billing: the Salesforce field (or relationship path) naming the billing source a record goes to
    source_field: SourcePath | None = None

    def engine_fields(self) -> tuple[str, ...]:
        """The fields billsync fills itself; a mapping may not write them."""
        named = (
            self.external_id,
            self.origin_field,
            self.synced_at_field,
            self.version_field,
            self.deleted_field,
        )
        return tuple(name for name in named if name)


class FieldSpec(_Model):
    """One mapped field: where its value comes from, how it is converted, where it goes."""

    to: StrictStr
    from_: tuple[SourcePath, ...] | None = Field(default=None, alias="from")
    constant: Any = None
    template: StrictStr | None = None
    transform: tuple[TransformStep, ...] = ()
    default: Any = None
    owner: Owner = "origin"
    sensitive: StrictBool = False

    @field_validator("from_", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list | tuple) and not value:
            raise ValueError("give at least one path")
        return value

    @field_validator("constant", "default")
    @classmethod
    def _scalar(cls, value: Any) -> Any:
        return scalar_value(value)

    @field_validator("transform", mode="before")
    @classmethod
    def _compile(cls, value: Any) -> tuple[TransformStep, ...]:
        try:
            return compile_steps(value)
        except TransformConfigError as error:
            raise _problems(error.problems) from None

    @field_validator("template")
    @classmethod
    def _parse_template(cls, value: str) -> str:
        _template_parts(value)
        return value

    @field_serializer("transform")
    def _as_written(self, steps: tuple[TransformStep, ...]) -> list[Any]:
        return [step.as_written() for step in steps]

    @model_validator(mode="after")
    def _check(self) -> FieldSpec:
        sources = {
            "from": self.from_ is not None,
            "constant": self.has_constant,
            "template": self.template is not None,
        }
        given = [name for name, present in sources.items() if present]
        if len(given) != 1:
            found = " and ".join(given) if given else "none"
            raise _problems([((), f"give exactly one of from, constant, template (found {found})")])
        kind, problems = check_kinds(self.transform, self._source_kind())
        problems = [(("transform", *path), message) for path, message in problems]
        if self.has_constant and not problems:
            try:
                run_steps(self.constant, self.transform, Call("source"))
            except TransformError as error:
                problems.append((("constant",), f"the transforms refuse this constant: {error.reason}"))
        if self.has_default and self.default is not None and kind in {"text", "number", "integer", "boolean"}:
            default_kind = kind_of(self.default)
            if not (default_kind == kind or (kind == "number" and default_kind == "integer")):
                hint = " (quote it to make it text)" if kind == "text" else ""
                problems.append(
                    (
                        ("default",),
                        f"the value is {KIND_NAMES[kind]} but the default is {KIND_NAMES[default_kind]}{hint}",
                    )
                )
        if problems:
            raise _problems(problems)
        return self

    @property
    def has_constant(self) -> bool:
        return "constant" in self.model_fields_set

    @property
    def has_default(self) -> bool:
        return "default" in self.model_fields_set

    def _source_kind(self) -> Kind:
        if self.template is not None:
            return "text"
        if self.has_constant:
            return kind_of(self.constant)
        if self.from_ is not None and len(self.from_) == 1:
            return _SPECIAL_KINDS.get(self.from_[0], "any")
        return "any"

    def paths(self) -> list[str]:
        """Every path this field reads, special paths included, in the order written."""
        if self.from_ is not None:
            return list(self.from_)
        if self.template is not None:
            return [name for _, name in _template_parts(self.template) if name]
        return []


class ChildSalesforce(_Model):
    """The Salesforce side of a child collection."""

    object: SalesforceName
    external_id: SalesforceName
    parent_field: SalesforceName | None = None  # to_salesforce: the relationship to the parent (Invoice__r)
    relationship: SalesforceName | None = None  # to_billing: the child relationship read (Lines__r)
    order_by: StrictStr | None = None  # to_billing: the order children are read in

    @field_validator("order_by")
    @classmethod
    def _order(cls, value: str) -> str:
        if not _ORDER_BY.fullmatch(value.strip()):
            raise ValueError(f"{value!r} is not a field to order by (Line_Number__c, optionally ASC or DESC)")
        return value.strip()


class ChildSpec(_Model):
    """A child collection that travels with its parent record: line items, subscription items, applications."""

    from_: SourcePath = Field(alias="from")
    id: SourcePath | None = None
    to: StrictStr | None = None  # to_billing: where the list goes in the billing record
    owner: Owner = "origin"
    salesforce: ChildSalesforce
    fields: Annotated[tuple[FieldSpec, ...], BeforeValidator(_at_least_one)]

    @property
    def relationship(self) -> str:
        """The Salesforce child relationship a to_billing collection reads."""
        return self.salesforce.relationship or self.from_

    def source_paths(self) -> list[str]:
        """The paths read inside each child (the id first), without special paths or $parent ones."""
        paths = [self.id] if self.id else []
        paths += [path for spec in self.fields for path in spec.paths()]
        return _unique(path for path in paths if _parse_path(path).special is None)

    def parent_paths(self) -> list[str]:
        """The paths of the parent record that the child fields read through `$parent.`."""
        paths = (_parse_path(path) for spec in self.fields for path in spec.paths())
        return _unique(path.text[len("$parent.") :] for path in paths if path.special == "$parent")

    def target_fields(self) -> list[str]:
        return [spec.to for spec in self.fields]


class Mapping(_Model):
    """A mapping file: one billsync object in one direction."""

    object: Annotated[StrictStr, AfterValidator(_snake_case)]
    direction: Direction
    salesforce: SalesforceTarget
    fields: Annotated[tuple[FieldSpec, ...], BeforeValidator(_at_least_one)]
    children: dict[StrictStr, ChildSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Mapping:
        problems = _check_mapping(self)
        if problems:
            raise _problems(problems)
        return self

    def source_paths(self) -> list[str]:
        """Every source path the mapping reads, in the order written, without special paths.

        Children's paths follow their collection's list path with `[]`: `items[].quantity` for a
        billing source, `Lines__r[].Quantity__c` for a Salesforce one. `$parent.` paths of children are
        listed as the parent paths they are.
        """
        paths = [path for spec in self.fields for path in spec.paths() if _parse_path(path).special is None]
        for child in self.children.values():
            paths += [f"{child.from_}[].{path}" for path in child.source_paths()]
            paths += child.parent_paths()
        return _unique(paths)

    def target_fields(self, owners: Owners = "all") -> list[str]:
        """The target fields of the record itself (dotted paths for to_billing), in the order written.

        to_billing children add their `to` (the list field they fill); a to_salesforce child writes its
        own object, so its fields are `children[name].target_fields()`.
        """
        targets = [spec.to for spec in self.fields if owners == "all" or spec.owner == "billing"]
        targets += [
            child.to
            for child in self.children.values()
            if child.to is not None and (owners == "all" or child.owner == "billing")
        ]
        return targets


def _unique(items: abc.Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def relationship_id_field(name: str) -> str:
    """The lookup field behind a relationship name: Account__r → Account__c, Account → AccountId, Parent → ParentId."""
    if _SF_NAME.fullmatch(name) and name.endswith("__r"):
        return name[:-3] + "__c"
    if _SF_NAME.fullmatch(name) and "__" not in name and not name.endswith("Id"):
        return name + "Id"
    raise ValueError(f"{name!r} is not a relationship name (Account__r, Account, Parent)")


# --- the checks that need the whole mapping -------------------------------------------------------


def _check_mapping(mapping: Mapping) -> list[tuple[SubPath, str]]:
    problems: list[tuple[SubPath, str]] = []
    to_salesforce = mapping.direction == "to_salesforce"
    if to_salesforce and mapping.salesforce.where is not None:
        problems.append(
            (("salesforce", "where"), "where selects the Salesforce records of to_billing mappings")
        )
    source_field = mapping.salesforce.source_field
    if to_salesforce and source_field is not None:
        problems.append(
            (
                ("salesforce", "source_field"),
                "source_field is for to_billing; write the source with from: $source",
            )
        )
    elif source_field is not None and not _is_salesforce_path(_parse_path(source_field)):
        problems.append(
            (("salesforce", "source_field"), f"{source_field!r}: name a field or a relationship path")
        )
    problems += _check_fields(
        mapping, mapping.fields, ("fields",), set(mapping.salesforce.engine_fields()), child=False
    )
    targets: list[tuple[SubPath, str]] = [
        (("fields", i, "to"), spec.to) for i, spec in enumerate(mapping.fields)
    ]
    for name, child in mapping.children.items():
        base: SubPath = ("children", name)
        problems += _check_child(mapping, name, child, base)
        managed = {child.salesforce.external_id}
        if to_salesforce and child.salesforce.parent_field:
            managed.add(child.salesforce.parent_field)
            if child.salesforce.parent_field.endswith("__r"):
                managed.add(relationship_id_field(child.salesforce.parent_field))
        problems += _check_fields(mapping, child.fields, (*base, "fields"), managed, child=True)
        if child.to is not None:
            taken = [at for at, target in targets if target == child.to]
            if taken:
                problems.append(
                    ((*base, "to"), f"{child.to} is already mapped by {_format_path(taken[0][:-1])}")
                )
            targets.append(((*base, "to"), child.to))
    if not to_salesforce:
        problems += _check_nesting(targets)
    return problems


def _check_child(mapping: Mapping, name: str, child: ChildSpec, base: SubPath) -> list[tuple[SubPath, str]]:
    problems: list[tuple[SubPath, str]] = []
    sf = child.salesforce
    if not _SNAKE.fullmatch(name):
        problems.append((base, f"{name!r}: name child collections in snake_case (lines, items)"))
    if _parse_path(child.from_).special is not None:
        problems.append(((*base, "from"), "from is the path of the list of children in the record"))
    if child.id is not None and _parse_path(child.id).special not in (None, "$index"):
        problems.append(((*base, "id"), "id is a path inside each child (or $index for the position)"))
    if mapping.direction == "to_salesforce":
        if child.to is not None:
            problems.append(
                ((*base, "to"), "to is for to_billing children; this child writes its own Salesforce object")
            )
        if child.id is None:
            problems.append(
                (
                    base,
                    "'id' is required: the path of each child's own id, which its external id is built from",
                )
            )
        if sf.parent_field is None:
            problems.append(
                (
                    (*base, "salesforce"),
                    "'parent_field' is required: the relationship to the parent (Invoice__r)",
                )
            )
        elif sf.parent_field.endswith("__c") or sf.parent_field.endswith("Id"):
            problems.append(
                (
                    (*base, "salesforce", "parent_field"),
                    f"{sf.parent_field!r} is a lookup field; name the relationship (Invoice__r)",
                )
            )
        for key in ("relationship", "order_by"):
            if getattr(sf, key) is not None:
                problems.append(((*base, "salesforce", key), f"{key} is for to_billing children"))
    else:
        if child.to is None:
            problems.append((base, "'to' is required: the billing field that receives the list (items)"))
        elif not _BILLING_TARGET.fullmatch(child.to):
            problems.append(((*base, "to"), f"{child.to!r} is not a billing field path"))
        if child.owner != "origin":
            problems.append(((*base, "owner"), "owner: billing is for to_salesforce mappings"))
        if sf.parent_field is not None:
            problems.append(
                ((*base, "salesforce", "parent_field"), "parent_field is for to_salesforce children")
            )
        if not _SF_NAME.fullmatch(child.from_):
            problems.append(((*base, "from"), f"{child.from_!r}: name the child relationship (Lines__r)"))
        elif sf.relationship is not None and sf.relationship != child.from_:
            problems.append(
                (
                    (*base, "salesforce", "relationship"),
                    f"the relationship is read from {child.from_!r}; the two must agree",
                )
            )
    return problems


def _check_fields(
    mapping: Mapping, specs: abc.Sequence[FieldSpec], base: SubPath, managed: set[str], *, child: bool
) -> list[tuple[SubPath, str]]:
    problems: list[tuple[SubPath, str]] = []
    to_salesforce = mapping.direction == "to_salesforce"
    seen: dict[str, int] = {}
    for index, spec in enumerate(specs):
        at: SubPath = (*base, index)
        if to_salesforce and not _SF_NAME.fullmatch(spec.to):
            problems.append(((*at, "to"), f"{spec.to!r} is not a Salesforce field API name"))
        elif not to_salesforce and not _BILLING_TARGET.fullmatch(spec.to):
            problems.append(
                ((*at, "to"), f"{spec.to!r} is not a billing field path (names joined by dots: ship_to.city)")
            )
        if spec.to in managed:
            problems.append(((*at, "to"), f"{spec.to} is filled by billsync itself; remove this field"))
        if spec.to in seen:
            problems.append(((*at, "to"), f"{spec.to} is already mapped by {_label(base, seen[spec.to])}"))
        seen.setdefault(spec.to, index)
        key = "template" if spec.template is not None else "from"
        for path in map(_parse_path, spec.paths()):
            if path.special in ("$index", "$parent") and not child:
                problems.append(((*at, key), f"{path.special} is only available inside children"))
            if not to_salesforce and path.special is None and not _is_salesforce_path(path):
                problems.append(
                    (
                        (*at, key),
                        f"{path.text!r}: Salesforce paths are field names joined by dots (Account__r.Name)",
                    )
                )
        if child and spec.owner != "origin":
            problems.append(((*at, "owner"), "set owner on the child collection, not on its fields"))
        if not to_salesforce and spec.owner != "origin":
            problems.append(((*at, "owner"), "owner: billing is for to_salesforce mappings"))
        problems += _check_link(spec, at, to_salesforce)
    if to_salesforce:
        for index, spec in enumerate(specs):
            if spec.to.endswith("__r") and relationship_id_field(spec.to) in seen:
                lookup = relationship_id_field(spec.to)
                problems.append(
                    (
                        (*base, index, "to"),
                        f"{spec.to} and {lookup} ({_label(base, seen[lookup])}) set the same lookup",
                    )
                )
    return problems


def _is_salesforce_path(path: _Path) -> bool:
    return path.special is None and all(
        isinstance(step, str) and _SF_NAME.fullmatch(step) for step in path.steps
    )


def _check_link(spec: FieldSpec, at: SubPath, to_salesforce: bool) -> list[tuple[SubPath, str]]:
    names = [step.name for step in spec.transform]
    if "parent" in names and not to_salesforce:
        return [
            ((*at, "transform"), "parent links are written to Salesforce; read a billsync id with source_id")
        ]
    if not to_salesforce:
        return []
    if names and names[-1] == "parent":
        if spec.to.endswith("__c"):
            return [
                (
                    (*at, "to"),
                    f"a parent link is written to the relationship ({spec.to[:-3]}__r), not to {spec.to}",
                )
            ]
        if spec.to.endswith("Id") and "__" not in spec.to:
            return [
                (
                    (*at, "to"),
                    f"a parent link is written to the relationship ({spec.to[:-2]}), not to {spec.to}",
                )
            ]
    elif spec.to.endswith("__r"):
        return [((*at, "to"), f"{spec.to} is a relationship: end the transform list with parent")]
    return []


def _check_nesting(targets: abc.Sequence[tuple[SubPath, str]]) -> list[tuple[SubPath, str]]:
    problems: list[tuple[SubPath, str]] = []
    names = {target for _, target in targets}
    for at, target in targets:
        parts = target.split(".")
        for end in range(1, len(parts)):
            outer = ".".join(parts[:end])
            if outer in names:
                problems.append((at, f"{target} is inside {outer}, which is mapped as a whole"))
    return problems


def _label(base: SubPath, index: int) -> str:
    return _format_path((*base, index))


def _format_path(loc: abc.Sequence[Any]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


# --- loading --------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """YAML with 1.2-style plain scalars: only true/false are booleans, 010 is ten, numbers with a
    point are exact Decimals, and dates stay text (use iso_date to make a date)."""


_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag
        not in {
            "tag:yaml.org,2002:bool",
            "tag:yaml.org,2002:int",
            "tag:yaml.org,2002:float",
            "tag:yaml.org,2002:timestamp",
        }
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0x[0-9a-fA-F]+|0o[0-7]+)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = str(loader.construct_scalar(node)).replace("_", "")  # type: ignore[arg-type]
    try:
        if text.startswith(("0x", "0o")):
            return int(text, 16 if text[1] == "x" else 8)
        return int(text, 10)
    except ValueError:
        raise yaml.constructor.ConstructorError(
            None, None, f"{text!r} is not an integer", node.start_mark
        ) from None


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.Node) -> Decimal:
    text = str(loader.construct_scalar(node)).replace("_", "")  # type: ignore[arg-type]
    if text.lstrip("+-").lower() in {".inf", ".nan"}:
        raise yaml.constructor.ConstructorError(
            None, None, "infinite and NaN numbers are not supported", node.start_mark
        )
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise yaml.constructor.ConstructorError(
            None, None, f"{text!r} is not a number", node.start_mark
        ) from None
    if not number.is_finite():  # an explicit !!float Infinity
        raise yaml.constructor.ConstructorError(
            None, None, "infinite and NaN numbers are not supported", node.start_mark
        )
    return number


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)

_MERGE = "tag:yaml.org,2002:merge"
Marks = dict[tuple[str | int, ...], yaml.Mark]


def _size(node: yaml.Node, memo: dict[int, int], stack: set[int]) -> int:
    """How many nodes the document has once aliases are expanded (refusing recursive aliases)."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in stack:
        raise MappingError(
            [
                MappingProblem(
                    "",
                    "recursive aliases are not supported",
                    node.start_mark.line + 1,
                    node.start_mark.column + 1,
                )
            ]
        )
    stack.add(key)
    total = 1
    if isinstance(node, yaml.MappingNode):
        total += sum(_size(k, memo, stack) + _size(v, memo, stack) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        total += sum(_size(item, memo, stack) for item in node.value)
    stack.discard(key)
    memo[key] = min(total, _MAX_NODES + 1)
    return memo[key]


def _walk_nodes(
    node: yaml.Node, path: tuple[str | int, ...], marks: Marks, problems: list[MappingProblem]
) -> None:
    """Record where each key and list item starts, and find keys written twice in one mapping."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = str(key_node.value)
            at = (*path, key)
            if key in seen:
                mark = key_node.start_mark
                problems.append(
                    MappingProblem(
                        _format_path(at), f"{key!r} is written twice", mark.line + 1, mark.column + 1
                    )
                )
            seen.add(key)
            marks.setdefault(at, key_node.start_mark)
            _walk_nodes(value_node, at, marks, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            at = (*path, index)
            marks.setdefault(at, item.start_mark)
            _walk_nodes(item, at, marks, problems)


def _parse_yaml(text: str, name: str) -> tuple[Any, Marks]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise MappingError([MappingProblem("", "the mapping is empty")], name)
        if _size(node, {}, set()) > _MAX_NODES:
            raise MappingError(
                [
                    MappingProblem(
                        "", f"the document has more than {_MAX_NODES} nodes once its aliases are expanded"
                    )
                ],
                name,
            )
        marks: Marks = {(): node.start_mark}
        problems: list[MappingProblem] = []
        _walk_nodes(node, (), marks, problems)
        if problems:
            raise MappingError(problems, name)
        return loader.construct_document(node), marks
    except MappingError as error:
        raise MappingError(error.problems, name) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        message = " ".join(part for part in (error.context, error.problem) if part) or "not valid YAML"
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise MappingError([MappingProblem("", f"not valid YAML: {message}", line, column)], name) from None
    except yaml.YAMLError as error:
        raise MappingError([MappingProblem("", f"not valid YAML: {error}")], name) from None
    except RecursionError:
        raise MappingError([MappingProblem("", "the document is nested too deeply")], name) from None
    finally:
        loader.dispose()


def load_mapping(source: str | Path, *, name: str | None = None) -> Mapping:
    """Load a mapping from YAML text or a file.

    A `Path`, or a one-line string ending in .yaml or .yml, is read as a file; any other string is the
    YAML itself. `name` is what error messages call the mapping (the file path by default).
    """
    if isinstance(source, Path) or ("\n" not in source and source.endswith((".yaml", ".yml"))):
        path = Path(source)
        label = name or str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise MappingError(
                [MappingProblem("", f"cannot read the file: {error.strerror or error}")], label
            ) from None
        except UnicodeDecodeError:
            raise MappingError([MappingProblem("", "the file is not UTF-8 text")], label) from None
    else:
        text, label = source, name or "<string>"
    data, marks = _parse_yaml(text, label)
    return _validate(data, label, marks)


def load_mapping_dict(data: abc.Mapping[str, Any], *, name: str = "<dict>") -> Mapping:
    """Validate a mapping given as a dict (as YAML or JSON would parse it)."""
    return _validate(data, name, {})


_KNOWN_KEYS = sorted(
    {
        field.alias or key
        for model in (Mapping, SalesforceTarget, FieldSpec, ChildSpec, ChildSalesforce)
        for key, field in model.model_fields.items()
    }
)


def _validate(data: Any, name: str, marks: Marks) -> Mapping:
    if not isinstance(data, abc.Mapping):
        raise MappingError(
            [MappingProblem("", f"expected a mapping at the top level, got {describe_value(data)}")], name
        )
    try:
        return Mapping.model_validate(data)
    except ValidationError as error:
        problems: list[MappingProblem] = []
        for item in error.errors():
            loc = tuple(item["loc"])
            if item["type"] == "billsync_mapping":
                found = [((*loc, *sub), message) for sub, message in item["ctx"]["problems"]]
            else:
                found = [(loc, _error_text(item))]
            for at, message in found:
                mark = _nearest_mark(marks, at)
                line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
                problems.append(MappingProblem(_format_path(at), message, line, column))
        problems.sort(key=lambda problem: (problem.line or 0, problem.column or 0))
        raise MappingError(problems, name) from None


def _error_text(error: abc.Mapping[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        key = str(error["loc"][-1])
        close = difflib.get_close_matches(key, _KNOWN_KEYS, n=1)
        return f"unknown key {key!r}" + (f": did you mean {close[0]!r}?" if close else "")
    return pydantic_error_text(error)


def _nearest_mark(marks: Marks, loc: tuple[Any, ...]) -> yaml.Mark | None:
    parts = tuple(part if isinstance(part, int) else str(part) for part in loc)
    while parts:
        if parts in marks:
            return marks[parts]
        parts = parts[:-1]
    return marks.get(())


# --- applying -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MappingContext:
    """What a mapping knows about the record besides its content."""

    source_key: str  # the billing source, e.g. "main"
    record_id: str | None  # the record's own id ($id): the vendor id, or the Salesforce id for to_billing

    def __post_init__(self) -> None:
        if not self.source_key or ":" in self.source_key:
            raise ValueError(f"{self.source_key!r} is not a source key")


@dataclass(frozen=True)
class MappedChild:
    id: str | None  # the child's vendor id; None for a child created in Salesforce without one
    fields: dict[str, Any]


@dataclass(frozen=True)
class MappedRecord:
    """A mapped record.

    A collection is missing from `children` when it was not applied (owners), or when the billing record
    does not carry its list (missing or null): billsync then leaves the existing children alone. An empty
    list means the record has no children.
    """

    fields: dict[str, Any]
    children: dict[str, list[MappedChild]]


@dataclass(frozen=True)
class _Scope:
    record: abc.Mapping[str, Any]
    ctx: MappingContext
    record_id: str | None
    index: int | None = None  # 1-based position inside a child list
    parent: abc.Mapping[str, Any] | None = None

    def read(self, path: _Path) -> Any:
        if path.special == "$index":
            return self.index
        if path.special == "$source":
            return self.ctx.source_key
        if path.special == "$id":
            return self.record_id
        base = self.parent if path.special == "$parent" else self.record
        value = _walk(base, path.steps)
        return None if value is _MISSING else value


def apply_mapping(
    mapping: Mapping, record: abc.Mapping[str, Any], ctx: MappingContext, *, owners: Owners = "all"
) -> MappedRecord:
    """Map one record. Raises FieldMappingError listing every field that cannot be mapped.

    `owners="billing"` maps only the fields (and child collections) marked `owner: billing`.
    """
    if owners not in ("all", "billing"):
        raise ValueError(f"owners must be 'all' or 'billing', not {owners!r}")
    errors: list[tuple[str, str]] = []
    nested = mapping.direction == "to_billing"
    fields = _map_fields(
        mapping.fields,
        _Scope(record, ctx, ctx.record_id),
        prefix="",
        owners=owners,
        nested=nested,
        errors=errors,
    )
    children: dict[str, list[MappedChild]] = {}
    for name, child in mapping.children.items():
        if owners == "billing" and child.owner != "billing":
            continue
        mapped = _map_children(name, child, record, ctx, nested=nested, errors=errors)
        if mapped is None:
            continue
        children[name] = mapped
        if nested and child.to is not None:
            _put(fields, child.to, [item.fields for item in mapped], nested=True)
    if errors:
        raise FieldMappingError(errors)
    return MappedRecord(fields, children)


def _map_children(
    name: str,
    child: ChildSpec,
    record: abc.Mapping[str, Any],
    ctx: MappingContext,
    *,
    nested: bool,
    errors: list[tuple[str, str]],
) -> list[MappedChild] | None:
    items = _child_items(child, record, nested, name, errors)
    if items is None:
        return None
    mapped: list[MappedChild] = []
    for index, item in enumerate(items):
        label = f"{name}[{index}]"
        if not isinstance(item, abc.Mapping):
            errors.append((label, f"{describe_value(item)} is not an object"))
            continue
        try:
            child_id = _child_id(child, item, index, ctx, nested)
        except TransformError as error:
            errors.append((label, error.reason))
            continue
        scope = _Scope(item, ctx, child_id, index + 1, record)
        fields = _map_fields(
            child.fields, scope, prefix=f"{label}.", owners="all", nested=nested, errors=errors
        )
        mapped.append(MappedChild(child_id, fields))
    return mapped


def _child_items(
    child: ChildSpec, record: abc.Mapping[str, Any], nested: bool, name: str, errors: list[tuple[str, str]]
) -> list[Any] | None:
    value = _walk(record, _parse_path(child.from_).steps)
    if value is _MISSING:
        return None  # the record does not carry the list: leave the existing children alone
    if nested and isinstance(value, abc.Mapping) and "records" in value:
        value = value["records"]  # a Salesforce child relationship: {"totalSize", "done", "records"}
    if value is None:
        return None if not nested else []  # Salesforce returns null for a relationship without children
    if isinstance(value, list | tuple):
        return list(value)
    errors.append((name, f"expected a list at {child.from_!r}, got {describe_value(value)}"))
    return None


def _child_id(
    child: ChildSpec, item: abc.Mapping[str, Any], index: int, ctx: MappingContext, nested: bool
) -> str | None:
    if child.id is None:
        return None
    path = _parse_path(child.id)
    raw = index + 1 if path.special == "$index" else _walk(item, path.steps)
    if raw is _MISSING or raw is None or (isinstance(raw, str) and not raw.strip()):
        if nested:
            return None
        raise TransformError(f"has no id at {child.id!r}")
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise TransformError(f"the id at {child.id!r} is {describe_value(raw)}, not text or an integer")
    text = str(raw).strip()
    if nested:
        prefix = f"{ctx.source_key}:"
        if text.startswith(prefix):
            return text[len(prefix) :]
        if ":" in text:
            raise TransformError(f"the id {text!r} belongs to another billing source")
    return text


def _map_fields(
    specs: abc.Sequence[FieldSpec],
    scope: _Scope,
    *,
    prefix: str,
    owners: Owners,
    nested: bool,
    errors: list[tuple[str, str]],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in specs:
        if owners == "billing" and spec.owner != "billing":
            continue
        call = Call(scope.ctx.source_key, spec.sensitive)
        try:
            value = run_steps(_source_value(spec, scope, call), spec.transform, call)
        except TransformError as error:
            errors.append((prefix + spec.to, error.reason))
            continue
        if value is None and spec.has_default:
            value = spec.default
        _put(out, spec.to, value, nested=nested)
    return out


def _source_value(spec: FieldSpec, scope: _Scope, call: Call) -> Any:
    if spec.from_ is not None:
        for path in spec.from_:
            value = scope.read(_parse_path(path))
            if value is not None:
                return value
        return None
    if spec.template is not None:
        pieces: list[str] = []
        found = False
        placeholders = False
        for literal, name in _template_parts(spec.template):
            pieces.append(literal)
            if name is None:
                continue
            placeholders = True
            value = scope.read(_parse_path(name))
            if value is None:
                continue
            if isinstance(value, abc.Mapping | list | tuple):
                raise TransformError(
                    f"the template placeholder {{{name}}} is {call.show(value)}, not a single value"
                )
            found = True
            pieces.append(text_of(value, sensitive=call.sensitive))
        return "".join(pieces) if found or not placeholders else None
    return spec.constant


def _put(out: dict[str, Any], target: str, value: Any, *, nested: bool) -> None:
    if not nested:
        out[target] = value
        return
    *outer, last = target.split(".")
    node = out
    for key in outer:
        node = node.setdefault(key, {})
    node[last] = value
