"""What each metrics file may contain, checked key by key.

A metrics file is ``metrics/<model>/<kind>.json``; ``kind`` selects its schema in :data:`SCHEMAS`.
Every required key must be present, no other key may appear, percentages are finite numbers in
0..100 (or ``null`` for an empty bucket, shown as "—"), counts are non-negative integers. Strings,
booleans, NaN and infinities are errors. A problem raises :class:`MetricsError` whose message names
the file and the dotted key. To add a key that an evaluation starts writing, add it here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from gelab.errors import InputError

PERCENT = "percent"  # finite number in 0..100, or null (an empty bucket: no samples)
NUMBER = "number"  # finite number >= 0, or null
COUNT = "count"  # integer >= 0
POSITIVE = "positive"  # integer >= 1
_NULLABLE = (PERCENT, NUMBER)

_PATH_LENGTH = re.compile(r"[1-9][0-9]*")


class MetricsError(InputError):
    """A bad metrics or targets file; the message names the file and the dotted key."""


@dataclass(frozen=True)
class Obj:
    """A JSON object with required and optional keys; any other key is an error."""

    required: Mapping[str, "Spec"]
    optional: Mapping[str, "Spec"] = field(default_factory=dict)


@dataclass(frozen=True)
class ByPath:
    """A JSON object keyed by path length ("1", "2", ...), each value an ``entry``."""

    entry: Obj


Spec = Union[str, Obj, ByPath]

_STATIC_PATH_ENTRY = Obj({"tasks": COUNT, "steps": COUNT, "step_accuracy": PERCENT, "task_success": PERCENT})
STATIC = Obj(
    required={"edge": PERCENT, "path": PERCENT, "overall": PERCENT, "task_success": PERCENT,
              "per_path": ByPath(_STATIC_PATH_ENTRY)},
    optional={"tasks": COUNT, "steps": COUNT, "unparseable": COUNT,  # navigation steps and tasks scored
              "captioning": PERCENT, "captioning_samples": COUNT,   # icon rows, when the file has them
              "grounding": PERCENT, "grounding_samples": COUNT},
)
_INTERACTIVE_MODE = Obj({"pass@1": PERCENT, "pass@k": PERCENT,
                         "per_path": ByPath(Obj({"tasks": COUNT, "pass@1": PERCENT, "pass@k": PERCENT}))})
INTERACTIVE = Obj(
    required={"k": POSITIVE, "strict": _INTERACTIVE_MODE, "lenient": _INTERACTIVE_MODE},
    optional={"tasks": COUNT, "episodes": COUNT, "max_steps": POSITIVE, "steps": COUNT, "misses": COUNT,
              "invalid": COUNT, "completed": COUNT, "mean_steps": NUMBER},
)

STATIC_KINDS = ("static_id", "static_ood", "static_ood_image", "static_ood_name",
                "static_ood_position", "static_ood_noise")
SCHEMAS: dict[str, Obj] = {**{kind: STATIC for kind in STATIC_KINDS}, "interactive": INTERACTIVE}

TRAIN_DIR = "train"  # metrics/train/ holds training summaries, not a model


def validate(data: Any, spec: Spec, file: str, *, partial: bool = False, key: str = "") -> None:
    """Raise :class:`MetricsError` unless ``data`` fits ``spec``.

    ``partial`` makes every key optional (the paper reports a subset); unknown keys stay errors.
    """
    where = f"{file}: {key}" if key else file
    if isinstance(spec, str):
        _check_leaf(data, spec, where)
    elif isinstance(spec, ByPath):
        if not isinstance(data, dict):
            raise MetricsError(f"{where}: expected an object keyed by path length, got {data!r}")
        for length, entry in data.items():
            if not _PATH_LENGTH.fullmatch(length):
                raise MetricsError(f"{where}.{length}: unknown key (path lengths are 1, 2, ...)")
            validate(entry, spec.entry, file, partial=partial, key=f"{key}.{length}")
    else:
        if not isinstance(data, dict):
            raise MetricsError(f"{where}: expected an object, got {data!r}")
        known = {**spec.required, **spec.optional}
        prefix = f"{key}." if key else ""
        for name in data:
            if name not in known:
                raise MetricsError(f"{file}: {prefix}{name}: unknown key (expected: {', '.join(known)})")
        if not partial:
            for name in spec.required:
                if name not in data:
                    raise MetricsError(f"{file}: {prefix}{name}: missing key")
        for name, value in data.items():
            validate(value, known[name], file, partial=partial, key=prefix + name)


def _check_leaf(value: Any, kind: str, where: str) -> None:
    if value is None and kind in _NULLABLE:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MetricsError(f"{where}: not a number ({value!r})")
    if not math.isfinite(value):
        raise MetricsError(f"{where}: not a finite number ({value!r})")
    if kind == PERCENT and not 0 <= value <= 100:
        raise MetricsError(f"{where}: {value!r} is not a percentage in 0..100")
    if kind in (COUNT, POSITIVE) and not isinstance(value, int):
        raise MetricsError(f"{where}: {value!r} is not an integer count")
    if kind in (COUNT, NUMBER) and value < 0 or kind == POSITIVE and value < 1:
        raise MetricsError(f"{where}: {value!r} is out of range")


def lookup(data: Mapping[str, Any] | None, *keys: str) -> float | None:
    """``data[k1][k2]...`` as a float, or None when any level is absent."""
    node: Any = data
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return float(node) if isinstance(node, (int, float)) and not isinstance(node, bool) else None
