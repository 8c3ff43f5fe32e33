"""The metrics files' layout, once: ``msgspec`` Structs that evaluation builds and writes and that the
report reads back (:mod:`gelab.report.collect`) and checks the paper targets against.

A metrics file is ``metrics/<model>/<kind>.json``; ``kind`` selects its Struct in :data:`SCHEMAS`.
Percentages are finite numbers in 0..100 (``None`` for an empty bucket), counts are non-negative
integers. Each percentage ``KEY`` has its 95 % interval beside it, ``KEY_ci95`` = [low, high]
(:mod:`gelab.eval.intervals`), and the number of steps or tasks it is over, ``KEY_n``; files written
before intervals (or counts) existed have none, so those fields may be absent (``UNSET``). Fields are
declared in the order they are written. To add a number to a metrics file, add its field here: the
evaluation cannot write a key this module does not declare, and the report reads what it declares.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any, Union

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType, field

Percent = Annotated[float, Meta(ge=0, le=100, description="a percentage in 0..100")]
Count = Annotated[int, Meta(ge=0, description="an integer count >= 0")]
Positive = Annotated[int, Meta(ge=1, description="an integer >= 1")]
Number = Annotated[float, Meta(ge=0, le=sys.float_info.max, description="a finite number >= 0")]
PathLength = Annotated[str, Meta(pattern=r"^[1-9][0-9]*$")]  # "1", "2", ...


class Interval(Struct, array_like=True, forbid_unknown_fields=True):
    """A 95 % interval in percent, written as the JSON array [low, high]."""

    low: Percent
    high: Percent

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise ValueError("low above high")


CI = Union[Interval, None, UnsetType]  # None: an empty bucket; UNSET: a file without intervals
N = Union[Count, UnsetType]  # KEY_n: the steps or tasks behind KEY and KEY_ci95; UNSET: a file without counts


class Metrics(Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every metrics Struct: unknown keys are errors. Subclasses are ``kw_only`` too (msgspec does
    not inherit it), so fields are named on construction and may come in the order they are written."""


class StaticPath(Metrics, kw_only=True):
    tasks: Count
    steps: Count
    step_accuracy: Percent | None
    step_accuracy_ci95: CI = UNSET
    step_accuracy_n: N = UNSET
    task_success: Percent | None
    task_success_ci95: CI = UNSET
    task_success_n: N = UNSET


class Static(Metrics, kw_only=True):
    edge: Percent | None
    edge_ci95: CI = UNSET
    edge_n: N = UNSET
    path: Percent | None
    path_ci95: CI = UNSET
    path_n: N = UNSET
    overall: Percent | None
    overall_ci95: CI = UNSET
    overall_n: N = UNSET
    task_success: Percent | None
    task_success_ci95: CI = UNSET
    task_success_n: N = UNSET
    steps: Count | UnsetType = UNSET  # navigation steps and tasks scored
    tasks: Count | UnsetType = UNSET
    unparseable: Count | UnsetType = UNSET
    per_path: dict[PathLength, StaticPath]
    captioning: Percent | None | UnsetType = UNSET  # icon rows, when the file has them
    captioning_ci95: CI = UNSET
    captioning_n: N = UNSET
    captioning_samples: Count | UnsetType = UNSET
    grounding: Percent | None | UnsetType = UNSET
    grounding_ci95: CI = UNSET
    grounding_n: N = UNSET
    grounding_samples: Count | UnsetType = UNSET


class PassRates(Metrics, kw_only=True):
    """Pass@1 and Pass@k of one bucket of tasks."""

    pass1: Percent | None = field(name="pass@1")
    passk: Percent | None = field(name="pass@k")
    pass1_ci95: CI = field(name="pass@1_ci95", default=UNSET)
    passk_ci95: CI = field(name="pass@k_ci95", default=UNSET)
    pass1_n: N = field(name="pass@1_n", default=UNSET)
    passk_n: N = field(name="pass@k_n", default=UNSET)


class PassPath(PassRates, kw_only=True):
    tasks: Count


class PassBlock(PassRates, kw_only=True):
    per_path: dict[PathLength, PassPath]


class Interactive(Metrics, kw_only=True):
    k: Positive
    tasks: Count | UnsetType = UNSET
    episodes: Count | UnsetType = UNSET
    max_steps: Positive | UnsetType = UNSET
    strict: PassBlock
    lenient: PassBlock
    steps: Count | UnsetType = UNSET
    misses: Count | UnsetType = UNSET
    invalid: Count | UnsetType = UNSET
    completed: Count | UnsetType = UNSET
    mean_steps: Number | None | UnsetType = UNSET


STATIC_KINDS = ("static_id", "static_ood", "static_ood_image", "static_ood_name",
                "static_ood_position", "static_ood_noise")
SCHEMAS: dict[str, type[Metrics]] = {**{kind: Static for kind in STATIC_KINDS}, "interactive": Interactive}


def interval(ci: list[float] | None) -> Interval | None:
    """An interval function's [low, high] (or None for an empty bucket) as an :class:`Interval`."""
    return None if ci is None else Interval(*ci)


def to_json(metrics: Struct) -> dict[str, Any]:
    """The metrics file's JSON object: fields in declaration order, absent (``UNSET``) fields left out."""
    return msgspec.to_builtins(metrics)
