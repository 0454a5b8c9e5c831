"""Mapping transforms: one registry maps each name to its code, its arguments and the kinds of value it takes.

A mapping field runs its value through a list of transforms, left to right. Everything billsync knows
about a transform is in its registry entry: the mapping loader validates the arguments with the entry's
schema and checks that each step can take what the step before it produces; the engine runs the entry's
function; the reference in docs/mapping.md describes the same entries (a test keeps the two in step).
Adding a transform means writing one function and decorating it with `@_register`.

Transforms are strict. A value a transform cannot convert raises `TransformError`, whose reason names
the value (or `<redacted>` for sensitive fields and for anything that looks like a card number). The
mapping engine turns it into a `FieldMappingError` for the field being mapped.
"""

from __future__ import annotations

import difflib
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "REGISTRY",
    "Call",
    "Kind",
    "Transform",
    "TransformConfigError",
    "TransformError",
    "TransformStep",
    "check_kinds",
    "compile_steps",
    "describe_value",
    "is_card_number",
    "key_text",
    "kind_of",
    "run_steps",
    "scalar_value",
    "text_of",
]

Kind = Literal[
    "any", "text", "number", "integer", "boolean", "date", "datetime", "object", "list", "relationship"
]

KIND_NAMES: dict[str, str] = {
    "any": "anything",
    "text": "text",
    "number": "a decimal number",
    "integer": "an integer",
    "boolean": "a boolean",
    "date": "a date",
    "datetime": "a datetime",
    "object": "an object",
    "list": "a list",
    "relationship": "a parent link",
}
NUMERIC: frozenset[Kind] = frozenset({"number", "integer"})
SCALARS: frozenset[Kind] = frozenset({"text", "number", "integer", "boolean"})
TEMPORAL: frozenset[Kind] = frozenset({"date", "datetime"})
EVERYTHING: frozenset[Kind] = frozenset(
    {"text", "number", "integer", "boolean", "date", "datetime", "object", "list", "relationship"}
)

REDACTED = "<redacted>"
_MAX_EXPONENT = 100  # numbers beyond 1e100 are no money and no quantity
_MAX_INTEGER_DIGITS = 40
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- errors ---------------------------------------------------------------------------------------


class TransformError(ValueError):
    """A value a transform cannot convert. `reason` is safe to log: sensitive values are redacted."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


SubPath = tuple[str | int, ...]


class TransformConfigError(ValueError):
    """A transform list written wrongly: each problem is (path below the list, message)."""

    def __init__(self, problems: Sequence[tuple[SubPath, str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = list(problems)


# --- values ---------------------------------------------------------------------------------------

Scalar = str | int | bool | Decimal | None


def scalar_value(value: Any) -> Scalar:
    """A literal from a mapping file as a mapped value: floats become exact Decimals, lists and objects are refused."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float | Decimal):
        number = Decimal(str(value)) if isinstance(value, float) else value
        if not number.is_finite():
            raise ValueError("infinite and NaN numbers are not supported")
        return number
    raise ValueError(
        f"expected a single value (text, number, true/false or null), got {describe_value(value)}"
    )


def kind_of(value: Any) -> Kind:
    """The kind of a literal value, for the load-time check of transform lists."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, Decimal | float):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, date):
        return "date"
    return "any"


def _plain(value: Decimal) -> str:
    """A Decimal written out without exponent, keeping its trailing zeros ("51.10", "100"). Absurdly
    large or small numbers keep their exponent rather than fill memory with zeros."""
    if value.is_zero():
        value = abs(value)
    return str(value) if abs(value.adjusted()) > _MAX_EXPONENT else format(value, "f")


def datetime_text(value: datetime) -> str:
    """An aware datetime as ISO 8601 in UTC with a Z ("2024-03-01T10:00:00Z", fractions kept)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def text_of(value: Any, *, sensitive: bool = False) -> str:
    """Any single value as text: the `string` transform and template placeholders use this."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal | float):
        number = Decimal(str(value)) if isinstance(value, float) else value
        if not number.is_finite():
            raise TransformError(f"{describe_value(value, sensitive=sensitive)} is not a finite number")
        return _plain(number)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TransformError(f"{describe_value(value, sensitive=sensitive)} has no time zone")
        return datetime_text(value)
    if isinstance(value, date | time):
        return value.isoformat()
    raise TransformError(
        f"{describe_value(value, sensitive=sensitive)} is not a single value (use json or join)"
    )


def key_text(value: Any) -> str:
    """How picklist keys and `null_if` values compare: as text, with 1, "1" and 1.0 alike and true as "true"."""
    if isinstance(value, Decimal | float):
        number = Decimal(str(value)) if isinstance(value, float) else value
        if number.is_finite():
            return _plain(number.normalize())
    return text_of(value)


_DIGIT_RUN = re.compile(r"\d(?:[\s-]*\d){12,}")


def _compact_digits(text: str) -> str:
    """The text with spaces and dashes of any kind removed and full-width digits made plain."""
    normal = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in normal if not (ch.isspace() or unicodedata.category(ch) == "Pd"))


def _luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def is_card_number(value: Any) -> bool:
    """True for 13 to 19 digits (spaces and dashes ignored) that pass the Luhn check: a full card number."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return False
    digits = _compact_digits(str(value))
    return 13 <= len(digits) <= 19 and digits.isascii() and digits.isdigit() and _luhn(digits)


def describe_value(value: Any, *, sensitive: bool = False) -> str:
    """A value as an error message shows it: short, and never a secret or anything like a card number."""
    if sensitive:
        return REDACTED
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)}"
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    shown = str(value)
    if _DIGIT_RUN.search(unicodedata.normalize("NFKC", shown)):
        return REDACTED
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    return shown


# --- the registry ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """What a transform knows while it runs, besides its value and arguments."""

    source_key: str
    sensitive: bool = False

    def show(self, value: Any) -> str:
        return describe_value(value, sensitive=self.sensitive)


TransformFunction = Callable[[Any, Any, Call], Any]
KindRule = Kind | Literal["same"] | Callable[[Any, Kind], Kind]


@dataclass(frozen=True)
class Transform:
    """One registry entry."""

    name: str
    summary: str
    function: TransformFunction
    accepts: frozenset[Kind]
    returns: KindRule
    args: TypeAdapter[Any] | None = None  # None: the transform takes no arguments
    example: str = ""  # how the transform is written in a mapping
    args_required: bool = False
    handles_none: bool = False  # runs on null values too (default-style); every other transform skips them

    def output_kind(self, args: Any, kind: Kind) -> Kind:
        if self.returns == "same":
            return kind
        if callable(self.returns):
            return self.returns(args, kind)
        return self.returns


REGISTRY: dict[str, Transform] = {}

# Names people reach for that billsync spells differently.
_HINTS = {
    "coalesce": "write `from: [first.path, second.path]` to take the first value that is not null",
    "reverse_picklist": "write a picklist in the to_billing mapping itself",
    "date": "use iso_date, unix_date, date_format or to_date",
    "datetime": "use iso_datetime, unix_datetime, datetime_format or epoch_ms",
    "int": "use integer",
    "bool": "use boolean",
    "str": "use string",
    "float": "use decimal: billsync keeps money exact",
    "number": "use decimal or integer",
}


def _register(
    name: str,
    *,
    summary: str,
    accepts: Iterable[Kind],
    returns: KindRule,
    args: Any = None,
    optional_args: bool = False,
    example: str | None = None,
    handles_none: bool = False,
) -> Callable[[TransformFunction], TransformFunction]:
    """Register a transform. With `args`, the schema its arguments must pass; they are required unless
    `optional_args` (the function then receives None when they are left out)."""

    def decorate(function: TransformFunction) -> TransformFunction:
        REGISTRY[name] = Transform(
            name=name,
            summary=summary,
            function=function,
            accepts=frozenset(accepts),
            returns=returns,
            args=None if args is None else TypeAdapter(args),
            example=example or name,
            args_required=args is not None and not optional_args,
            handles_none=handles_none,
        )
        return function

    return decorate


@dataclass(frozen=True)
class TransformStep:
    """One compiled entry of a field's transform list."""

    transform: Transform
    args: Any = None
    raw: Any = field(default=None, compare=False)  # as written in the mapping file

    @property
    def name(self) -> str:
        return self.transform.name

    def apply(self, value: Any, call: Call) -> Any:
        return self.transform.function(value, self.args, call)

    def as_written(self) -> Any:
        return self.name if self.raw is None else {self.name: self.raw}


def pydantic_error_text(error: Mapping[str, Any]) -> str:
    """A pydantic error as a mapping author reads it."""
    text = str(error["msg"]).replace("Input should be", "should be").replace("Value error, ", "")
    if error["type"] == "extra_forbidden":
        return f"unknown key {error['loc'][-1]!r}"
    if error["type"] == "missing":
        return f"{error['loc'][-1]!r} is required"
    if error["type"] in {"model_type", "model_attributes_type", "dict_type"}:
        return f"should be a mapping of keys to values (got {describe_value(error.get('input'))})"
    if error["type"].endswith("_type") or error["type"] in {"greater_than_equal", "less_than_equal"}:
        text += f" (got {describe_value(error.get('input'))})"
    return text


def compile_step(raw: Any) -> TransformStep:
    """One transform as written (`upper`, `{truncate: 80}`) → a step; raises TransformConfigError."""
    if isinstance(raw, str):
        name, args = raw, None
    elif isinstance(raw, Mapping) and len(raw) == 1:
        ((name, args),) = raw.items()
        if not isinstance(name, str):
            raise TransformConfigError([((), f"a transform name must be text, got {describe_value(name)}")])
    else:
        raise TransformConfigError(
            [((), "write a transform as its name (upper) or as {name: arguments} (truncate: 80)")]
        )
    transform = REGISTRY.get(name)
    if transform is None:
        hint = _HINTS.get(name)
        if hint is None:
            close = difflib.get_close_matches(name, REGISTRY, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "see docs/mapping.md for the list"
        raise TransformConfigError([((), f"unknown transform {name!r}: {hint}")])
    if transform.args is None:
        if args is not None:
            raise TransformConfigError([((name,), f"{name} takes no arguments")])
        return TransformStep(transform)
    if args is None:
        if transform.args_required:
            raise TransformConfigError([((name,), f"{name} needs arguments, e.g. {transform.example}")])
        return TransformStep(transform)
    try:
        compiled = transform.args.validate_python(args)
    except ValidationError as error:
        raise TransformConfigError(
            [((name, *error_["loc"]), pydantic_error_text(error_)) for error_ in error.errors()]
        ) from None
    return TransformStep(transform, compiled, args)


def compile_steps(raw: Any) -> tuple[TransformStep, ...]:
    """A transform list as written (or a single transform) → steps; raises TransformConfigError."""
    if raw is None:
        return ()
    items = raw if isinstance(raw, list | tuple) else [raw]
    steps: list[TransformStep] = []
    problems: list[tuple[SubPath, str]] = []
    for index, item in enumerate(items):
        if isinstance(item, TransformStep):
            steps.append(item)
            continue
        try:
            steps.append(compile_step(item))
        except TransformConfigError as error:
            problems.extend(((index, *path), message) for path, message in error.problems)
    if problems:
        raise TransformConfigError(problems)
    return tuple(steps)


def check_kinds(steps: Sequence[TransformStep], kind: Kind) -> tuple[Kind, list[tuple[SubPath, str]]]:
    """Walk the kinds of value through a transform list: the final kind and any step that cannot take its input."""
    problems: list[tuple[SubPath, str]] = []
    previous: str | None = None
    for index, step in enumerate(steps):
        if kind != "any" and kind not in step.transform.accepts:
            after = f" after {previous}" if previous else ""
            wanted = " or ".join(KIND_NAMES[k] for k in sorted(step.transform.accepts))
            problems.append(
                ((index,), f"{step.name} takes {wanted}, but the value is {KIND_NAMES[kind]} here{after}")
            )
        kind = step.transform.output_kind(step.args, kind)
        previous = step.name
    return kind, problems


def run_steps(value: Any, steps: Sequence[TransformStep], call: Call) -> Any:
    """Run the steps left to right; a null value skips every step except the default-style ones."""
    for step in steps:
        if value is None and not step.transform.handles_none:
            continue
        value = step.apply(value, call)
    return value


# --- argument schemas -----------------------------------------------------------------------------

_SF_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _zone_name(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ValueError, KeyError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as America/Chicago)") from None
    return name


def _salesforce_name(name: str) -> str:
    if not _SF_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a Salesforce API name")
    return name


def _parse_format(fmt: str) -> str:
    """Refuse a format that cannot read back what it writes, or that has no year in it."""
    if not re.search(r"%[Yy]", fmt):
        raise ValueError(f"format {fmt!r} has no year (%Y or %y)")
    sample = datetime(2024, 1, 31, 13, 45, 30, tzinfo=UTC)
    try:
        datetime.strptime(sample.strftime(fmt), fmt)  # noqa: DTZ007 - only checks that the format reads back
    except ValueError:
        raise ValueError(f"format {fmt!r} cannot read back the text it writes") from None
    return fmt


def _output_format(fmt: str) -> str:
    if "%" not in fmt:
        raise ValueError(f"format {fmt!r} has no % directive")
    return fmt


ZoneName = Annotated[StrictStr, AfterValidator(_zone_name)]
SalesforceName = Annotated[StrictStr, AfterValidator(_salesforce_name)]
ParseFormat = Annotated[StrictStr, AfterValidator(_parse_format)]
OutputFormat = Annotated[StrictStr, AfterValidator(_output_format)]


class _Args(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _FormatArgs(_Args):
    """`{format, timezone}`, or just the format as text (the zone is then UTC)."""

    format: OutputFormat
    timezone: ZoneName = "UTC"

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        return {"format": data} if isinstance(data, str) else data


class _ParseFormatArgs(_FormatArgs):
    format: ParseFormat


class _ZoneArgs(_Args):
    timezone: ZoneName


class _AssumeZoneArgs(_Args):
    assume_timezone: ZoneName


class _ParentArgs(_Args):
    object: SalesforceName
    external_id: SalesforceName


class _PicklistArgs(_Args):
    map: dict[str, Any]
    default: Any = None
    passthrough: StrictBool = False

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(data.get("map"), Mapping):
            return data
        if isinstance(data, Mapping):
            if "default" in data or "passthrough" in data:
                raise ValueError("to give a default or passthrough, put the values under map:")
            return {"map": data}
        return data

    @field_validator("map", mode="before")
    @classmethod
    def _keys_as_text(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        if not data:
            raise ValueError("the map is empty")
        out: dict[str, Any] = {}
        for key, target in data.items():
            if key is None:
                raise ValueError("null never reaches a picklist; give the field a default instead")
            if isinstance(key, Mapping | list | tuple):
                raise ValueError(f"a map key must be a single value, got {describe_value(key)}")
            text = key_text(scalar_value(key))
            if text in out:
                raise ValueError(f"the key {text!r} appears twice")
            out[text] = scalar_value(target)
        return out

    @field_validator("default")
    @classmethod
    def _scalar(cls, value: Any) -> Any:
        return scalar_value(value)

    @model_validator(mode="after")
    def _one_fallback(self) -> _PicklistArgs:
        if self.passthrough and self.has_default:
            raise ValueError("give either default or passthrough, not both")
        return self

    @property
    def has_default(self) -> bool:
        return "default" in self.model_fields_set


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("a default of null does nothing")
    return scalar_value(value)


def _null_values(value: Any) -> tuple[str, ...]:
    values = value if isinstance(value, list | tuple) else [value]
    if not values or any(item is None for item in values):
        raise ValueError("give one or more values (null is already null)")
    return tuple(key_text(scalar_value(item)) for item in values)


# --- helpers for the transforms -------------------------------------------------------------------

_NUMBER_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_INTEGER_TEXT = re.compile(rf"[+-]?\d{{1,{_MAX_INTEGER_DIGITS}}}", re.ASCII)
_DATE_TEXT = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
_DATETIME_TEXT = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"(?:(?P<z>[Zz])|(?P<sign>[+-])(?P<oh>\d{2})(?::?(?P<om>\d{2}))?)?",
    re.ASCII,
)


def _decimal(value: Any, call: Call, *, text: bool) -> Decimal:
    if isinstance(value, bool):
        raise TransformError(f"{call.show(value)} is a boolean, not a number")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(str(value))
    elif isinstance(value, str) and text:
        if not _NUMBER_TEXT.fullmatch(value.strip()):
            raise TransformError(f"{call.show(value)} is not a number")
        number = Decimal(value.strip())
    else:
        hint = " (convert it with decimal first)" if isinstance(value, str) else ""
        raise TransformError(f"{call.show(value)} is not a number{hint}")
    if not number.is_finite():
        raise TransformError(f"{call.show(value)} is not a finite number")
    if not number.is_zero() and abs(number.adjusted()) > _MAX_EXPONENT:
        raise TransformError(f"{call.show(value)} is out of range")
    return number


def _whole(value: Any, call: Call, what: str) -> int:
    """An integer from int, integral Decimal/float, or text of digits; anything else is refused."""
    if isinstance(value, bool):
        raise TransformError(f"{call.show(value)} is a boolean, not {what}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if _INTEGER_TEXT.fullmatch(value.strip()):
            return int(value.strip())
        if not _NUMBER_TEXT.fullmatch(value.strip()):
            raise TransformError(f"{call.show(value)} is not {what}")
    number = _decimal(value, call, text=True)
    if number != number.to_integral_value():
        raise TransformError(f"{call.show(value)} has a fractional part, so it is not {what}")
    return int(number)


def _text(value: Any, call: Call, transform: str) -> str:
    if not isinstance(value, str):
        raise TransformError(f"{call.show(value)} is not text ({transform} needs text; use string first)")
    return value


def _aware(value: datetime, call: Call) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise TransformError(f"{call.show(value)} has no time zone")
    return value.astimezone(UTC)


def _from_unix(seconds: int, call: Call, value: Any) -> datetime:
    try:
        return _EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        raise TransformError(f"{call.show(value)} is out of range for a date") from None


def _parse_iso(value: str, call: Call) -> tuple[date, datetime | None]:
    """ISO 8601 text → (the date as written, the datetime or None for a plain date). Naive datetimes stay naive."""
    text = value.strip()
    try:
        if match := _DATE_TEXT.fullmatch(text):
            return date(*(int(part) for part in match.groups())), None
        if match := _DATETIME_TEXT.fullmatch(text):
            year, month, day, hour, minute = (int(match.group(i)) for i in range(1, 6))
            second = int(match.group(6) or 0)
            micro = int((match.group(7) or "0")[:6].ljust(6, "0"))
            zone: tzinfo | None = None
            if match.group("z"):
                zone = UTC
            elif match.group("sign"):
                offset = timedelta(hours=int(match.group("oh")), minutes=int(match.group("om") or 0))
                zone = timezone(-offset if match.group("sign") == "-" else offset)
            moment = datetime(year, month, day, hour, minute, second, micro, tzinfo=zone)
            return moment.date(), moment
    except ValueError:
        pass
    raise TransformError(f"{call.show(value)} is not an ISO 8601 date or datetime")


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _localize(moment: datetime, zone_name: str) -> datetime:
    """A naive wall-clock time in a zone → aware UTC (the earlier of two readings in a DST fold)."""
    return moment.replace(tzinfo=_zone(zone_name)).astimezone(UTC)


# --- numbers --------------------------------------------------------------------------------------


@_register("decimal", summary="a number or numeric text → exact Decimal", accepts=SCALARS, returns="number")
def _t_decimal(value: Any, args: None, call: Call) -> Decimal:
    return _decimal(value, call, text=True)


@_register(
    "cents",
    summary="integer cents → Decimal in major units",
    accepts={"text", "number", "integer"},
    returns="number",
)
def _t_cents(value: Any, args: None, call: Call) -> Decimal:
    if isinstance(value, float):
        raise TransformError(f"{call.show(value)} is not a whole number of cents")
    try:
        cents = _whole(value, call, "a whole number of cents")
    except TransformError:
        raise TransformError(f"{call.show(value)} is not a whole number of cents") from None
    return Decimal(cents).scaleb(-2)


@_register(
    "round",
    example="{round: 2}",
    summary="round half-up to n decimal places",
    accepts=NUMERIC,
    returns="number",
    args=Annotated[StrictInt, Field(ge=0, le=18)],
)
def _t_round(value: Any, places: int, call: Call) -> Decimal:
    number = _decimal(value, call, text=False)
    try:
        return number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    except InvalidOperation:
        raise TransformError(f"{call.show(value)} is too large to round to {places} places") from None


@_register(
    "integer",
    summary="a whole number (int, Decimal or text) → int",
    accepts=SCALARS - {"boolean"},
    returns="integer",
)
def _t_integer(value: Any, args: None, call: Call) -> int:
    return _whole(value, call, "a whole number")


# --- times ----------------------------------------------------------------------------------------


def _unix_seconds(value: Any, call: Call) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TransformError(f"{call.show(value)} is not Unix seconds")
    if isinstance(value, str) and not _INTEGER_TEXT.fullmatch(value.strip()):
        raise TransformError(f"{call.show(value)} is not Unix seconds")
    return _from_unix(int(value), call, value)


@_register("unix_date", summary="Unix seconds → date (UTC)", accepts={"integer", "text"}, returns="date")
def _t_unix_date(value: Any, args: None, call: Call) -> date:
    return _unix_seconds(value, call).date()


@_register(
    "unix_datetime",
    summary="Unix seconds → aware UTC datetime",
    accepts={"integer", "text"},
    returns="datetime",
)
def _t_unix_datetime(value: Any, args: None, call: Call) -> datetime:
    return _unix_seconds(value, call)


@_register(
    "epoch_ms",
    summary="Unix milliseconds → aware UTC datetime",
    accepts={"integer", "text"},
    returns="datetime",
)
def _t_epoch_ms(value: Any, args: None, call: Call) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TransformError(f"{call.show(value)} is not Unix milliseconds")
    if isinstance(value, str) and not _INTEGER_TEXT.fullmatch(value.strip()):
        raise TransformError(f"{call.show(value)} is not Unix milliseconds")
    try:
        return _EPOCH + timedelta(milliseconds=int(value))
    except OverflowError:
        raise TransformError(f"{call.show(value)} is out of range for a date") from None


@_register(
    "iso_date",
    summary="ISO 8601 date or datetime text → the date as written",
    accepts={"text", "date"},
    returns="date",
)
def _t_iso_date(value: Any, args: None, call: Call) -> date:
    if isinstance(value, datetime):
        raise TransformError(f"{call.show(value)} is a datetime (use to_date)")
    if isinstance(value, date):
        return value
    return _parse_iso(_text(value, call, "iso_date"), call)[0]


@_register(
    "iso_datetime",
    example="{iso_datetime: {assume_timezone: America/Chicago}}",
    summary="ISO 8601 datetime with Z or offset → aware UTC datetime",
    accepts={"text", "datetime"},
    returns="datetime",
    args=_AssumeZoneArgs,
    optional_args=True,
)
def _t_iso_datetime(value: Any, args: _AssumeZoneArgs | None, call: Call) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        raise TransformError(f"{call.show(value)} is a date without a time")
    else:
        parsed = _parse_iso(_text(value, call, "iso_datetime"), call)[1]
        if parsed is None:
            raise TransformError(f"{call.show(value)} is a date without a time (use iso_date)")
        moment = parsed
    if moment.tzinfo is None:
        if args is None:
            raise TransformError(f"{call.show(value)} has no time zone offset (set assume_timezone)")
        return _localize(moment, args.assume_timezone)
    return _aware(moment, call)


@_register(
    "datetime_format",
    example='{datetime_format: {format: "%Y-%m-%d %H:%M:%S", timezone: America/Chicago}}',
    summary="text in a strptime format, read in a time zone → aware UTC datetime",
    accepts={"text"},
    returns="datetime",
    args=_ParseFormatArgs,
)
def _t_datetime_format(value: Any, args: _ParseFormatArgs, call: Call) -> datetime:
    text = _text(value, call, "datetime_format")
    try:
        moment = datetime.strptime(text.strip(), args.format)  # noqa: DTZ007 - localized below
    except ValueError:
        raise TransformError(f"{call.show(value)} does not match the format {args.format!r}") from None
    if moment.tzinfo is not None:
        return moment.astimezone(UTC)
    return _localize(moment, args.timezone)


@_register(
    "date_format",
    example='{date_format: "%m/%d/%Y"}',
    summary="text in a strptime format → date",
    accepts={"text"},
    returns="date",
    args=ParseFormat,
)
def _t_date_format(value: Any, fmt: str, call: Call) -> date:
    text = _text(value, call, "date_format")
    try:
        return datetime.strptime(text.strip(), fmt).date()  # noqa: DTZ007 - a calendar date, no instant
    except ValueError:
        raise TransformError(f"{call.show(value)} does not match the format {fmt!r}") from None


@_register(
    "to_unix",
    summary="date, datetime or Salesforce date/datetime text → Unix seconds",
    accepts={"date", "datetime", "text"},
    returns="integer",
)
def _t_to_unix(value: Any, args: None, call: Call) -> int:
    if isinstance(value, str):
        day, moment = _parse_iso(value, call)
        if moment is not None and moment.tzinfo is None:
            raise TransformError(f"{call.show(value)} has no time zone offset")
        value = moment if moment is not None else day
    if isinstance(value, datetime):
        return (_aware(value, call) - _EPOCH) // timedelta(seconds=1)
    if isinstance(value, date):
        return (value - _EPOCH.date()) // timedelta(seconds=1)
    raise TransformError(f"{call.show(value)} is not a date or datetime")


@_register(
    "to_date",
    example="{to_date: {timezone: America/Chicago}}",
    summary="datetime or date/datetime text → date",
    accepts={"date", "datetime", "text"},
    returns="date",
    args=_ZoneArgs,
    optional_args=True,
)
def _t_to_date(value: Any, args: _ZoneArgs | None, call: Call) -> date:
    if isinstance(value, str):
        day, moment = _parse_iso(value, call)
        if args is None or moment is None or moment.tzinfo is None:
            return day
        value = moment
    if isinstance(value, datetime):
        moment = _aware(value, call)
        return moment.astimezone(_zone(args.timezone)).date() if args else moment.date()
    if isinstance(value, date):
        return value
    raise TransformError(f"{call.show(value)} is not a date or datetime")


@_register(
    "strftime",
    example='{strftime: {format: "%Y-%m-%d %H:%M:%S", timezone: UTC}}',
    summary="date or datetime → text in a strftime format and time zone",
    accepts=TEMPORAL,
    returns="text",
    args=_FormatArgs,
)
def _t_strftime(value: Any, args: _FormatArgs, call: Call) -> str:
    if isinstance(value, datetime):
        return _aware(value, call).astimezone(_zone(args.timezone)).strftime(args.format)
    if isinstance(value, date):
        return value.strftime(args.format)
    raise TransformError(f"{call.show(value)} is not a date or datetime")


# --- text -----------------------------------------------------------------------------------------


@_register("upper", summary="text → upper case", accepts={"text"}, returns="text")
def _t_upper(value: Any, args: None, call: Call) -> str:
    return _text(value, call, "upper").upper()


@_register("lower", summary="text → lower case", accepts={"text"}, returns="text")
def _t_lower(value: Any, args: None, call: Call) -> str:
    return _text(value, call, "lower").lower()


@_register("strip", summary="text without leading and trailing white space", accepts={"text"}, returns="text")
def _t_strip(value: Any, args: None, call: Call) -> str:
    return _text(value, call, "strip").strip()


@_register(
    "truncate",
    example="{truncate: 80}",
    summary="text cut to at most n characters",
    accepts={"text"},
    returns="text",
    args=Annotated[StrictInt, Field(ge=1)],
)
def _t_truncate(value: Any, limit: int, call: Call) -> str:
    return _text(value, call, "truncate")[:limit]


@_register("string", summary="any single value → text", accepts=SCALARS | TEMPORAL, returns="text")
def _t_string(value: Any, args: None, call: Call) -> str:
    return text_of(value, sensitive=call.sensitive)


_TRUE = frozenset({"true", "1", "yes", "t", "y"})
_FALSE = frozenset({"false", "0", "no", "f", "n"})


@_register(
    "boolean",
    summary="true/false, yes/no, 1/0, T/F → bool",
    accepts={"boolean", "text", "integer"},
    returns="boolean",
)
def _t_boolean(value: Any, args: None, call: Call) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return value == 1
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise TransformError(f"{call.show(value)} is not a boolean (true/false, yes/no, 1/0)")


@_register(
    "split_last",
    example='{split_last: ":"}',
    summary="the part after the last separator",
    accepts={"text"},
    returns="text",
    args=Annotated[StrictStr, Field(min_length=1)],
)
def _t_split_last(value: Any, separator: str, call: Call) -> str:
    return _text(value, call, "split_last").rpartition(separator)[2]


@_register(
    "source_id", summary='a billsync external id "main:3100" → "3100"', accepts={"text"}, returns="text"
)
def _t_source_id(value: Any, args: None, call: Call) -> str:
    source, colon, vendor_id = _text(value, call, "source_id").partition(":")
    if not colon or not source or not vendor_id:
        raise TransformError(f"{call.show(value)} is not a billsync id (<source>:<id>)")
    return vendor_id


_MASK = re.compile(r"[0-9Xx*•#\s-]+")


@_register(
    "last4",
    summary="the last 4 digits of a card or account number",
    accepts={"text", "integer"},
    returns="text",
)
def _t_last4(value: Any, args: None, call: Call) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TransformError(f"{call.show(value)} is not a card or account number")
    text = str(value)
    digits = "".join(ch for ch in text if "0" <= ch <= "9")
    if not _MASK.fullmatch(text) or len(digits) < 4:
        raise TransformError(f"{call.show(value)} is not a card or account number with at least 4 digits")
    return digits[-4:]


@_register(
    "card_safe", summary="refuse a full card number; pass anything else", accepts=EVERYTHING, returns="same"
)
def _t_card_safe(value: Any, args: None, call: Call) -> Any:
    if is_card_number(value):
        raise TransformError("looks like a full card number")
    return value


# --- maps and links -------------------------------------------------------------------------------


def _picklist_kind(args: _PicklistArgs, kind: Kind) -> Kind:
    targets = [target for target in args.map.values() if target is not None]
    if args.has_default and args.default is not None:
        targets.append(args.default)
    kinds = {kind_of(target) for target in targets}
    if args.passthrough:
        kinds.add(kind)
    return kinds.pop() if len(kinds) == 1 else "any"


@_register(
    "picklist",
    example="{picklist: {draft: Draft, paid: Paid}}",
    summary="translate values through a map",
    accepts=SCALARS,
    returns=_picklist_kind,
    args=_PicklistArgs,
)
def _t_picklist(value: Any, args: _PicklistArgs, call: Call) -> Any:
    key = key_text(value) if isinstance(value, str | int | Decimal | float) else None
    if key is not None and key in args.map:
        return args.map[key]
    if args.passthrough:
        return value
    if args.has_default:
        return args.default
    known = list(args.map)
    shown = ", ".join(known[:20]) + (f", and {len(known) - 20} more" if len(known) > 20 else "")
    raise TransformError(f"unknown value {call.show(value)} for picklist (known: {shown})")


def _id_text(value: Any, call: Call) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TransformError(f"{call.show(value)} is not an id (text or integer)")
    text = str(value).strip()
    if not text:
        raise TransformError("an empty id")
    return f"{call.source_key}:{text}"


@_register(
    "parent",
    example="{parent: {object: Account, external_id: Billing_Id__c}}",
    summary="a vendor id → a link to the parent record by its external id",
    accepts={"text", "integer"},
    returns="relationship",
    args=_ParentArgs,
)
def _t_parent(value: Any, args: _ParentArgs, call: Call) -> dict[str, str]:
    return {args.external_id: _id_text(value, call)}


@_register(
    "external_id",
    summary='a vendor id → its billsync id "<source>:<id>"',
    accepts={"text", "integer"},
    returns="text",
)
def _t_external_id(value: Any, args: None, call: Call) -> str:
    return _id_text(value, call)


# --- other ----------------------------------------------------------------------------------------


def _default_kind(value: Any, kind: Kind) -> Kind:
    return kind if kind_of(value) == kind else "any"


@_register(
    "default",
    example='{default: "NET 30"}',
    summary="replace null with a value",
    accepts=EVERYTHING,
    returns=_default_kind,
    args=Annotated[Any, AfterValidator(_not_null)],
    handles_none=True,
)
def _t_default(value: Any, default: Any, call: Call) -> Any:
    return default if value is None else value


@_register(
    "null_if",
    example='{null_if: ["", "0000-00-00 00:00:00"]}',
    summary="replace the listed values (compared as text) with null",
    accepts=SCALARS,
    returns="same",
    args=Annotated[Any, AfterValidator(_null_values)],
)
def _t_null_if(value: Any, values: tuple[str, ...], call: Call) -> Any:
    if isinstance(value, str | int | Decimal | float) and key_text(value) in values:
        return None
    return value


def _jsonable(value: Any, call: Call) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, Decimal | float):
        number = Decimal(str(value)) if isinstance(value, float) else value
        if not number.is_finite():
            raise TransformError(f"{call.show(value)} is not a finite number")
        as_float = float(number)
        return as_float if Decimal(repr(as_float)) == number else _plain(number)
    if isinstance(value, datetime | date):
        return text_of(value, sensitive=call.sensitive)
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item, call) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item, call) for item in value]
    raise TransformError(f"{call.show(value)} cannot be written as JSON")


@_register(
    "json", summary="an object or list → compact JSON text", accepts={"object", "list"}, returns="text"
)
def _t_json(value: Any, args: None, call: Call) -> str:
    if not isinstance(value, Mapping | list | tuple):
        raise TransformError(f"{call.show(value)} is not an object or a list")
    return json.dumps(_jsonable(value, call), separators=(",", ":"), sort_keys=True, ensure_ascii=False)


@_register(
    "join",
    example='{join: ", "}',
    summary="a list of single values → text with a separator",
    accepts={"list"},
    returns="text",
    args=StrictStr,
)
def _t_join(value: Any, separator: str, call: Call) -> str | None:
    if not isinstance(value, list | tuple):
        raise TransformError(f"{call.show(value)} is not a list")
    parts = [text_of(item, sensitive=call.sensitive) for item in value if item is not None]
    return separator.join(parts) if parts else None
