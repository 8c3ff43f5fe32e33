"""What each metrics file may contain: ``msgspec`` Structs with constraints.

A metrics file is ``metrics/<model>/<kind>.json``; ``kind`` selects its Struct in :data:`SCHEMAS`.
Every required key must be present, no other key may appear, percentages are finite numbers in
0..100 (or ``null`` for an empty bucket, shown as "—"), counts are non-negative integers. Strings,
booleans, NaN and infinities are errors. Each percentage may have its 95 % interval beside it,
``KEY_ci95`` = [low, high], and the number of steps or tasks it is over, ``KEY_n``
(:mod:`gelab.eval.intervals`); files written before intervals (or counts) existed have none. A problem raises :class:`MetricsError` whose message names the file and the dotted key.
To add a key that an evaluation starts writing, add it here.
"""

from __future__ import annotations

import functools
import math
import sys
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Union

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType, field

from gelab.errors import InputError, fits, quote

Percent = Annotated[float, Meta(ge=0, le=100, description="a percentage in 0..100")]
Count = Annotated[int, Meta(ge=0, description="an integer count >= 0")]
Positive = Annotated[int, Meta(ge=1, description="an integer >= 1")]
Number = Annotated[float, Meta(ge=0, le=sys.float_info.max, description="a finite number >= 0")]
PathLength = Annotated[str, Meta(pattern=r"^[1-9][0-9]*$")]  # "1", "2", ...


class MetricsError(InputError):
    """A bad metrics or targets file; the message names the file and the dotted key."""


class Interval(Struct, array_like=True, forbid_unknown_fields=True):
    """A 95 % interval in percent, written as the JSON array [low, high]."""

    low: Percent
    high: Percent

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise ValueError("low above high")


CI = Union[Interval, None, UnsetType]  # None: an empty bucket; UNSET: a file without intervals
N = Union[Count, UnsetType]  # KEY_n: the steps or tasks behind KEY and KEY_ci95; UNSET: a file without counts


class _Schema(Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class StaticPath(_Schema):
    tasks: Count
    steps: Count
    step_accuracy: Percent | None
    task_success: Percent | None
    step_accuracy_ci95: CI = UNSET
    task_success_ci95: CI = UNSET
    step_accuracy_n: N = UNSET
    task_success_n: N = UNSET


class Static(_Schema):
    edge: Percent | None
    path: Percent | None
    overall: Percent | None
    task_success: Percent | None
    per_path: dict[PathLength, StaticPath]
    edge_ci95: CI = UNSET
    path_ci95: CI = UNSET
    overall_ci95: CI = UNSET
    task_success_ci95: CI = UNSET
    edge_n: N = UNSET
    path_n: N = UNSET
    overall_n: N = UNSET
    task_success_n: N = UNSET
    tasks: Count | UnsetType = UNSET  # navigation tasks and steps scored
    steps: Count | UnsetType = UNSET
    unparseable: Count | UnsetType = UNSET
    captioning: Percent | None | UnsetType = UNSET  # icon rows, when the file has them
    captioning_ci95: CI = UNSET
    captioning_samples: Count | UnsetType = UNSET
    captioning_n: N = UNSET
    grounding: Percent | None | UnsetType = UNSET
    grounding_ci95: CI = UNSET
    grounding_samples: Count | UnsetType = UNSET
    grounding_n: N = UNSET


class PassPath(_Schema):
    tasks: Count
    pass1: Percent | None = field(name="pass@1")
    passk: Percent | None = field(name="pass@k")
    pass1_ci95: CI = field(name="pass@1_ci95", default=UNSET)
    passk_ci95: CI = field(name="pass@k_ci95", default=UNSET)
    pass1_n: N = field(name="pass@1_n", default=UNSET)
    passk_n: N = field(name="pass@k_n", default=UNSET)


class PassBlock(_Schema):
    pass1: Percent | None = field(name="pass@1")
    passk: Percent | None = field(name="pass@k")
    per_path: dict[PathLength, PassPath]
    pass1_ci95: CI = field(name="pass@1_ci95", default=UNSET)
    passk_ci95: CI = field(name="pass@k_ci95", default=UNSET)
    pass1_n: N = field(name="pass@1_n", default=UNSET)
    passk_n: N = field(name="pass@k_n", default=UNSET)


class Interactive(_Schema):
    k: Positive
    strict: PassBlock
    lenient: PassBlock
    tasks: Count | UnsetType = UNSET
    episodes: Count | UnsetType = UNSET
    max_steps: Positive | UnsetType = UNSET
    steps: Count | UnsetType = UNSET
    misses: Count | UnsetType = UNSET
    invalid: Count | UnsetType = UNSET
    completed: Count | UnsetType = UNSET
    mean_steps: Number | None | UnsetType = UNSET


STATIC_KINDS = ("static_id", "static_ood", "static_ood_image", "static_ood_name",
                "static_ood_position", "static_ood_noise")
SCHEMAS: dict[str, type[Struct]] = {**{kind: Static for kind in STATIC_KINDS}, "interactive": Interactive}

TRAIN_DIR = "train"  # metrics/train/ holds training summaries, not a model
LEARNING_DIR = "learning"  # metrics/learning/ holds the learning checks (gelab.report.learning), not a model


def validate(data: Any, schema: type[Struct], file: str, *, partial: bool = False) -> None:
    """Raise :class:`MetricsError` unless ``data`` fits ``schema``.

    ``partial`` makes every key optional (the paper reports a subset); unknown keys stay errors.
    """
    try:
        msgspec.convert(data, _partial(schema) if partial else schema, strict=True)
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
    if isinstance(tp, type) and issubclass(tp, _Schema):
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
    if isinstance(tp, type) and issubclass(tp, _Schema):
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


def lookup(data: Mapping[str, Any] | None, *keys: str) -> float | None:
    """``data[k1][k2]...`` as a float, or None when any level is absent."""
    node: Any = data
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return float(node) if isinstance(node, (int, float)) and not isinstance(node, bool) else None


def interval(data: Mapping[str, Any] | None, *keys: str) -> tuple[float, float] | None:
    """The 95 % interval stored beside ``data[k1]...[kn]`` (key ``kn_ci95``), or None."""
    node: Any = data
    for key in keys[:-1]:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    ci = node.get(keys[-1] + "_ci95") if isinstance(node, Mapping) else None
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(v, (int, float)) for v in ci):
        return float(ci[0]), float(ci[1])
    return None


def count(data: Mapping[str, Any] | None, *keys: str) -> int | None:
    """The steps or tasks stored beside ``data[k1]...[kn]`` (key ``kn_n``), or None."""
    n = lookup(data, *keys[:-1], keys[-1] + "_n")
    return None if n is None else int(n)
