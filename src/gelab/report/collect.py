"""Read the metrics tree: ``metrics/<model>/<kind>.json`` and ``metrics/train/<stage>.json``.

A file that is absent means its stage has not run: it is left out and reported as missing. A file
that is present must be whole and fit its schema; an empty or unparseable file is what a stage that
failed mid-write leaves behind, so it is an error naming the file, like a missing, extra or
non-numeric key.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gelab.errors import quote
from gelab.eval.schema import SCHEMAS, Metrics
from gelab.report.schema import LEARNING_DIR, TRAIN_DIR, MetricsError, validate

TRAIN_STAGES = ("sft", "st_rl", "mt_rl")


@dataclass
class RunMetrics:
    """What this run has produced so far."""

    models: dict[str, dict[str, Metrics]] = field(default_factory=dict)  # model -> kind -> its Struct
    training: dict[str, dict[str, Any]] = field(default_factory=dict)  # stage -> flat summary
    ignored: list[str] = field(default_factory=list)  # JSON files that match no known kind

    def get(self, model: str, kind: str) -> Metrics | None:
        return self.models.get(model, {}).get(kind)


def read_json(path: Path) -> Any:
    """The JSON value of ``path``; an empty or broken file is a :class:`MetricsError`."""
    from gelab.io import read_text

    text = read_text(path, MetricsError)
    if not text.strip():
        raise MetricsError(f"{path}: empty file (did the stage that writes it fail?)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise MetricsError(f"{path}: not valid JSON at line {exc.lineno} ({exc.msg}); "
                           "did the stage that writes it fail?") from None


def collect(metrics_dir: str | Path) -> RunMetrics:
    """Every metrics file under ``metrics_dir``, checked; a missing folder is an empty run."""
    root = Path(metrics_dir)
    run = RunMetrics()
    if not root.is_dir():
        return run
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in (TRAIN_DIR, LEARNING_DIR)):
        for path in sorted(model_dir.glob("*.json")):
            schema = SCHEMAS.get(path.stem)
            if schema is None:
                run.ignored.append(str(path))
                continue
            run.models.setdefault(model_dir.name, {})[path.stem] = validate(read_json(path), schema, str(path))
    train_dir = root / TRAIN_DIR
    for stage in TRAIN_STAGES:
        path = train_dir / f"{stage}.json"
        if path.is_file():
            run.training[stage] = training_summary(path)
    return run


def training_summary(path: Path) -> dict[str, Any]:
    """A training summary flattened to dotted keys: finite numbers, strings, booleans or null."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise MetricsError(f"{path}: expected a JSON object, got {type(data).__name__}")
    flat: dict[str, Any] = {}

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, f"{name}.")
            elif value is None or isinstance(value, (str, bool)):
                flat[name] = value
            elif isinstance(value, (int, float)) and math.isfinite(value):
                flat[name] = value
            else:
                raise MetricsError(f"{path}: {name}: not a finite number, a string or null ({quote(value)})")

    walk(data, "")
    return flat
