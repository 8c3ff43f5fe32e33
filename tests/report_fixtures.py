"""Well-formed metrics files for report tests, built from a few numbers (never the paper's)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LENGTHS = range(1, 8)


def static_metrics(edge: float, path: float, overall: float, task_success: float) -> dict[str, Any]:
    """The layout `gelab eval static` writes, optional keys included."""
    return {"edge": edge, "path": path, "overall": overall, "task_success": task_success,
            "steps": 280 * len(LENGTHS), "tasks": 70, "unparseable": 3, "grounding": None, "grounding_samples": 0,
            "per_path": {str(n): {"tasks": 10 * n, "steps": 10 * n * (n + 1),
                                  "step_accuracy": overall, "task_success": task_success / n}
                         for n in LENGTHS}}


def interactive_metrics(pass1: float, passk: float, k: int = 5) -> dict[str, Any]:
    def mode(scale: float) -> dict[str, Any]:
        return {"pass@1": pass1 * scale, "pass@k": passk * scale,
                "per_path": {str(n): {"tasks": 3 * n, "pass@1": pass1 * scale / n, "pass@k": passk * scale / n}
                             for n in LENGTHS}}
    return {"k": k, "tasks": 84, "episodes": 84 * k, "max_steps": 12, "steps": 900, "misses": 40, "invalid": 2,
            "completed": 300, "mean_steps": 900 / (84 * k), "strict": mode(0.9), "lenient": mode(1.0)}


def write(root: Path, model: str, kind: str, data: Any) -> Path:
    path = root / model / f"{kind}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path
