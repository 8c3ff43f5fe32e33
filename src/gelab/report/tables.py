"""The paper's Tables 1, 2, 3 and 11 as Markdown, each number shown as ours / paper / Δ.

"missing" means the stage that writes ours has not run (no metrics file); "—" means there is no
number to show (the paper does not report it, or one side of a Δ is absent). Δ = ours − paper in
percentage points. Models: the paper's (targets file order) and then any extra model that has run.

Ours carries its 95 % interval and the number of tasks (steps, for step accuracy) it is over when the
metrics file has them ("12.50 [8.1, 17.9] n=14"). A Δ whose paper
number lies inside our interval, or a stage-to-stage change whose two intervals overlap, is marked
:data:`WITHIN` ("≈"): the difference is within the evaluation's sampling noise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from msgspec import Struct

from gelab.report.collect import TRAIN_STAGES, RunMetrics
from gelab.report.schema import Number, at, number
from gelab.report.targets import Targets

MISSING = "missing"
NONE = "—"
WITHIN = "≈"  # the difference lies within the 95 % intervals
DISPLAY = {"sft": "SFT", "st_rl": "ST-RL", "mt_rl": "MT-RL", "gpt-4o": "GPT-4o"}
VARIANTS = (("static_ood_image", "Env-Image"), ("static_ood_name", "Env-Name"),
            ("static_ood_position", "Env-Position"), ("static_ood_noise", "Env-Noise"))


def display(model: str) -> str:
    return DISPLAY.get(model, model)


def fmt(number: Number | None, present: bool = True) -> str:
    """A number with its interval and count where it has them; "—" for none, "missing" when not ``present``."""
    if number is None:
        return NONE if present else MISSING
    ci, n = number.ci, number.n
    return (f"{number.value:.2f}" + ("" if ci is None else f" [{ci[0]:.1f}, {ci[1]:.1f}]")
            + ("" if n is None else f" n={n}"))


def cell(data: Struct | None, *keys: str) -> str:
    """One number of a metrics file with its interval and count, if any ("missing" when there is no file)."""
    return fmt(number(data, *keys), data is not None)


def triple(ours_file: Struct | None, paper_file: Struct | None, *keys: str) -> list[str]:
    """[ours, paper, Δ] cells for one number; Δ is marked ≈ when the paper's number is inside our interval."""
    ours, paper = number(ours_file, *keys), number(paper_file, *keys)
    if ours is None or paper is None:
        return [fmt(ours, ours_file is not None), fmt(paper and Number(paper.value)), NONE]
    within = ours.ci is not None and ours.ci[0] <= paper.value <= ours.ci[1]
    return [fmt(ours), fmt(Number(paper.value)), f"{ours.value - paper.value:+.2f}" + (f" {WITHIN}" if within else "")]


def change(before: Struct | None, after: Struct | None, *keys: str) -> str:
    """after − before for one number; ≈ when the two intervals overlap."""
    a, b = number(before, *keys), number(after, *keys)
    if a is None or b is None:
        return NONE
    overlap = a.ci is not None and b.ci is not None and a.ci[0] <= b.ci[1] and b.ci[0] <= a.ci[1]
    return f"{b.value - a.value:+.2f}" + (f" {WITHIN}" if overlap else "")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]], text_columns: int) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < text_columns else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def models_for(kinds: Sequence[str], run: RunMetrics, targets: Targets) -> list[str]:
    """Models with a paper number or a metrics file for any of ``kinds``: paper order, then extras."""
    order = list(targets) + sorted(m for m in run.models if m not in targets)
    return [m for m in order
            if any(k in targets.get(m, {}) or run.get(m, k) is not None for k in kinds)]


def _paper(targets: Targets, model: str, kind: str) -> Struct | None:
    return targets.get(model, {}).get(kind)


def _lengths(*files: Struct | None, mode: str | None = None) -> list[str]:
    keys: set[str] = set()
    for f in files:
        per_path = at(f, mode, "per_path") if mode else at(f, "per_path")
        keys |= set(per_path) if isinstance(per_path, dict) else set()
    return sorted(keys, key=int)


def table1(run: RunMetrics, targets: Targets) -> str:
    kinds = ("static_id", "static_ood")
    rows = []
    for model in models_for(kinds, run, targets):
        for key, label in (("edge", "Edge"), ("path", "Path"), ("overall", "Overall")):
            row = [display(model), label]
            for kind in kinds:
                row += triple(run.get(model, kind), _paper(targets, model, kind), key)
            rows.append(row)
    header = ["Model", "Metric", "ID ours", "ID paper", "ID Δ", "OOD ours", "OOD paper", "OOD Δ"]
    return ("## Table 1 — Static step accuracy (%), ID and OOD\n\n"
            "Edge = first step of every task, Path = the other click steps, Overall = all steps "
            "(teacher-forced).\n\n" + markdown_table(header, rows, 2))


def table2(run: RunMetrics, targets: Targets) -> str:
    rows, notes = [], []
    for model in models_for(("interactive",), run, targets):
        ours, paper = run.get(model, "interactive"), _paper(targets, model, "interactive")
        if ours is not None and paper is not None and at(ours, "k") != at(paper, "k"):
            notes.append(f"{display(model)}: ours uses k = {at(ours, 'k')}, the paper k = {at(paper, 'k')}.")
        for length in _lengths(ours, paper, mode="strict"):
            rows.append([display(model), f"Path@{length}"]
                        + triple(ours, paper, "strict", "per_path", length, "pass@1")
                        + triple(ours, paper, "strict", "per_path", length, "pass@k"))
        rows.append([display(model), "**all**"]
                    + triple(ours, paper, "strict", "pass@1") + triple(ours, paper, "strict", "pass@k"))
    header = ["Model", "Length", "Pass@1 ours", "Pass@1 paper", "Pass@1 Δ", "Pass@5 ours", "Pass@5 paper", "Pass@5 Δ"]
    text = ("## Table 2 — Interactive success (%) by shortest-path length, test subtree\n\n"
            "Strict scoring (success = `complete` said on the target page). Pass@1 = mean success over "
            "k sampled attempts per task; Pass@5 = at least one of k = 5 attempts succeeds.\n\n"
            + markdown_table(header, rows, 2))
    lenient = [[display(m), cell(run.get(m, "interactive"), "lenient", "pass@1"),
                cell(run.get(m, "interactive"), "lenient", "pass@k")]
               for m in models_for(("interactive",), run, targets) if run.get(m, "interactive") is not None]
    if lenient:
        text += ("\nLenient scoring (ours only; the paper reports strict): \n\n"
                 + markdown_table(["Model", "Pass@1", "Pass@k"], lenient, 1))
    if notes:
        text += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    return text


def table3(run: RunMetrics, targets: Targets) -> str:
    rows = []
    for kind, label in VARIANTS:
        for model in models_for((kind,), run, targets):
            ours, paper = run.get(model, kind), _paper(targets, model, kind)
            rows.append([label, display(model)] + triple(ours, paper, "overall")
                        + triple(ours, paper, "path") + triple(ours, paper, "edge"))
    header = ["Environment", "Model", "Overall ours", "Overall paper", "Overall Δ",
              "Path ours", "Path paper", "Path Δ", "Edge ours", "Edge paper", "Edge Δ"]
    return ("## Table 3 — Static step accuracy (%) on the OOD variants (test subtree)\n\n"
            + markdown_table(header, rows, 2))


def table11(run: RunMetrics, targets: Targets) -> str:
    models = [m for m in models_for(("static_ood",), run, targets)
              if run.get(m, "static_ood") is not None
              or number(_paper(targets, m, "static_ood"), "task_success") is not None]
    files = {m: (run.get(m, "static_ood"), _paper(targets, m, "static_ood")) for m in models}
    lengths = _lengths(*(f for pair in files.values() for f in pair))
    header = ["Length"] + [f"{display(m)} {col}" for m in models for col in ("ours", "paper", "Δ")]
    rows = []
    for length in lengths:
        rows.append([f"Path@{length}"] + [c for m in models
                                          for c in triple(*files[m], "per_path", length, "task_success")])
    rows.append(["**Overall**"] + [c for m in models for c in triple(*files[m], "task_success")])
    return ("## Table 11 — Static task success (%) by path length, OOD (test subtree)\n\n"
            "A task succeeds when all of its L + 1 teacher-forced steps are right. The paper's Table 11 "
            "is the OOD split: see `paper/targets.yaml`.\n\n" + markdown_table(header, rows, 1))


STAGE_ROWS = (("Static ID overall", "static_id", ("overall",)),
              ("Static OOD overall", "static_ood", ("overall",)),
              ("Static OOD task success", "static_ood", ("task_success",)),
              *((f"{label} overall", kind, ("overall",)) for kind, label in VARIANTS),
              ("Interactive Pass@1 (strict)", "interactive", ("strict", "pass@1")),
              ("Interactive Pass@k (strict)", "interactive", ("strict", "pass@k")))


def stage_table(run: RunMetrics, targets: Targets) -> str:
    """Headline numbers of the trained stages side by side, and each stage's change from the previous one."""
    stages = list(TRAIN_STAGES)
    pairs = list(zip(stages, stages[1:]))
    header = (["Number"] + [f"{display(s)} ours" for s in stages]
              + [c for a, b in pairs for c in (f"{display(b)} − {display(a)} ours", "paper")])
    rows = []
    for label, kind, keys in STAGE_ROWS:
        files = {s: run.get(s, kind) for s in stages}
        paper = {s: _paper(targets, s, kind) for s in stages}
        rows.append([label] + [cell(files[s], *keys) for s in stages]
                    + [c for a, b in pairs for c in (change(files[a], files[b], *keys),
                                                     change(paper[a], paper[b], *keys))])
    return ("## Stage to stage\n\n"
            "What each training stage changes, ours beside the paper's. " + WITHIN + " = the two stages' 95 % "
            "intervals overlap: the change is within the evaluation's sampling noise.\n\n"
            + markdown_table(header, rows, 1))


def training_section(run: RunMetrics, curves_png: str | None) -> str:
    text = "## Training\n\n"
    for stage in TRAIN_STAGES:
        summary = run.training.get(stage)
        text += f"### {display(stage)}\n\n"
        if summary is None:
            text += f"{MISSING} (no `metrics/train/{stage}.json`: the stage has not run)\n\n"
            continue
        rows = [[key, NONE if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)]
                for key, v in summary.items()]
        text += markdown_table(["Key", "Value"], rows, 1) + "\n"
    if curves_png:
        text += f"![Training curves]({curves_png})\n"
    return text


def report_markdown(run: RunMetrics, targets: Targets, *, targets_path: str, metrics_dir: str,
                    pass_png: str | None, curves_png: str | None) -> str:
    found = [f"`{metrics_dir}/{m}/{k}.json`" for m, kinds in run.models.items() for k in kinds]
    text = ("# GE-Lab reproduction against the paper\n\n"
            f"Generated by `gelab report build` from `{metrics_dir}/` and `{targets_path}`; do not edit.\n"
            "Δ = ours − paper in percentage points. **missing** = the stage that writes this number has "
            "not run; **—** = no number (not reported by the paper, or a Δ with one side absent). "
            "Ours comes with its 95 % interval in brackets where the metrics file has one (Wilson for "
            "step and task rates, a seeded bootstrap over tasks for Pass@1 and Pass@k, never narrower "
            "than the Wilson interval over those tasks; `docs/evaluation.md`) and n = the tasks (steps, "
            "for step accuracy) it is over; " + WITHIN + " after a Δ = the paper's number lies inside our "
            "interval.\n\n"
            f"Metrics files read: {', '.join(found) if found else 'none'}.\n")
    if run.ignored:
        text += f"Ignored (no known kind): {', '.join(f'`{p}`' for p in run.ignored)}.\n"
    text += "\n" + table1(run, targets) + "\n" + table2(run, targets)
    if pass_png:
        text += f"\n![Pass@1 and Pass@5 by path length]({pass_png})\n"
    text += ("\n" + table3(run, targets) + "\n" + table11(run, targets) + "\n" + stage_table(run, targets) + "\n"
             + training_section(run, curves_png))
    return text
