"""The org's schema: standard objects plus billsync's metadata package, loaded at start.

Standard objects come from ``standard_objects.json`` (a transcription of Salesforce's Object
Reference, limited to what a billing sync touches). Custom objects and fields - including custom
fields on standard objects - are read from the package in sfdx source format, so the local org
and the package can never drift. The package's permission sets decide which custom fields the
integration user sees and may edit (field-level security), and its PlatformEventChannelMembers
decide which objects publish Change Data Capture events.

`ObjectDef` and `FieldDef` implement the SOQL engine's `SoqlObject` and `SoqlField` protocols, and
`Schema` its `SoqlSchema`. Describe results are built once per API version and cached.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

__all__ = [
    "ChildRelationship",
    "FieldDef",
    "ObjectDef",
    "Schema",
    "SchemaError",
    "load_schema",
]

_NS = "{http://soap.sforce.com/2006/04/metadata}"
_STANDARD_FILE = Path(__file__).with_name("standard_objects.json")


_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "int": "xsd:int",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
    "time": "xsd:time",
    "address": "urn:address",
    "location": "urn:location",
    "base64": "xsd:base64Binary",
}
TEXT_TYPES = frozenset(
    {
        "string",
        "textarea",
        "email",
        "phone",
        "url",
        "picklist",
        "multipicklist",
        "encryptedstring",
        "combobox",
    }
)
NUMBER_TYPES = frozenset({"int", "double", "currency", "percent"})
_NOT_GROUPABLE = frozenset({"double", "currency", "percent", "datetime", "address", "encryptedstring"})

#: Metadata API field type -> describe type.
_METADATA_TYPES = {
    "Text": "string",
    "TextArea": "textarea",
    "LongTextArea": "textarea",
    "Html": "textarea",
    "Checkbox": "boolean",
    "Currency": "currency",
    "Number": "double",
    "Percent": "percent",
    "Date": "date",
    "DateTime": "datetime",
    "Time": "time",
    "Url": "url",
    "Email": "email",
    "Phone": "phone",
    "Picklist": "picklist",
    "MultiselectPicklist": "multipicklist",
    "Lookup": "reference",
    "MasterDetail": "reference",
    "EncryptedText": "encryptedstring",
    "AutoNumber": "string",
}
_DEFAULT_LENGTHS = {
    "url": 255,
    "email": 80,
    "phone": 40,
    "picklist": 255,
    "multipicklist": 4099,
    "textarea": 255,
}


class SchemaError(Exception):
    """The metadata package (or the standard object file) cannot be served faithfully."""


# ------------------------------------------------------------------------------------------------
# Fields
# ------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class FieldDef:
    """A field as describe reports it, plus what the write path needs to enforce it."""

    name: str
    label: str
    type: str
    length: int = 0
    precision: int = 0
    scale: int = 0
    digits: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    defaulted_on_create: bool = False
    default_value: Any = None
    unique: bool = False
    case_sensitive: bool = False
    external_id: bool = False
    id_lookup: bool = False
    calculated: bool = False
    formula: str | None = None
    formula_blank_as_zero: bool = False
    auto_number: bool = False
    display_format: str | None = None
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    relationship_order: int | None = None
    child_relationship_name: str | None = None
    cascade_delete: bool = False
    restricted_delete: bool = False
    master_detail: bool = False
    write_requires_master_read: bool | None = None
    picklist_values: tuple[dict[str, Any], ...] = ()
    restricted_picklist: bool = False
    custom: bool = False
    name_field: bool = False
    html_formatted: bool = False
    mask: str | None = None
    mask_type: str | None = None
    compound: str | None = None
    compound_key: str | None = None
    system: bool = False
    description: str | None = None
    compound_parts: tuple[str, ...] = ()
    # derived in __post_init__
    soap_type: str = ""
    filterable: bool = True
    sortable: bool = True
    groupable: bool = True
    picklist_set: frozenset[str] = frozenset()
    formula_fn: Callable[[Mapping[str, Any]], Any] | None = None
    is_reference: bool = False
    #: JSON value -> (typed value, record-level error or None); built once by ``formats.coercer``
    coerce: Callable[[Any], tuple[Any, Any]] | None = None

    def __post_init__(self) -> None:
        self.is_reference = self.type == "reference"
        self.soap_type = _SOAP_TYPES.get(self.type, "xsd:string")
        long_text = self.type == "textarea" and self.length > 255
        self.filterable = not (long_text or self.type in ("encryptedstring", "address", "location"))
        self.sortable = self.filterable and self.type != "multipicklist"
        self.groupable = self.filterable and self.type not in _NOT_GROUPABLE
        self.picklist_set = frozenset(entry["value"] for entry in self.picklist_values)

    @property
    def required(self) -> bool:
        """Createable, not nillable and not defaulted: a create without it is refused."""
        return self.createable and not self.nillable and not self.defaulted_on_create

    @property
    def max_integer_digits(self) -> int:
        if self.type == "int":
            return self.digits or 9
        return max(self.precision - self.scale, 0) if self.precision else 18

    @property
    def byte_length(self) -> int:
        if self.type in ("id", "reference"):
            return 18
        if self.type in TEXT_TYPES:
            return self.length * 3
        return 0

    def describe(self) -> dict[str, Any]:
        text = self.type in TEXT_TYPES
        return {
            "aggregatable": self.groupable or self.type in NUMBER_TYPES,
            "aiPredictionField": False,
            "autoNumber": self.auto_number,
            "byteLength": self.byte_length,
            "calculated": self.calculated,
            "calculatedFormula": self.formula,
            "cascadeDelete": self.cascade_delete,
            "caseSensitive": self.case_sensitive,
            "compoundFieldName": self.compound,
            "controllerName": None,
            "createable": self.createable,
            "custom": self.custom,
            "defaultValue": self.default_value if self.type == "boolean" else None,
            "defaultValueFormula": None,
            "defaultedOnCreate": self.defaulted_on_create,
            "dependentPicklist": False,
            "deprecatedAndHidden": False,
            "digits": self.digits,
            "displayLocationInDecimal": False,
            "encrypted": self.type == "encryptedstring",
            "externalId": self.external_id,
            "extraTypeInfo": "plaintextarea" if self.type == "textarea" else None,
            "filterable": self.filterable,
            "filteredLookupInfo": None,
            "formulaTreatNullNumberAsZero": self.formula_blank_as_zero,
            "groupable": self.groupable,
            "highScaleNumber": False,
            "htmlFormatted": self.html_formatted,
            "idLookup": self.id_lookup,
            "inlineHelpText": None,
            "label": self.label,
            "length": self.length if text else 0,
            "mask": self.mask,
            "maskType": self.mask_type,
            "name": self.name,
            "nameField": self.name_field,
            "namePointing": len(self.reference_to) > 1,
            "nillable": self.nillable,
            "permissionable": self.custom and self.nillable and not self.calculated,
            "picklistValues": [dict(entry) for entry in self.picklist_values],
            "polymorphicForeignKey": len(self.reference_to) > 1,
            "precision": self.precision,
            "queryByDistance": False,
            "referenceTargetField": None,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "relationshipOrder": self.relationship_order,
            "restrictedDelete": self.restricted_delete,
            "restrictedPicklist": self.restricted_picklist,
            "scale": self.scale,
            "searchPrefilterable": False,
            "soapType": self.soap_type,
            "sortable": self.sortable,
            "type": self.type,
            "unique": self.unique,
            "updateable": self.updateable,
            "writeRequiresMasterRead": self.write_requires_master_read,
        }


@dataclass(frozen=True)
class ChildRelationship:
    child: str
    field: str
    relationship_name: str | None
    cascade_delete: bool
    restricted_delete: bool

    def describe(self) -> dict[str, Any]:
        return {
            "cascadeDelete": self.cascade_delete,
            "childSObject": self.child,
            "deprecatedAndHidden": False,
            "field": self.field,
            "junctionIdListNames": [],
            "junctionReferenceTo": [],
            "relationshipName": self.relationship_name,
            "restrictedDelete": self.restricted_delete,
        }


# ------------------------------------------------------------------------------------------------
# Objects
# ------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class ObjectDef:
    name: str
    label: str
    label_plural: str
    key_prefix: str
    custom: bool
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    queryable: bool = True
    fields: dict[str, FieldDef] = field(default_factory=dict)  # lower-case name -> field
    field_list: list[FieldDef] = field(default_factory=list)
    relationships: dict[str, FieldDef] = field(default_factory=dict)
    relationships_exact: dict[str, FieldDef] = field(default_factory=dict)
    child_relationships: list[ChildRelationship] = field(default_factory=list)
    children_by_name: dict[str, ChildRelationship] = field(default_factory=dict)
    cdc_enabled: bool = False
    stages: dict[str, tuple[int, bool, bool, str]] = field(default_factory=dict)
    # precomputed views for the write path
    required_fields: tuple[FieldDef, ...] = ()
    unique_fields: tuple[FieldDef, ...] = ()
    reference_fields: tuple[FieldDef, ...] = ()
    formula_fields: tuple[FieldDef, ...] = ()
    compound_fields: tuple[FieldDef, ...] = ()
    defaulted_fields: tuple[FieldDef, ...] = ()
    updateable_names: frozenset[str] = frozenset()
    auto_number_field: FieldDef | None = None
    name_field: FieldDef | None = None
    #: body key as sent -> field (or None), so hot paths skip case folding
    key_cache: dict[str, FieldDef | None] = field(default_factory=dict)
    _describe_cache: dict[str, dict[str, Any]] = field(default_factory=dict)
    _global_cache: dict[str, dict[str, Any]] = field(default_factory=dict)

    # -- SOQL protocol ---------------------------------------------------------------------------

    def get_field(self, name: str) -> FieldDef | None:
        return self.field_for_key(name)

    def field_for_key(self, key: str) -> FieldDef | None:
        """The field a name (in any case) designates; each spelling is looked up once."""
        try:
            return self.key_cache[key]
        except KeyError:
            found = self.fields.get(key.lower())
            if len(self.key_cache) < 10_000:
                self.key_cache[key] = found
            return found

    def get_relationship(self, name: str) -> FieldDef | None:
        found = self.relationships_exact.get(name)
        return found if found is not None else self.relationships.get(name.lower())

    def get_child_relationship(self, name: str) -> tuple[str, str] | None:
        child = self.children_by_name.get(name.lower())
        return None if child is None else (child.child, child.field)

    # -- build -----------------------------------------------------------------------------------

    def add_field(self, fdef: FieldDef) -> None:
        key = fdef.name.lower()
        if key in self.fields:
            raise SchemaError(f"{self.name}.{fdef.name} is defined twice")
        self.fields[key] = fdef
        self.field_list.append(fdef)

    def finish(self) -> None:
        self.relationships = {
            f.relationship_name.lower(): f for f in self.field_list if f.relationship_name and f.is_reference
        }
        self.relationships_exact = {
            f.relationship_name: f for f in self.relationships.values() if f.relationship_name
        }
        self.key_cache.update({f.name: f for f in self.field_list})
        self.required_fields = tuple(f for f in self.field_list if f.required)
        self.updateable_names = frozenset(f.name for f in self.field_list if f.updateable)
        self.unique_fields = tuple(f for f in self.field_list if f.unique)
        self.reference_fields = tuple(f for f in self.field_list if f.is_reference and not f.system)
        self.formula_fields = tuple(f for f in self.field_list if f.formula_fn is not None)
        self.compound_fields = tuple(f for f in self.field_list if f.compound_parts)
        self.defaulted_fields = tuple(f for f in self.field_list if f.default_value is not None)
        self.auto_number_field = next((f for f in self.field_list if f.auto_number), None)
        self.name_field = next((f for f in self.field_list if f.name_field), None)

    # -- describe --------------------------------------------------------------------------------

    def urls(self, version: str) -> dict[str, str]:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {
            "compactLayouts": f"{base}/describe/compactLayouts",
            "rowTemplate": f"{base}/{{ID}}",
            "approvalLayouts": f"{base}/describe/approvalLayouts",
            "defaultValues": f"{base}/defaultValues?recordTypeId&fields",
            "listviews": f"{base}/listviews",
            "describe": f"{base}/describe",
            "quickActions": f"{base}/quickActions",
            "layouts": f"{base}/describe/layouts",
            "sobject": base,
        }

    def global_entry(self, version: str) -> dict[str, Any]:
        cached = self._global_cache.get(version)
        if cached is None:
            cached = {
                "activateable": False,
                "associateEntityType": None,
                "associateParentEntity": None,
                "createable": self.createable,
                "custom": self.custom,
                "customSetting": False,
                "deepCloneable": False,
                "deletable": self.deletable,
                "deprecatedAndHidden": False,
                "feedEnabled": False,
                "hasSubtypes": False,
                "isInterface": False,
                "isSubtype": False,
                "keyPrefix": self.key_prefix,
                "label": self.label,
                "labelPlural": self.label_plural,
                "layoutable": self.createable,
                "mergeable": self.name in ("Account", "Contact"),
                "mruEnabled": True,
                "name": self.name,
                "queryable": self.queryable,
                "replicateable": True,
                "retrieveable": True,
                "searchable": self.createable,
                "triggerable": self.createable,
                "undeletable": self.deletable,
                "updateable": self.updateable,
                "urls": {
                    k: v for k, v in self.urls(version).items() if k in ("sobject", "describe", "rowTemplate")
                },
            }
            self._global_cache[version] = cached
        return cached

    def describe(self, version: str) -> dict[str, Any]:
        cached = self._describe_cache.get(version)
        if cached is None:
            cached = {
                **{k: v for k, v in self.global_entry(version).items() if k != "urls"},
                "actionOverrides": [],
                "childRelationships": [child.describe() for child in self.child_relationships],
                "compactLayoutable": self.createable,
                "defaultImplementation": None,
                "extendedBy": None,
                "extendsInterfaces": None,
                "fields": [f.describe() for f in self.field_list],
                "implementedBy": None,
                "implementsInterfaces": None,
                "listviewable": None,
                "lookupLayoutable": None,
                "namedLayoutInfos": [],
                "networkScopeFieldName": None,
                "recordTypeInfos": [
                    {
                        "active": True,
                        "available": True,
                        "defaultRecordTypeMapping": True,
                        "developerName": "Master",
                        "master": True,
                        "name": "Master",
                        "recordTypeId": "012000000000000AAA",
                        "urls": {
                            "layout": f"/services/data/v{version}/sobjects/{self.name}/describe/layouts/012000000000000AAA"
                        },
                    }
                ],
                "searchLayoutable": self.createable,
                "sobjectDescribeOption": "FULL",
                "supportedScopes": [{"label": "All " + self.label_plural.lower(), "name": "everything"}],
                "urls": self.urls(version),
            }
            self._describe_cache[version] = cached
        return cached


class Schema:
    """All objects of the org, by case-insensitive name and by key prefix."""

    def __init__(self, objects: Iterable[ObjectDef]) -> None:
        ordered = sorted(objects, key=lambda o: o.name.lower())
        self.objects: dict[str, ObjectDef] = {o.name.lower(): o for o in ordered}
        self.exact: dict[str, ObjectDef] = {o.name: o for o in ordered}
        self.ordered = ordered
        self.by_prefix: dict[str, ObjectDef] = {o.key_prefix: o for o in ordered}
        self.loaded_at = datetime.now(UTC).replace(microsecond=0)

    def get_object(self, name: str) -> ObjectDef | None:
        return self.exact.get(name) or self.objects.get(name.lower())

    def object_for_id(self, record_id: str) -> ObjectDef | None:
        return self.by_prefix.get(record_id[:3])

    def describe_global(self, version: str) -> dict[str, Any]:
        return {
            "encoding": "UTF-8",
            "maxBatchSize": 200,
            "sobjects": [o.global_entry(version) for o in self.ordered],
        }


# ------------------------------------------------------------------------------------------------
# Formulas: + - * / ( ), numbers and field references of the same record
# ------------------------------------------------------------------------------------------------

_FORMULA_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|([-+*/()]))")

Evaluator = Callable[[Mapping[str, Any]], "Decimal | None"]


def compile_formula(
    text: str, obj: ObjectDef, blank_as_zero: bool, scale: int
) -> Callable[[Mapping[str, Any]], Any]:
    """Compile an arithmetic formula into a function of a record (typed values by API name)."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    stripped = text.strip()
    while pos < len(stripped):
        m = _FORMULA_TOKEN.match(stripped, pos)
        if not m or m.end() == pos:
            raise SchemaError(f"{obj.name}: unsupported formula syntax at {stripped[pos:]!r} in {text!r}")
        number, name, op = m.groups()
        if number is not None:
            tokens.append(("num", number))
        elif name is not None:
            fdef = obj.get_field(name)
            if fdef is None:
                raise SchemaError(f"{obj.name}: formula {text!r} refers to unknown field {name}")
            tokens.append(("field", fdef.name))
        else:
            tokens.append(("op", op))
        pos = m.end()
    index = 0

    def peek() -> tuple[str, str] | None:
        return tokens[index] if index < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal index
        if index >= len(tokens):
            raise SchemaError(f"{obj.name}: formula {text!r} ends unexpectedly")
        token = tokens[index]
        index += 1
        return token

    def primary() -> Evaluator:
        kind, value = take()
        if kind == "num":
            constant = Decimal(value)
            return lambda record: constant
        if kind == "field":
            name = value
            if blank_as_zero:
                return lambda record: _as_decimal(record.get(name), Decimal(0))
            return lambda record: _as_decimal(record.get(name), None)
        if value == "(":
            inner = expression()
            if take() != ("op", ")"):
                raise SchemaError(f"{obj.name}: unbalanced parentheses in formula {text!r}")
            return inner
        if value == "-":
            operand = primary()
            return lambda record: None if (v := operand(record)) is None else -v
        raise SchemaError(f"{obj.name}: unexpected {value!r} in formula {text!r}")

    def term() -> Evaluator:
        left = primary()
        while (token := peek()) is not None and token[0] == "op" and token[1] in "*/":
            take()
            right = primary()
            left = _binary(token[1], left, right)
        return left

    def expression() -> Evaluator:
        left = term()
        while (token := peek()) is not None and token[0] == "op" and token[1] in "+-":
            take()
            right = term()
            left = _binary(token[1], left, right)
        return left

    evaluate = expression()
    if index != len(tokens):
        raise SchemaError(f"{obj.name}: unexpected trailing tokens in formula {text!r}")
    quantum = Decimal(1).scaleb(-scale)

    def run(record: Mapping[str, Any]) -> Decimal | None:
        try:
            value = evaluate(record)
        except ArithmeticError:
            return None
        return None if value is None else value.quantize(quantum, rounding=ROUND_HALF_UP)

    return run


def _as_decimal(value: Any, blank: Decimal | None) -> Decimal | None:
    if value is None:
        return blank
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def _binary(op: str, left: Evaluator, right: Evaluator) -> Evaluator:
    def apply(record: Mapping[str, Any]) -> Decimal | None:
        a, b = left(record), right(record)
        if a is None or b is None:
            return None
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        return a / b

    return apply


# ------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------


def _system_fields(obj_name: str, owner: bool) -> tuple[list[FieldDef], list[FieldDef], list[FieldDef]]:
    """(leading, audit, recent) system fields."""
    leading = [
        FieldDef(
            "Id",
            f"{obj_name} ID",
            "id",
            length=18,
            nillable=False,
            createable=False,
            updateable=False,
            defaulted_on_create=True,
            id_lookup=True,
            system=True,
        ),
        FieldDef(
            "IsDeleted",
            "Deleted",
            "boolean",
            nillable=False,
            createable=False,
            updateable=False,
            defaulted_on_create=True,
            system=True,
        ),
    ]
    audit: list[FieldDef] = []
    if owner:
        audit.append(
            FieldDef(
                "OwnerId",
                "Owner ID",
                "reference",
                length=18,
                nillable=False,
                defaulted_on_create=True,
                reference_to=("User",),
                relationship_name="Owner",
            )
        )
    audit += [
        FieldDef(
            "CreatedDate",
            "Created Date",
            "datetime",
            nillable=False,
            createable=False,
            updateable=False,
            defaulted_on_create=True,
            system=True,
        ),
        FieldDef(
            "CreatedById",
            "Created By ID",
            "reference",
            length=18,
            nillable=False,
            createable=False,
            updateable=False,
            defaulted_on_create=True,
            reference_to=("User",),
            relationship_name="CreatedBy",
            system=True,
        ),
        FieldDef(
            "LastModifiedDate",
            "Last Modified Date",
            "datetime",
            nillable=False,
            createable=False,
            updateable=False,
            defaulted_on_create=True,
            system=True,
        ),
        FieldDef(
            "LastModifiedById",
            "Last Modified By ID",
            "reference",
            length=18,
            nillable=False,
            createable=False,
            updateable=False,
            defaulted_on_create=True,
            reference_to=("User",),
            relationship_name="LastModifiedBy",
            system=True,
        ),
        FieldDef(
            "SystemModstamp",
            "System Modstamp",
            "datetime",
            nillable=False,
            createable=False,
            updateable=False,
            defaulted_on_create=True,
            system=True,
        ),
    ]
    recent = [
        FieldDef(
            "LastViewedDate", "Last Viewed Date", "datetime", createable=False, updateable=False, system=True
        ),
        FieldDef(
            "LastReferencedDate",
            "Last Referenced Date",
            "datetime",
            createable=False,
            updateable=False,
            system=True,
        ),
    ]
    return leading, audit, recent


def _picklist(entries: Iterable[Mapping[str, Any]]) -> tuple[dict[str, Any], ...]:
    return tuple(
        {
            "active": True,
            "defaultValue": bool(entry.get("default")),
            "label": entry.get("label", entry["value"]),
            "validFor": None,
            "value": entry["value"],
        }
        for entry in entries
    )


def _standard_field(spec: Mapping[str, Any]) -> FieldDef:
    ftype = spec["type"]
    required = bool(spec.get("required"))
    createable = spec.get("createable", True)
    default = spec.get("default")
    picklist = _picklist(spec.get("picklist", ()))
    defaulted = bool(spec.get("defaulted")) or default is not None or any(p["defaultValue"] for p in picklist)
    nillable = not required and ftype != "boolean"
    length = spec.get("length", _DEFAULT_LENGTHS.get(ftype, 18 if ftype == "reference" else 0))
    return FieldDef(
        name=spec["name"],
        label=spec["label"],
        type=ftype,
        length=length,
        precision=spec.get("precision", 0),
        scale=spec.get("scale", 0),
        digits=spec.get("digits", 0),
        nillable=nillable,
        createable=createable,
        updateable=spec.get("updateable", createable),
        defaulted_on_create=defaulted or (ftype == "boolean"),
        default_value=default if default is not None else (False if ftype == "boolean" else None),
        unique=bool(spec.get("unique")),
        case_sensitive=bool(spec.get("caseSensitive")),
        external_id=bool(spec.get("externalId")),
        id_lookup=bool(spec.get("idLookup")) or bool(spec.get("externalId")),
        calculated=bool(spec.get("calculated")),
        reference_to=tuple(spec.get("referenceTo", ())),
        relationship_name=spec.get("relationshipName"),
        child_relationship_name=spec.get("childRelationshipName"),
        cascade_delete=bool(spec.get("cascadeDelete")),
        restricted_delete=bool(spec.get("restrictedDelete")),
        picklist_values=picklist,
        restricted_picklist=bool(spec.get("restricted")),
        name_field=bool(spec.get("nameField")),
        compound=spec.get("compound"),
        compound_key=spec.get("compoundKey"),
    )


def _load_standard(path: Path) -> dict[str, tuple[ObjectDef, list[FieldDef], list[FieldDef], bool, bool]]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    result: dict[str, tuple[ObjectDef, list[FieldDef], list[FieldDef], bool, bool]] = {}
    for name, spec in doc["objects"].items():
        obj = ObjectDef(
            name=name,
            label=spec["label"],
            label_plural=spec["labelPlural"],
            key_prefix=spec["keyPrefix"],
            custom=False,
            createable=spec.get("createable", True),
            updateable=spec.get("updateable", True),
            deletable=spec.get("deletable", spec.get("createable", True)),
            stages={k: (v[0], v[1], v[2], v[3]) for k, v in spec.get("stages", {}).items()},
        )
        body = [_standard_field(f) for f in spec["fields"]]
        tail = [_standard_field(f) for f in spec["tail"]]
        result[name] = (obj, body, tail, bool(spec.get("owner")), bool(spec.get("recent")))
    return result


def _text(element: ET.Element | None, tag: str, default: str | None = None) -> str | None:
    if element is None:
        return default
    child = element.find(_NS + tag)
    if child is None or child.text is None:
        return default
    return child.text.strip()


def _flag(element: ET.Element | None, tag: str, default: bool = False) -> bool:
    value = _text(element, tag)
    return default if value is None else value.lower() == "true"


@dataclass
class _Permissions:
    fields: dict[str, tuple[bool, bool]] = field(default_factory=dict)  # "Obj.Field" -> (readable, editable)
    objects: dict[str, dict[str, bool]] = field(default_factory=dict)
    present: bool = False


def _load_permissions(roots: Iterable[Path]) -> _Permissions:
    perms = _Permissions()
    for root in roots:
        for path in sorted(root.glob("**/permissionsets/*.permissionset-meta.xml")):
            perms.present = True
            doc = ET.parse(path).getroot()  # noqa: S314 - the package is the project's own metadata
            for fp in doc.findall(_NS + "fieldPermissions"):
                name = _text(fp, "field") or ""
                readable, editable = _flag(fp, "readable"), _flag(fp, "editable")
                old = perms.fields.get(name, (False, False))
                perms.fields[name] = (old[0] or readable or editable, old[1] or editable)
            for op in doc.findall(_NS + "objectPermissions"):
                name = _text(op, "object") or ""
                entry = perms.objects.setdefault(name, {})
                for tag in ("allowCreate", "allowRead", "allowEdit", "allowDelete"):
                    entry[tag] = entry.get(tag, False) or _flag(op, tag)
    return perms


def _custom_field(obj_name: str, path: Path) -> FieldDef:
    doc = ET.parse(path).getroot()  # noqa: S314 - the package is the project's own metadata
    name = _text(doc, "fullName") or path.name.split(".")[0]
    mtype = _text(doc, "type") or ""
    formula = _text(doc, "formula")
    if mtype not in _METADATA_TYPES:
        raise SchemaError(f"{obj_name}.{name}: field type {mtype!r} is not supported by the local org")
    ftype = _METADATA_TYPES[mtype]
    label = _text(doc, "label") or name
    required = _flag(doc, "required")
    kwargs: dict[str, Any] = {
        "name": name,
        "label": label,
        "type": ftype,
        "custom": True,
        "description": _text(doc, "description"),
    }
    length = _text(doc, "length")
    if ftype in TEXT_TYPES:
        kwargs["length"] = int(length) if length else _DEFAULT_LENGTHS.get(ftype, 255)
    if mtype in ("LongTextArea", "Html"):
        kwargs["html_formatted"] = mtype == "Html"
    if ftype in NUMBER_TYPES:
        kwargs["precision"] = int(_text(doc, "precision") or 18)
        kwargs["scale"] = int(_text(doc, "scale") or 0)
    if mtype == "EncryptedText":
        kwargs["mask"] = _text(doc, "maskChar")
        kwargs["mask_type"] = _text(doc, "maskType")
    if formula is not None:
        kwargs.update(
            formula=formula,
            calculated=True,
            createable=False,
            updateable=False,
            formula_blank_as_zero=(_text(doc, "formulaTreatBlanksAs") or "BlankAsZero") == "BlankAsZero",
        )
        return FieldDef(**kwargs)
    if ftype == "boolean":
        default = (_text(doc, "defaultValue") or "false").lower() == "true"
        kwargs.update(nillable=False, defaulted_on_create=True, default_value=default)
        return FieldDef(**kwargs)
    kwargs["external_id"] = _flag(doc, "externalId")
    kwargs["id_lookup"] = kwargs["external_id"]
    kwargs["unique"] = _flag(doc, "unique")
    kwargs["case_sensitive"] = _flag(doc, "caseSensitive")
    kwargs["nillable"] = not required
    if ftype in ("picklist", "multipicklist"):
        value_set = doc.find(_NS + "valueSet")
        entries = []
        definition = value_set.find(_NS + "valueSetDefinition") if value_set is not None else None
        if definition is not None:
            for value in definition.findall(_NS + "value"):
                entries.append(
                    {
                        "value": _text(value, "fullName") or "",
                        "label": _text(value, "label") or _text(value, "fullName") or "",
                        "default": _flag(value, "default"),
                    }
                )
        kwargs["picklist_values"] = _picklist(entries)
        kwargs["restricted_picklist"] = _flag(value_set, "restricted")
        if any(e["default"] for e in entries):
            kwargs["defaulted_on_create"] = True
            kwargs["default_value"] = next(e["value"] for e in entries if e["default"])
    if mtype in ("Lookup", "MasterDetail"):
        reference_to = _text(doc, "referenceTo")
        relationship = _text(doc, "relationshipName")
        if not reference_to or not relationship:
            raise SchemaError(f"{obj_name}.{name}: a {mtype} needs referenceTo and relationshipName")
        kwargs.update(
            length=18,
            reference_to=(reference_to,),
            relationship_name=name[:-3] + "__r" if name.endswith("__c") else name,
            child_relationship_name=relationship + "__r",
        )
        if mtype == "MasterDetail":
            reparentable = _flag(doc, "reparentableMasterDetail")
            kwargs.update(
                master_detail=True,
                nillable=False,
                cascade_delete=True,
                updateable=reparentable,
                relationship_order=int(_text(doc, "relationshipOrder") or 0),
                write_requires_master_read=_flag(doc, "writeRequiresMasterRead"),
            )
        else:
            constraint = _text(doc, "deleteConstraint") or "SetNull"
            kwargs["restricted_delete"] = constraint == "Restrict"
            kwargs["cascade_delete"] = constraint == "Cascade"
            kwargs["write_requires_master_read"] = None
    return FieldDef(**kwargs)


def _custom_object(name: str, path: Path, prefix: str) -> tuple[ObjectDef, FieldDef]:
    doc = ET.parse(path).getroot()  # noqa: S314 - the package is the project's own metadata
    obj = ObjectDef(
        name=name,
        label=_text(doc, "label") or name,
        label_plural=_text(doc, "pluralLabel") or name,
        key_prefix=prefix,
        custom=True,
    )
    name_el = doc.find(_NS + "nameField")
    name_label = _text(name_el, "label") or f"{obj.label} Name"
    if (_text(name_el, "type") or "Text") == "AutoNumber":
        name_field = FieldDef(
            "Name",
            name_label,
            "string",
            length=30,
            nillable=False,
            createable=False,
            updateable=False,
            defaulted_on_create=True,
            auto_number=True,
            display_format=_text(name_el, "displayFormat") or "{0}",
            name_field=True,
            id_lookup=True,
        )
    else:
        name_field = FieldDef(
            "Name", name_label, "string", length=80, nillable=False, name_field=True, id_lookup=True
        )
    return obj, name_field


def _package_roots(metadata_dir: Path) -> list[Path]:
    project = metadata_dir / "sfdx-project.json"
    if not project.exists():
        raise SchemaError(f"no sfdx-project.json in {metadata_dir}")
    doc = json.loads(project.read_text(encoding="utf-8"))
    roots = [metadata_dir / entry["path"] for entry in doc.get("packageDirectories", [])]
    if not roots:
        raise SchemaError(f"{project} lists no packageDirectories")
    return roots


def _custom_prefix(index: int) -> str:
    """Key prefixes for custom objects in a stable order: a00, a01, ... a0z, a10, ..."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return "a" + alphabet[index // 62] + alphabet[index % 62]


def load_schema(metadata_dir: Path, *, enforce_permission_sets: bool = True) -> Schema:
    """Build the org's schema from the standard object file and the package in ``metadata_dir``."""
    roots = _package_roots(metadata_dir)
    standard = _load_standard(_STANDARD_FILE)
    perms = _load_permissions(roots) if enforce_permission_sets else _Permissions()

    object_dirs: dict[str, Path] = {}
    for root in roots:
        for directory in sorted(root.glob("**/objects/*")):
            if directory.is_dir():
                object_dirs.setdefault(directory.name, directory)
    cdc: set[str] = set()
    for root in roots:
        for path in root.glob("**/platformEventChannelMembers/*.platformEventChannelMember-meta.xml"):
            doc = ET.parse(path).getroot()  # noqa: S314 - the package is the project's own metadata
            entity = _text(doc, "selectedEntity") or ""
            if entity.endswith("__ChangeEvent"):
                cdc.add(entity[: -len("__ChangeEvent")] + "__c")
            elif entity.endswith("ChangeEvent"):
                cdc.add(entity[: -len("ChangeEvent")])

    custom_names = sorted(
        name
        for name, d in object_dirs.items()
        if name.endswith("__c") and (d / f"{name}.object-meta.xml").exists()
    )
    leftover = [name for name in object_dirs if name not in standard and name not in custom_names]
    if leftover:
        raise SchemaError(
            f"objects in the package that are neither custom nor served standard objects: {leftover}"
        )

    objects: dict[str, ObjectDef] = {}
    custom_fields: dict[str, list[FieldDef]] = {}
    for name, directory in object_dirs.items():
        fields = [_custom_field(name, p) for p in sorted(directory.glob("fields/*.field-meta.xml"))]
        custom_fields[name] = fields

    # standard objects
    for name, (obj, body, tail, owner, recent) in standard.items():
        leading, audit, recent_fields = _system_fields(name, owner)
        for fdef in [*leading, *body, *audit, *tail, *(recent_fields if recent else [])]:
            obj.add_field(fdef)
        objects[name] = obj

    # custom objects
    for index, name in enumerate(custom_names):
        directory = object_dirs[name]
        obj, name_field = _custom_object(name, directory / f"{name}.object-meta.xml", _custom_prefix(index))
        # a detail object (one with a master-detail field) has no owner: its master's owner applies
        has_owner = not any(f.master_detail for f in custom_fields[name])
        (id_field, deleted_field), audit, recent_fields = _system_fields(name, owner=has_owner)
        owner_fields, audit = (audit[:1], audit[1:]) if has_owner else ([], audit)
        for fdef in [id_field, *owner_fields, deleted_field, name_field, *audit, *recent_fields]:
            obj.add_field(fdef)
        objects[name] = obj

    # custom fields (on custom and standard objects), with field-level security applied
    for name, fields in custom_fields.items():
        obj = objects[name]
        for fdef in fields:
            if perms.present and not fdef.master_detail and not fdef.required:
                readable, editable = perms.fields.get(f"{name}.{fdef.name}", (False, False))
                if not readable:
                    continue
                if not editable:
                    fdef.createable = False
                    fdef.updateable = False
            obj.add_field(fdef)

    # object permissions for custom objects
    if perms.present:
        for name in custom_names:
            access = perms.objects.get(name, {})
            if not access.get("allowRead"):
                del objects[name]
                continue
            obj = objects[name]
            obj.createable = access.get("allowCreate", False)
            obj.updateable = access.get("allowEdit", False)
            obj.deletable = access.get("allowDelete", False)

    for name in list(cdc):
        if name not in objects:
            raise SchemaError(f"Change Data Capture is enabled for {name}, which the package does not define")
    for obj in objects.values():
        obj.cdc_enabled = obj.name in cdc

    _link(objects)
    for obj in objects.values():
        for fdef in obj.field_list:
            if fdef.formula:
                fdef.formula_fn = compile_formula(fdef.formula, obj, fdef.formula_blank_as_zero, fdef.scale)
        obj.finish()
    return Schema(objects.values())


_NOTE_PARENTS = ("Account", "Contact", "Opportunity", "Product2")


def _link(objects: dict[str, ObjectDef]) -> None:
    """Resolve reference targets, compound fields and child relationships."""
    customs = sorted(name for name in objects if name.endswith("__c"))
    for obj in objects.values():
        compounds: dict[str, list[str]] = {}
        for fdef in obj.field_list:
            if fdef.compound:
                compounds.setdefault(fdef.compound, []).append(fdef.name)
        for compound, parts in compounds.items():
            target = obj.get_field(compound)
            if target is not None and (target.type == "address" or compound == "Name"):
                target.compound_parts = tuple(parts)
        for fdef in obj.field_list:
            if not fdef.is_reference:
                continue
            if fdef.reference_to == ("*",):
                fdef.reference_to = tuple(n for n in (*_NOTE_PARENTS, *customs) if n in objects)
            missing = [t for t in fdef.reference_to if t not in objects]
            if missing:
                raise SchemaError(
                    f"{obj.name}.{fdef.name} refers to objects the org does not have: {missing}"
                )
            if fdef.child_relationship_name and not fdef.system:
                for target_name in fdef.reference_to:
                    parent = objects[target_name]
                    child = ChildRelationship(
                        obj.name,
                        fdef.name,
                        fdef.child_relationship_name,
                        fdef.cascade_delete,
                        fdef.restricted_delete,
                    )
                    key = fdef.child_relationship_name.lower()
                    if key in parent.children_by_name:
                        raise SchemaError(
                            f"{parent.name} has two child relationships named {fdef.child_relationship_name}"
                        )
                    parent.children_by_name[key] = child
                    parent.child_relationships.append(child)
    for obj in objects.values():
        obj.child_relationships.sort(key=lambda c: (c.child, c.field))
