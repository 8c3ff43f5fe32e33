"""Well-formed metrics files for report tests, built from a few numbers (never the paper's)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LENGTHS = range(1, 8)


def with_intervals(block: dict[str, Any], half: float | None, counts: dict[str, int] | None = None) -> dict[str, Any]:
    """``block`` with ``KEY_ci95`` = value ± ``half`` (clipped to 0..100) beside each percentage, and
    ``KEY_n`` = ``counts[KEY]`` when given."""
    out = dict(block)
    for key, value in block.items():
        if isinstance(value, float) and half is not None:
            out[key + "_ci95"] = [max(0.0, value - half), min(100.0, value + half)]
    for key, n in (counts or {}).items():
        out[key + "_n"] = n
    return out


def static_metrics(edge: float, path: float, overall: float, task_success: float,
                   ci: float | None = None, counts: bool = False) -> dict[str, Any]:
    """The layout `gelab eval static` writes, optional keys included (intervals of half-width ``ci``;
    ``KEY_n`` beside each percentage with ``counts``)."""
    top = with_intervals({"edge": edge, "path": path, "overall": overall, "task_success": task_success}, ci,
                         {"edge": 70, "path": 1820, "overall": 1960, "task_success": 70} if counts else None)
    return {**top, "steps": 280 * len(LENGTHS), "tasks": 70, "unparseable": 3, "grounding": None,
            "grounding_samples": 0,
            "per_path": {str(n): with_intervals({"tasks": 10 * n, "steps": 10 * n * (n + 1),
                                                 "step_accuracy": overall, "task_success": task_success / n}, ci,
                                                {"step_accuracy": 10 * n * (n + 1), "task_success": 10 * n}
                                                if counts else None)
                         for n in LENGTHS}}


def interactive_metrics(pass1: float, passk: float, k: int = 5, ci: float | None = None,
                        counts: bool = False) -> dict[str, Any]:
    def mode(scale: float) -> dict[str, Any]:
        return {**with_intervals({"pass@1": pass1 * scale, "pass@k": passk * scale}, ci,
                                 {"pass@1": 84, "pass@k": 84} if counts else None),
                "per_path": {str(n): with_intervals({"tasks": 3 * n, "pass@1": pass1 * scale / n,
                                                     "pass@k": passk * scale / n}, ci,
                                                    {"pass@1": 3 * n, "pass@k": 3 * n} if counts else None)
                             for n in LENGTHS}}
    return {"k": k, "tasks": 84, "episodes": 84 * k, "max_steps": 12, "steps": 900, "misses": 40, "invalid": 2,
            "completed": 300, "mean_steps": 900 / (84 * k), "strict": mode(0.9), "lenient": mode(1.0)}


def write(root: Path, model: str, kind: str, data: Any) -> Path:
    path = root / model / f"{kind}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path
