"""Records that fit their schema, whatever shape Voluum sends a value in.

Voluum's answers do not always hold the shapes the notes promise (`voluum-api.md` §10,
"nulls and shapes"): a name, code or id may come as an object (`{code, name}`,
`{id, name}`), as null or as ""; a metric may be null. This module is the one place where
every stream's values are made to fit the schema the stream declares, driven by that
schema alone (no per-stream rules):

- text: an object is reduced to the text the field names (`...Name`: its `name`;
  `...Code`/`...Id`: its `code` or `id`; any other text field: `name`, else `code`, else
  `id`); a number or a boolean becomes its text; "" and null become null, and a key field
  (declared non-null) becomes "" instead;
- integers and numbers: null stays null (never a 0 the tap made up); a numeric text or an
  integral float is read as the number it says; anything else is null;
- booleans: `true`/`false` texts and 0/1 are read as such; anything else is null;
- objects and arrays: their declared properties and items are fitted the same way.

Two ways in: `Shape.fit(record)` for streams whose records are built in Python (entities,
live clicks and visits, the event log, the column dictionary), and `RowDecoder` for report
pages (`record_path.py`), which decodes a page with types taken from the same schema
(C speed) and fits it value by value only when a value does not have its declared type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

TEXT, INTEGER, NUMBER, BOOLEAN, OBJECT, ARRAY, ANY = (
    "string",
    "integer",
    "number",
    "boolean",
    "object",
    "array",
    "any",
)
_NAME_KEYS = ("name", "label")
_CODE_KEYS = ("code", "id")
_ID_KEYS = ("id", "code")
_OTHER_KEYS = ("name", "code", "id", "label", "value")
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})

NonEmptyText = Annotated[str, msgspec.Meta(min_length=1)]
"""Text as a report page may hold it without fitting: never "" (that becomes null)."""


def object_keys(field: str) -> tuple[str, ...]:
    """Which keys of an object arriving in text field `field` give its text, in order."""
    if field == "name" or field.endswith("Name"):
        return _NAME_KEYS
    if field == "code" or field.endswith("Code"):
        return _CODE_KEYS
    if field == "id" or field.endswith(("Id", "ID")):
        return _ID_KEYS
    return _OTHER_KEYS


def schema_kind(schema: Mapping[str, Any]) -> tuple[str, bool]:
    """The one JSON type a schema declares (`ANY` for none or several) and its nullability."""
    declared = schema.get("type")
    types = [declared] if isinstance(declared, str) else list(declared or ())
    nullable = "null" in types or not types
    kinds = [t for t in types if t != "null"]
    return (kinds[0] if len(kinds) == 1 else ANY), nullable


@dataclass(frozen=True)
class FieldShape:
    """How one field's values are made to fit its declared type."""

    kind: str
    nullable: bool
    keys: tuple[str, ...] = _OTHER_KEYS
    """For text: the keys of an object that give its text, in order."""
    properties: Mapping[str, FieldShape] | None = None
    """For objects: their declared properties."""
    items: FieldShape | None = None
    """For arrays: their items."""

    @classmethod
    def of(cls, name: str, schema: Mapping[str, Any]) -> FieldShape:
        """The shape of field `name` declared by `schema`."""
        kind, nullable = schema_kind(schema)
        properties = items = None
        if kind == OBJECT and isinstance(schema.get("properties"), dict):
            properties = {k: cls.of(k, v) for k, v in schema["properties"].items()}
        if kind == ARRAY and isinstance(schema.get("items"), dict):
            items = cls.of(name, schema["items"])
        return cls(kind, nullable, object_keys(name), properties, items)

    @property
    def empty(self) -> Any:
        """What a missing value becomes: null, or "" for a key (non-null text)."""
        return "" if self.kind == TEXT and not self.nullable else None

    def fit(self, value: Any) -> Any:
        """`value` in the declared type (or null; "" for a key)."""
        fitted = _FITTERS[self.kind](self, value)
        return self.empty if fitted is None else fitted


def _text(shape: FieldShape, value: Any) -> str | None:
    if type(value) is str:
        return value or None
    if isinstance(value, dict):
        return next((t for k in shape.keys if (t := _scalar_text(value.get(k)))), None)
    return _scalar_text(value)


def _scalar_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def _integer(shape: FieldShape, value: Any) -> int | None:
    if type(value) is int:
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return int(number) if number.is_integer() else None
    return None


def _number(shape: FieldShape, value: Any) -> float | int | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _boolean(shape: FieldShape, value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        return True if text in _TRUE else False if text in _FALSE else None
    return None


def _object(shape: FieldShape, value: Any) -> dict | None:
    if not isinstance(value, dict):
        return None
    if shape.properties:
        fit_fields(value, shape.properties)
    return value


def _array(shape: FieldShape, value: Any) -> list | None:
    if not isinstance(value, list):
        return None
    items = shape.items
    return value if items is None else [items.fit(v) for v in value]


def _any(shape: FieldShape, value: Any) -> Any:
    return value


_FITTERS: dict[str, Callable[[FieldShape, Any], Any]] = {
    TEXT: _text,
    INTEGER: _integer,
    NUMBER: _number,
    BOOLEAN: _boolean,
    OBJECT: _object,
    ARRAY: _array,
    ANY: _any,
}


def fit_fields(record: dict, fields: Mapping[str, FieldShape]) -> dict:
    """Fit every value of `record` that `fields` declares (in place; others untouched)."""
    for name, value in record.items():
        shape = fields.get(name)
        if shape is not None:
            fitted = shape.fit(value)
            if fitted is not value:
                record[name] = fitted
    return record


class Shape:
    """The declared shape of a stream's records: `fit` makes a record fit it."""

    def __init__(self, schema: Mapping[str, Any], skip: Iterable[str] = ()) -> None:
        """From a stream's schema; fields in `skip` are left as they are."""
        left_out = set(skip)
        self.fields: dict[str, FieldShape] = {
            name: FieldShape.of(name, prop)
            for name, prop in (schema.get("properties") or {}).items()
            if name not in left_out and isinstance(prop, dict)
        }

    def fit(self, record: dict) -> dict:
        """`record` with every declared field fitting its type (changed in place)."""
        return fit_fields(record, self.fields)


def struct_type(shape: FieldShape | None) -> Any:
    """The msgspec type a clean value of this shape has (`Any` when there is none)."""
    if shape is None:
        return Any
    simple: dict[str, Any] = {
        TEXT: NonEmptyText,
        INTEGER: int,
        NUMBER: float,  # msgspec takes a JSON integer for a float, as a float
        BOOLEAN: bool,
    }
    found = simple.get(shape.kind)
    return Any if found is None else found | None


class RowDecoder:
    """Decodes the rows of a report page, keeping only `fields`, each fitting its schema.

    A page whose values all have their declared types (the usual case) is decoded once,
    typed, by msgspec; a page where one does not is decoded again untyped and fitted value
    by value (`Shape`). Fields in `untyped` (those the stream's completer reads: day, hour,
    timestamps) are taken as they come. A field a row leaves out stays out.
    """

    def __init__(
        self, fields: tuple[str, ...], schema: Mapping[str, Any], untyped: Iterable[str] = ()
    ) -> None:
        """Decoders for `fields` of each row, typed from `schema` but for `untyped`."""
        shape = Shape(schema, skip=untyped)
        types = [struct_type(shape.fields.get(name)) for name in fields]
        self.typed = _page_decoder(fields, types)
        self.plain = _page_decoder(fields, [Any] * len(fields))
        shape.fields = {f: shape.fields[f] for f in fields if f in shape.fields}
        self.shape = shape
        self.fitted_pages = 0
        """Pages that needed fitting value by value."""

    def decode(self, body: bytes) -> list[Any]:
        """The page's rows: structs (typed, clean) or dicts (fitted)."""
        try:
            return self.typed.decode(body).rows
        except msgspec.ValidationError:
            pass
        self.fitted_pages += 1
        rows: list[dict] = msgspec.to_builtins(self.plain.decode(body).rows)
        fit = self.shape.fit
        for row in rows:
            fit(row)
        return rows


def _page_decoder(fields: tuple[str, ...], types: list[Any]) -> msgspec.json.Decoder:
    row = msgspec.defstruct(
        "Row",
        [
            (f"f{i}", kind | msgspec.UnsetType if kind is not Any else Any, msgspec.UNSET)
            for i, kind in enumerate(types)
        ],
        rename={f"f{i}": name for i, name in enumerate(fields)},
        gc=False,  # decoded JSON holds no cycles: rows the collector need not walk
    )
    rows_type: Any = list[row]  # type: ignore[valid-type]
    page = msgspec.defstruct("Page", [("rows", rows_type, msgspec.field(default_factory=list))])
    return msgspec.json.Decoder(page)
