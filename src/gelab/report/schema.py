"""Reading a metrics file back into its ``msgspec`` Struct (:mod:`gelab.eval.schema`, the one layout that
evaluation writes), with a one-line error naming the file and the dotted key, and reading numbers
out of the Structs for the tables.

The paper targets use the same Structs with every field optional (:func:`validate` ``partial``), so
a target can never use a key or unit that the metrics files do not. Files written before intervals
(or counts) existed have none: their fields stay ``UNSET`` and read as absent.
"""

from __future__ import annotations

import functools
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType, field

from gelab.errors import InputError, fits, quote
from gelab.eval.intervals import COUNT, SUFFIX
from gelab.eval.schema import Interval, Metrics


class MetricsError(InputError):
    """A bad metrics or targets file; the message names the file and the dotted key."""


TRAIN_DIR = "train"  # metrics/train/ holds training summaries, not a model
LEARNING_DIR = "learning"  # metrics/learning/ holds the learning checks (gelab.report.learning), not a model


def validate(data: Any, schema: type[Metrics], file: str, *, partial: bool = False) -> Struct:
    """``data`` (a parsed metrics file) as its ``schema`` Struct; :class:`MetricsError` if it does not fit.

    ``partial`` makes every key optional (the paper reports a subset); unknown keys stay errors.
    """
    try:
        return msgspec.convert(data, _partial(schema) if partial else schema, strict=True)
    except msgspec.ValidationError as exc:
        problem = _problem(data, schema, "", partial)
        raise MetricsError(f"{file}: {problem or exc}") from None


# --- the partial Structs of the paper targets --------------------------------------------------


@functools.cache
def _partial(schema: type[Struct]) -> type[Struct]:
    """``schema`` with every field optional, recursively (keys, names and constraints kept)."""
    hints = typing.get_type_hints(schema, include_extras=True)
    fields = [(f.name, _partial_type(hints[f.name]), field(name=f.encode_name, default=UNSET))
              for f in msgspec.structs.fields(schema)]
    return msgspec.defstruct(f"{schema.__name__}Partial", fields, forbid_unknown_fields=True, kw_only=True)


def _partial_type(tp: Any) -> Any:
    if isinstance(tp, type) and issubclass(tp, Metrics):
        return _partial(tp)
    if typing.get_origin(tp) is dict:
        key, value = typing.get_args(tp)
        return dict[key, _partial_type(value)]  # type: ignore[valid-type]
    return tp


# --- error messages: the first problem, as "dotted.key: what is wrong" --------------------------


def _problem(value: Any, tp: Any, key: str, partial: bool) -> str | None:
    """Why ``value`` does not fit ``tp`` (None if it does); ``key`` is its dotted key."""
    options = typing.get_args(tp) if typing.get_origin(tp) in (Union, types.UnionType) else (tp,)
    if value is None and type(None) in options:
        return None
    tp = next(t for t in options if t not in (type(None), UnsetType))
    where = f"{key}: " if key else ""
    if isinstance(tp, type) and issubclass(tp, Metrics):
        if not isinstance(value, dict):
            return f"{where}expected an object, got {quote(value)}"
        fields = {f.encode_name: f for f in msgspec.structs.fields(tp)}
        hints = typing.get_type_hints(tp, include_extras=True)
        prefix = f"{key}." if key else ""
        for name in value:
            if name not in fields:
                return f"{prefix}{name}: unknown key (expected: {', '.join(fields)})"
        if not partial:
            for name, f in fields.items():
                if f.required and name not in value:
                    return f"{prefix}{name}: missing key"
        for name, item in value.items():
            problem = _problem(item, hints[fields[name].name], prefix + name, partial)
            if problem:
                return problem
        return None
    if typing.get_origin(tp) is dict:
        if not isinstance(value, dict):
            return f"{where}expected an object keyed by path length, got {quote(value)}"
        key_type, entry = typing.get_args(tp)
        for length, item in value.items():
            if not fits(length, key_type):
                return f"{key}.{length}: unknown key (path lengths are 1, 2, ...)"
            problem = _problem(item, entry, f"{key}.{length}", partial)
            if problem:
                return problem
        return None
    if fits(value, tp):
        return None
    if tp is Interval:
        return f"{where}expected [low, high], two percentages with low <= high, got {quote(value)}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{where}not a number ({quote(value)})"
    if not math.isfinite(value):
        return f"{where}not a finite number ({quote(value)})"
    meta = next((m for m in typing.get_args(tp)[1:] if isinstance(m, Meta)), None)
    return f"{where}{quote(value)} is not {meta.description if meta else tp}"


# --- numbers out of the Structs, by the keys of the JSON file -------------------------------------


@dataclass(frozen=True)
class Number:
    """One percentage of a metrics file with its 95 % interval and count, where the file has them."""

    value: float
    ci: tuple[float, float] | None = None
    n: int | None = None


def at(data: Struct | Mapping[str, Any] | None, *keys: str) -> Any:
    """The value at ``keys``, the JSON file's keys (``"strict", "per_path", "3", "pass@1"``); ``UNSET``
    when the file (``data`` None), a level or the key is absent."""
    node: Any = data
    for key in keys:
        if isinstance(node, Struct):
            name = _attributes(type(node)).get(key)
            node = UNSET if name is None else getattr(node, name)
        elif isinstance(node, Mapping):
            node = node.get(key, UNSET)
        else:
            return UNSET
    return node


def number(data: Struct | Mapping[str, Any] | None, *keys: str) -> Number | None:
    """The percentage at ``keys`` with its interval and count neighbours (``KEY_ci95``, ``KEY_n``: the
    suffixes of :mod:`gelab.eval.intervals`); None when absent or null."""
    parent, key = at(data, *keys[:-1]), keys[-1]
    value = at(parent, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    ci, n = at(parent, key + SUFFIX), at(parent, key + COUNT)
    return Number(float(value), (ci.low, ci.high) if isinstance(ci, Interval) else None,
                  n if isinstance(n, int) else None)


@functools.cache
def _attributes(cls: type[Struct]) -> dict[str, str]:
    """JSON key -> attribute name of a Struct's fields (``"pass@1"`` -> ``pass1``)."""
    return {f.encode_name: f.name for f in msgspec.structs.fields(cls)}
