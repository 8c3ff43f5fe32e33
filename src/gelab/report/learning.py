"""The learning checks in the report: ``metrics/learning/<stage>.json`` (``gelab check learning``).

One row per training stage: what was measured, before, after, the threshold and whether the check
passed. A stage whose file is absent is shown as not run; a file that is present must be whole and
hold ``before``, ``after``, ``threshold`` and ``passed``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from gelab.errors import quote
from gelab.report.collect import TRAIN_STAGES, read_json
from gelab.report.schema import LEARNING_DIR, MetricsError

DISPLAY = {"sft": "SFT", "st_rl": "ST-RL", "mt_rl": "MT-RL"}
REQUIRED = ("measure", "before", "after", "threshold", "passed")


def read_learning(metrics_dir: str | Path) -> dict[str, dict[str, Any]]:
    """stage -> check result, for the stages whose file exists; a broken file raises naming it."""
    found = {}
    for stage in TRAIN_STAGES:
        path = Path(metrics_dir) / LEARNING_DIR / f"{stage}.json"
        if not path.is_file():
            continue
        data = read_json(path)
        if not isinstance(data, dict):
            raise MetricsError(f"{path}: expected a JSON object, got {type(data).__name__}")
        missing = [k for k in REQUIRED if k not in data]
        if missing:
            raise MetricsError(f"{path}: missing key {quote(missing[0])}")
        for key in ("before", "after", "threshold"):
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise MetricsError(f"{path}: {key}: not a finite number ({quote(value)})")
        if not isinstance(data["passed"], bool):
            raise MetricsError(f"{path}: passed: not true or false ({quote(data['passed'])})")
        found[stage] = data
    return found


def _rule(result: dict[str, Any]) -> str:
    return str(result.get("rule", "")).replace("|", "/")


def learning_section(metrics_dir: str | Path) -> str:
    """The Markdown section of the learning checks; empty when none has run."""
    results = read_learning(metrics_dir)
    if not results:
        return ""
    lines = ["| Stage | Measure | Before | After | Threshold | Rule | Passed | Time (s) |",
             "|---|---|---:|---:|---:|---|---|---:|"]
    for stage in TRAIN_STAGES:
        r = results.get(stage)
        if r is None:
            lines.append(f"| {DISPLAY[stage]} | not run | | | | | | |")
            continue
        wall = r.get("wall_time_s")
        lines.append(f"| {DISPLAY[stage]} | {r['measure']} | {r['before']:.2f} | {r['after']:.2f} | "
                     f"{r['threshold']:g} | {_rule(r)} | {'yes' if r['passed'] else '**no**'} | "
                     f"{'' if wall is None else f'{wall:.0f}'} |")
    return ("\n## Learning checks\n\n"
            "Each training stage on a small fixed problem, through the pipeline's own training code "
            "(`make learning-checks`, `gelab check learning`; `metrics/learning/`): does each stage move "
            "its own objective? A check that fails says the stage did not, on that problem, in that budget "
            "(docs/training.md §Learning checks). These are not the paper's numbers.\n\n"
            + "\n".join(lines) + "\n")
