"""``gelab report build``: metrics tree + paper targets -> the reports folder.

Writes ``paper_comparison.md`` (Tables 1, 2, 3, 11, the training summaries and the learning checks),
``pass_at_k_by_path.png`` and ``training_curves.png``. Any bad input raises before anything is
written; the three files are staged beside the folder and each moved into it whole. Other entries of
the folder (the viewer's ``site/`` and ``cases/``, written by ``gelab view``) are left alone, and the
case-study PNGs found in ``cases/`` are linked from the Markdown.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from gelab.report.collect import TRAIN_STAGES, collect
from gelab.report.curves import Curve, default_curve_path, read_curve
from gelab.report.learning import learning_section
from gelab.report.plots import pass_at_k_plot, training_curves_plot
from gelab.report.tables import report_markdown
from gelab.report.targets import load_targets

REPORT_MD = "paper_comparison.md"
PASS_PNG = "pass_at_k_by_path.png"
CURVES_PNG = "training_curves.png"
CASES_DIR = "cases"  # case-study PNGs of `gelab view --cases` (dvc stage `view`)


def case_studies_section(out: Path) -> str:
    """A Markdown section linking ``out/cases/*.png`` in number order; empty when there are none."""
    pngs = sorted((out / CASES_DIR).glob("*.png"), key=lambda p: (len(p.stem), p.stem))
    if not pngs:
        return ""
    links = "\n".join(f"![case study {i}]({CASES_DIR}/{p.name})" for i, p in enumerate(pngs, start=1))
    return ("\n## Case studies\n\nOne task each: the optimal path, then one episode per model, every screenshot "
            "with the click drawn on it (`gelab view --cases`; every episode is in `site/index.html`).\n\n"
            f"{links}\n")


def build_report(metrics_dir: str | Path, targets_path: str | Path, out: str | Path,
                 curve_paths: dict[str, Path] | None = None) -> Path:
    """Check every input, then write the three report files into ``out``; returns the Markdown file."""
    targets = load_targets(targets_path)
    run = collect(metrics_dir)
    paths = {stage: default_curve_path(metrics_dir, stage) for stage in TRAIN_STAGES}
    paths.update(curve_paths or {})
    curves: dict[str, Curve | None] = {stage: read_curve(p) if p.is_file() else None for stage, p in paths.items()}
    out = Path(out)
    text = report_markdown(run, targets, targets_path=str(targets_path), metrics_dir=str(metrics_dir).rstrip("/"),
                           pass_png=PASS_PNG, curves_png=CURVES_PNG)
    text += learning_section(metrics_dir) + case_studies_section(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as tmp:
        staged = Path(tmp)
        (staged / REPORT_MD).write_text(text, encoding="utf-8")
        pass_at_k_plot(run, targets, staged / PASS_PNG)
        training_curves_plot(curves, staged / CURVES_PNG)
        out.mkdir(exist_ok=True)
        for name in (REPORT_MD, PASS_PNG, CURVES_PNG):
            os.replace(staged / name, out / name)
    return out / REPORT_MD
