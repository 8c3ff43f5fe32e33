"""``gelab report build``: metrics tree + paper targets -> the reports folder.

Writes ``paper_comparison.md`` (Tables 1, 2, 3, 11 and the training summaries),
``pass_at_k_by_path.png`` and ``training_curves.png``. The folder is replaced whole, or not at all:
any bad input raises before anything is written.
"""

from __future__ import annotations

from pathlib import Path

from gelab.io import atomic_directory
from gelab.report.collect import TRAIN_STAGES, collect
from gelab.report.curves import Curve, default_curve_path, read_curve
from gelab.report.plots import pass_at_k_plot, training_curves_plot
from gelab.report.tables import report_markdown
from gelab.report.targets import load_targets

REPORT_MD = "paper_comparison.md"
PASS_PNG = "pass_at_k_by_path.png"
CURVES_PNG = "training_curves.png"


def build_report(metrics_dir: str | Path, targets_path: str | Path, out: str | Path,
                 curve_paths: dict[str, Path] | None = None) -> Path:
    """Check every input, then write the reports folder; returns the Markdown file."""
    targets = load_targets(targets_path)
    run = collect(metrics_dir)
    paths = {stage: default_curve_path(metrics_dir, stage) for stage in TRAIN_STAGES}
    paths.update(curve_paths or {})
    curves: dict[str, Curve | None] = {stage: read_curve(p) if p.is_file() else None for stage, p in paths.items()}
    text = report_markdown(run, targets, targets_path=str(targets_path), metrics_dir=str(metrics_dir).rstrip("/"),
                           pass_png=PASS_PNG, curves_png=CURVES_PNG)
    with atomic_directory(out) as tmp:
        (tmp / REPORT_MD).write_text(text, encoding="utf-8")
        pass_at_k_plot(run, targets, tmp / PASS_PNG)
        training_curves_plot(curves, tmp / CURVES_PNG)
    return Path(out) / REPORT_MD
