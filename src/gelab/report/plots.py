"""PNG plots: Pass@1 / Pass@5 by path length (ours against the paper) and the training curves.

Ours is drawn with its 95 % intervals as a shaded band where the metrics file has them.

A model or stage without data is drawn as nothing and labelled "missing", never as zeros.
"""

from __future__ import annotations

import math
from pathlib import Path

from gelab.report.collect import TRAIN_STAGES, RunMetrics
from gelab.report.curves import Curve
from gelab.report.schema import at, number
from gelab.report.tables import display, models_for
from gelab.report.targets import Targets

CURVE_COLUMNS = ("loss", "reward")  # one panel each per training stage
_PNG_METADATA = {"Software": None}  # no version stamp: same inputs, same bytes


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pass_at_k_plot(run: RunMetrics, targets: Targets, out: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    models = models_for(("interactive",), run, targets)
    for i, model in enumerate(models):
        color = f"C{i % 10}"
        for ax, key, title in ((axes[0], "pass@1", "Pass@1"), (axes[1], "pass@k", "Pass@5")):
            for source, data, style in (("ours", run.get(model, "interactive"), "-o"),
                                        ("paper", targets.get(model, {}).get("interactive"), "--x")):
                per_path = at(data, "strict", "per_path")
                numbers = {int(n): number(per_path, n, key) for n in per_path} if isinstance(per_path, dict) else {}
                xs = sorted(n for n, v in numbers.items() if v is not None)
                if not xs and source == "paper":
                    continue  # the paper gives no per-length numbers for this model
                ys = [numbers[n].value for n in xs]  # type: ignore[union-attr]
                label = f"{display(model)} {source}" + ("" if xs else " (missing)")
                ax.plot(xs, ys, style, color=color, label=label, alpha=1.0 if source == "ours" else 0.6)
                bands = [numbers[n].ci for n in xs]  # type: ignore[union-attr]
                if xs and all(b is not None for b in bands):  # ours' 95 % intervals, as a shaded band
                    ax.fill_between(xs, [b[0] for b in bands], [b[1] for b in bands],  # type: ignore[index]
                                    color=color, alpha=0.15, linewidth=0)
            ax.set_title(f"{title} by shortest-path length (strict)")
            ax.set_xlabel("path length (clicks)")
            ax.set_ylim(0, 102)
            ax.grid(alpha=0.3)
    axes[0].set_ylabel("success (%)")
    if models:
        axes[1].legend(fontsize=7, ncol=2, loc="upper right")
    fig.tight_layout()
    fig.savefig(out, dpi=100, metadata=_PNG_METADATA)
    plt.close(fig)


def training_curves_plot(curves: dict[str, Curve | None], out: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(len(TRAIN_STAGES), len(CURVE_COLUMNS), figsize=(10, 2.6 * len(TRAIN_STAGES)),
                             squeeze=False)
    for row, stage in enumerate(TRAIN_STAGES):
        curve = curves.get(stage)
        for col, column in enumerate(CURVE_COLUMNS):
            ax = axes[row][col]
            ax.set_title(f"{display(stage)}: {column}")
            ax.set_xlabel("step")
            if curve is None:
                why = "missing (stage has not run)"
            elif column not in curve or all(math.isnan(v) for v in curve[column]):
                why = f"missing (no '{column}' logged)"
            else:
                why = ""
            if why:
                ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, color="grey")
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            ax.plot(curve["step"], curve[column], "-", color=f"C{col}")
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100, metadata=_PNG_METADATA)
    plt.close(fig)
