"""Training-curve files: one row per logged step.

Format (CSV with a header row, or JSON Lines with one object per row, chosen by the extension):
a ``step`` column (integer, required) and numeric columns such as ``loss`` and ``reward``. An empty
CSV cell or a JSON ``null`` is a step where that quantity was not logged; it is drawn as a gap,
never as zero. Default location: ``metrics/train/<stage>_steps.csv`` (written by ``gelab train``).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from gelab.errors import quote
from gelab.io import read_jsonl
from gelab.report.schema import MetricsError

Curve = dict[str, list[float]]  # column -> values, aligned with curve["step"]


def default_curve_path(metrics_dir: str | Path, stage: str) -> Path:
    return Path(metrics_dir) / "train" / f"{stage}_steps.csv"


def _number(value: object, where: str) -> float:
    if value is None or value == "":
        return math.nan
    if isinstance(value, bool):
        raise MetricsError(f"{where}: not a number ({quote(value)})")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise MetricsError(f"{where}: not a number ({quote(value)})") from None
    if math.isinf(number) or (math.isnan(number) and not isinstance(value, str)):
        raise MetricsError(f"{where}: not a finite number ({quote(value)})")
    return number


def read_curve(path: str | Path) -> Curve:
    path = Path(path)
    if path.suffix == ".jsonl":
        try:
            rows: list[dict[str, object]] = read_jsonl(path)
        except ValueError as exc:
            raise MetricsError(str(exc)) from None
        start = 1
    else:
        import io

        from gelab.io import read_text

        rows = list(csv.DictReader(io.StringIO(read_text(path, MetricsError), newline="")))
        start = 2  # the header is line 1
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    if rows and "step" not in columns:
        raise MetricsError(f"{path}: step: missing column")
    curve: Curve = {c: [] for c in columns}
    for i, row in enumerate(rows, start=start):
        for c in columns:
            value = _number(row.get(c), f"{path}: line {i}: {c}")
            if c == "step" and (math.isnan(value) or value != int(value)):
                raise MetricsError(f"{path}: line {i}: step: not an integer ({quote(row.get(c))})")
            curve[c].append(value)
    return curve
