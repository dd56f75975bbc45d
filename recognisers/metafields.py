"""Typed reading of ``meta.json`` fields: a hand-edited or damaged file is one clear error.

Every field a model reads back is checked against its declared type (a config dataclass's
annotations, or a type given at the call), so that ``"glyph_size": "abc"`` is refused when
the model is loaded, not met as a ``TypeError`` deep inside Keras or OpenCV.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, TypeVar

from recognisers.errors import UserError

T = TypeVar("T")
NAMES = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true or false",
    type(None): "null",
    dict: "an object",
}


def coerce(value: Any, hint: Any) -> tuple[bool, Any]:
    """(does ``value``, as parsed from JSON, fit type ``hint``?, the value in that type)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for option in args:
            ok, converted = coerce(value, option)
            if ok:
                return True, converted
        return False, None
    if origin in (list, tuple):
        if not isinstance(value, list):
            return False, None
        items = [coerce(item, args[0]) for item in value]
        return all(ok for ok, _ in items), origin(v for _, v in items)
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return ok, float(value) if ok else None
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is type(None):
        return value is None, None
    if hint in (str, bool) or origin is dict or hint is dict:
        return isinstance(value, origin or hint), value
    raise TypeError(f"unsupported field type {hint!r}")  # a programming error, not the user's


def describe(hint: Any) -> str:
    """``tuple[int, ...]`` -> "a list of an integer"... in words a user can act on."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin in (list, tuple):
        return f"a list of {describe(args[0]).split(' ', 1)[1]}s"
    return NAMES.get(origin or hint, str(hint))


def typed_field(obj: Any, name: str, hint: Any, where: str, prefix: str = "") -> Any:
    """``obj[name]`` checked against ``hint``; a missing or mistyped field is a UserError.

    ``where`` names the file (``model/meta.json``), ``prefix`` the enclosing field.
    """
    if not isinstance(obj, dict) or name not in obj:
        raise UserError(f"{where} is damaged: no {prefix}{name} field")
    ok, value = coerce(obj[name], hint)
    if not ok:
        raise UserError(f"{where} is damaged: {prefix}{name} must be {describe(hint)}, not {obj[name]!r}")
    return value


def dataclass_from_meta(cls: type[T], obj: Any, where: str, prefix: str = "") -> T:
    """A config dataclass from its JSON form; every present field type-checked, unknown ones refused.

    Absent fields take the dataclass default (older models saved fewer settings), or the value in
    the class's ``LEGACY_VALUES`` where the models saved before a field existed were built
    otherwise than today's default builds; the names in the class's ``RETIRED_FIELDS`` (settings
    older models saved that no longer exist) are ignored.
    """
    if not isinstance(obj, dict):
        raise UserError(f"{where} is damaged: {prefix.rstrip('.')} must be an object, not {obj!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(obj) - set(names) - set(getattr(cls, "RETIRED_FIELDS", ())))
    if unknown:
        raise UserError(f"{where} is damaged: unknown field(s) {', '.join(prefix + u for u in unknown)}")
    values = dict(getattr(cls, "LEGACY_VALUES", {}))
    values.update({name: _field(obj, name, hints[name], where, prefix) for name in names if name in obj})
    return cls(**values)


def _field(obj: dict, name: str, hint: Any, where: str, prefix: str) -> Any:
    """One field: a nested config dataclass is read (and checked) as a whole."""
    if dataclasses.is_dataclass(hint):
        return dataclass_from_meta(hint, obj[name], where, f"{prefix}{name}.")  # type: ignore[arg-type]
    return typed_field(obj, name, hint, where, prefix)
