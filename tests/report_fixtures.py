"""Well-formed metrics files for report tests, built from a few numbers (never the paper's)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LENGTHS = range(1, 8)


def static_metrics(edge: float, path: float, overall: float, task_success: float) -> dict[str, Any]:
    return {"edge": edge, "path": path, "overall": overall, "task_success": task_success,
            "per_path": {str(n): {"tasks": 10 * n, "steps": 10 * n * (n + 1),
                                  "step_accuracy": overall, "task_success": task_success / n}
                         for n in LENGTHS}}


def interactive_metrics(pass1: float, passk: float, k: int = 5) -> dict[str, Any]:
    def mode(scale: float) -> dict[str, Any]:
        return {"pass@1": pass1 * scale, "pass@k": passk * scale,
                "per_path": {str(n): {"tasks": 3 * n, "pass@1": pass1 * scale / n, "pass@k": passk * scale / n}
                             for n in LENGTHS}}
    return {"k": k, "strict": mode(0.9), "lenient": mode(1.0)}


def write(root: Path, model: str, kind: str, data: Any) -> Path:
    path = root / model / f"{kind}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path
