"""Check a Compute REST JSON document against the `google.cloud.compute_v1` message it claims to be.

The clients parse with `ignore_unknown_fields`, so a fake that invents a field (or a wrong enum
value) passes every exporter test and still lies about the real API. `shape_errors` walks the
JSON against the proto descriptor: every key must be a field, every value of the field's type, and
a string field with a same-named nested enum (`status` -> `Status`) must hold one of its values.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

_INTS = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_SFIXED32,
}
_LONGS = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}
_FLOATS = {FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT}


def shape_errors(document: Any, message: Any) -> list[str]:
    """Problems of `document` as the JSON of proto-plus class `message` (empty list: it fits)."""
    errors: list[str] = []
    _check_message(document, message.pb().DESCRIPTOR, message.__name__, errors)
    return errors


def _check_message(value: Any, descriptor: Descriptor, path: str, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append(f"{path}: {type(value).__name__}, not an object ({descriptor.name})")
        return
    fields = {f.json_name: f for f in descriptor.fields}
    for key, item in value.items():
        field = fields.get(key)
        if field is None:
            errors.append(f"{path}.{key}: no such field in {descriptor.name}")
            continue
        where = f"{path}.{key}"
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            _check_map(item, field.message_type, where, errors)
        elif _is_repeated(field):
            if not isinstance(item, list):
                errors.append(f"{where}: {type(item).__name__}, not a list")
                continue
            for i, element in enumerate(item):
                _check_value(element, field, descriptor, f"{where}[{i}]", errors)
        else:
            _check_value(item, field, descriptor, where, errors)


def _is_repeated(field: FieldDescriptor) -> bool:
    if hasattr(field, "is_repeated"):  # protobuf >= 6; `label` is gone in 7
        return bool(field.is_repeated)
    return bool(field.label == FieldDescriptor.LABEL_REPEATED)


def _check_map(value: Any, entry: Descriptor, path: str, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append(f"{path}: {type(value).__name__}, not a map")
        return
    value_field = entry.fields_by_name["value"]
    for key, item in value.items():
        _check_value(item, value_field, entry, f"{path}[{key!r}]", errors)


def _check_value(value: Any, field: FieldDescriptor, owner: Descriptor, path: str, errors: list[str]) -> None:
    if field.message_type is not None:
        _check_message(value, field.message_type, path, errors)
    elif field.type == FieldDescriptor.TYPE_STRING:
        if not isinstance(value, str):
            errors.append(f"{path}: {value!r} is not a string")
            return
        enum = owner.enum_types_by_name.get(field.name[:1].upper() + _camel(field.name)[1:])
        if enum is not None and value not in enum.values_by_name:
            errors.append(f"{path}: {value!r} is not a {owner.name}.{enum.name}")
    elif field.type == FieldDescriptor.TYPE_BOOL:
        if not isinstance(value, bool):
            errors.append(f"{path}: {value!r} is not a bool")
    elif field.type in _INTS:
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{path}: {value!r} is not an integer")
    elif field.type in _LONGS:  # JSON carries 64-bit integers as strings (numbers are accepted too)
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
            errors.append(f"{path}: {value!r} is not a 64-bit integer")
    elif field.type in _FLOATS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append(f"{path}: {value!r} is not a number")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
