"""Reports: paper targets, tables ours / paper / Δ, plots, missing stages and bad input."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from report_fixtures import interactive_metrics, static_metrics, write

from gelab.eval.intervals import bootstrap_mean, wilson
from gelab.report.build import CURVES_PNG, PASS_PNG, REPORT_MD, build_report
from gelab.report.collect import collect
from gelab.report.curves import read_curve
from gelab.eval.schema import SCHEMAS, Interval
from gelab.report.schema import MetricsError
from gelab.report.tables import display
from gelab.report.targets import load_targets

REPO = Path(__file__).resolve().parents[1]
TARGETS = REPO / "paper" / "targets.yaml"
TASKS_PER_LENGTH = {1: 137, 2: 147, 3: 222, 4: 324, 5: 492, 6: 456, 7: 384}  # SPEC §2, any subtree


def rows_of(md: str, first: str, second: str) -> list[list[str]]:
    """Table rows whose first two cells are ``first`` and ``second``."""
    out = []
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 2 and cells[0] == first and cells[1] == second:
            out.append(cells)
    return out


# --- the paper targets file -------------------------------------------------------------------------

def test_targets_use_the_metrics_schema_and_cover_the_papers_models():
    targets = load_targets(TARGETS)
    assert list(targets) == ["sft", "st_rl", "mt_rl", "gpt-4o"]
    for model in ("sft", "st_rl", "mt_rl"):
        assert set(targets[model]) == set(SCHEMAS)  # Tables 1, 2, 3 and 11 for every trained stage


@pytest.mark.parametrize("model", ["sft", "st_rl", "mt_rl"])
def test_table11_targets_are_whole_task_counts_that_add_up(model):
    """Table 11 over the 2,162 OOD tasks: each percentage is a whole number of tasks, summing to overall."""
    ood = load_targets(TARGETS)[model]["static_ood"]
    solved = {n: ood.per_path[str(n)].task_success * TASKS_PER_LENGTH[n] / 100 for n in TASKS_PER_LENGTH}
    for n, count in solved.items():
        assert abs(count - round(count)) < 0.01, (model, n, count)
    overall = 100 * sum(round(c) for c in solved.values()) / sum(TASKS_PER_LENGTH.values())
    assert abs(overall - ood.task_success) < 0.002


@pytest.mark.parametrize("model", ["sft", "st_rl", "mt_rl"])
def test_table2_targets_average_to_the_overall_numbers(model):
    """Pass@1 and Pass@5 by length, weighted by the tasks per length, give the overall (printed to 2 dp)."""
    strict = load_targets(TARGETS)[model]["interactive"].strict
    total = sum(TASKS_PER_LENGTH.values())
    for key in ("pass1", "passk"):
        mean = sum(getattr(strict.per_path[str(n)], key) * t for n, t in TASKS_PER_LENGTH.items()) / total
        assert abs(mean - getattr(strict, key)) < 0.05, (model, key, mean)


def test_targets_reject_a_key_the_metrics_files_do_not_have(tmp_path):
    bad = tmp_path / "targets.yaml"
    bad.write_text("sft:\n  static_id: {edge: 1.0, accuracy: 2.0}\n")
    with pytest.raises(MetricsError, match=r"sft\.static_id: accuracy: unknown key"):
        load_targets(bad)


# --- tables -----------------------------------------------------------------------------------------

def test_report_shows_ours_paper_and_delta(tmp_path):
    metrics = tmp_path / "metrics"
    ours = static_metrics(edge=91.25, path=80.5, overall=85.0, task_success=40.0)
    write(metrics, "sft", "static_id", ours)
    md = build_report(metrics, TARGETS, tmp_path / "reports").read_text()
    paper = load_targets(TARGETS)["sft"]["static_id"]
    (row,) = rows_of(md, "SFT", "Edge")
    assert row[2:5] == [f"{ours['edge']:.2f}", f"{paper.edge:.2f}", f"{ours['edge'] - paper.edge:+.2f}"]
    assert row[5] == "missing"  # static_ood has not run


def test_stages_that_have_not_run_show_as_missing_never_zero(tmp_path):
    metrics = tmp_path / "metrics"
    write(metrics, "sft", "interactive", interactive_metrics(20.0, 30.0))
    md = build_report(metrics, TARGETS, tmp_path / "reports").read_text()
    for model in ("st_rl", "mt_rl", "gpt-4o"):
        (row,) = rows_of(md, display(model), "**all**")
        assert row[2] == "missing" and row[5] == "missing"
        assert row[4] == "—"  # no Δ without ours
    for model in ("st_rl", "mt_rl"):
        for length in range(1, 8):
            (row,) = rows_of(md, display(model), f"Path@{length}")
            assert "0.00" not in (row[2], row[5])
    assert "missing (no `metrics/train/sft.json`" in md


def test_extra_model_is_reported_and_paper_column_is_blank(tmp_path):
    metrics = tmp_path / "metrics"
    write(metrics, "oracle", "interactive", interactive_metrics(50.0, 60.0))
    md = build_report(metrics, TARGETS, tmp_path / "reports").read_text()
    (row,) = rows_of(md, "oracle", "**all**")
    assert row[2] == f"{50.0 * 0.9:.2f}" and row[3] == "—" and row[4] == "—"


def test_gpt4o_appears_only_where_the_paper_reports_it(tmp_path):
    md = build_report(tmp_path / "none", TARGETS, tmp_path / "reports").read_text()
    table3 = md.split("## Table 3")[1].split("## Table 11")[0]
    table11 = md.split("## Table 11")[1].split("## Training")[0]
    assert "GPT-4o" in md.split("## Table 1 ")[1].split("## Table 2")[0]
    assert "GPT-4o" not in table3 and "GPT-4o" not in table11


def test_table11_compares_static_ood_task_success(tmp_path):
    metrics = tmp_path / "metrics"
    ours = static_metrics(60.0, 40.0, 50.0, task_success=14.0)
    write(metrics, "mt_rl", "static_ood", ours)
    md = build_report(metrics, TARGETS, tmp_path / "reports").read_text()
    table11 = md.split("## Table 11")[1]
    header = next(line for line in table11.splitlines() if line.startswith("| Length"))
    col = [c.strip() for c in header.strip("|").split("|")].index("MT-RL ours")
    paper = load_targets(TARGETS)["mt_rl"]["static_ood"]
    for line in table11.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == "Path@3":
            mine, theirs = ours["per_path"]["3"]["task_success"], paper.per_path["3"].task_success
            assert cells[col:col + 3] == [f"{mine:.2f}", f"{theirs:.2f}", f"{mine - theirs:+.2f}"]
            break
    else:
        pytest.fail("no Path@3 row in Table 11")


def test_report_writes_plots_and_is_deterministic(tmp_path):
    metrics = tmp_path / "metrics"
    write(metrics, "sft", "interactive", interactive_metrics(20.0, 30.0))
    (metrics / "train").mkdir(parents=True)
    no_curve = build_report(metrics, TARGETS, tmp_path / "no_curve").parent
    (metrics / "train" / "sft_steps.csv").write_text("step,loss,reward\n1,2.5,\n2,2.0,\n")
    a = build_report(metrics, TARGETS, tmp_path / "a").parent
    b = build_report(metrics, TARGETS, tmp_path / "b").parent
    for name in (REPORT_MD, PASS_PNG, CURVES_PNG):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    for name in (PASS_PNG, CURVES_PNG):
        assert (a / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (no_curve / CURVES_PNG).read_bytes() != (a / CURVES_PNG).read_bytes()  # the curve file is drawn
    assert f"]({PASS_PNG})" in (a / REPORT_MD).read_text()


def test_intervals_are_shown_and_a_delta_within_them_is_marked(tmp_path):
    metrics = tmp_path / "metrics"
    paper = load_targets(TARGETS)["sft"]["static_id"]
    ours = static_metrics(edge=paper.edge + 3.0, path=paper.path - 10.0, overall=50.0, task_success=20.0, ci=5.0)
    write(metrics, "sft", "static_id", ours)
    md = build_report(metrics, TARGETS, tmp_path / "reports").read_text()
    (edge,) = rows_of(md, "SFT", "Edge")
    lo, hi = ours["edge_ci95"]
    assert edge[2] == f"{ours['edge']:.2f} [{lo:.1f}, {hi:.1f}]"
    assert edge[4] == "+3.00 ≈"  # the paper's number lies inside our interval
    (path,) = rows_of(md, "SFT", "Path")
    assert path[4] == "-10.00"  # outside: no mark
    write(metrics, "sft", "static_id", static_metrics(edge=paper.edge + 3.0, path=1.0, overall=50.0,
                                                      task_success=20.0))  # a file without intervals
    md = build_report(metrics, TARGETS, tmp_path / "reports").read_text()
    (edge,) = rows_of(md, "SFT", "Edge")
    assert edge[2] == f"{paper.edge + 3.0:.2f}" and edge[4] == "+3.00"


def test_counts_are_shown_beside_the_intervals(tmp_path):
    metrics = tmp_path / "metrics"
    write(metrics, "sft", "static_ood", static_metrics(60.0, 40.0, 50.0, 10.0, ci=4.0, counts=True))
    write(metrics, "sft", "interactive", interactive_metrics(20.0, 30.0, ci=5.0, counts=True))
    md = build_report(metrics, TARGETS, tmp_path / "reports").read_text()
    (edge,) = rows_of(md, "SFT", "Edge")
    assert edge[5] == "60.00 [56.0, 64.0] n=70"  # OOD ours: steps
    (path3,) = rows_of(md, "SFT", "Path@3")
    assert path3[2] == "6.00 [1.0, 11.0] n=9"  # Pass@1 of length 3: tasks
    assert "| Path@2 | 5.00 [1.0, 9.0] n=20 |" in md  # Table 11, task success by length: tasks


def test_a_one_task_bucket_is_not_called_a_real_gap(tmp_path):
    """One task at 0 % against the paper's 51 %: the interval over one task holds 51, so the Δ is ≈."""
    metrics = tmp_path / "metrics"
    ours = interactive_metrics(20.0, 30.0, ci=5.0, counts=True)
    bucket = ours["strict"]["per_path"]["7"]
    bucket.update({"tasks": 1, "pass@1": 0.0, "pass@1_n": 1,
                   "pass@1_ci95": bootstrap_mean([0.0], 0, "strict", "7", "pass@1")})
    write(metrics, "sft", "interactive", ours)
    targets = tmp_path / "targets.yaml"
    targets.write_text("sft:\n  interactive:\n    k: 5\n    strict:\n      per_path:\n        '7': {pass@1: 51.0}\n")
    md = build_report(metrics, targets, tmp_path / "reports").read_text()
    (row,) = rows_of(md, "SFT", "Path@7")
    assert bucket["pass@1_ci95"] == wilson(0, 1)
    assert row[2:5] == ["0.00 [0.0, 79.3] n=1", "51.00", "-51.00 ≈"]


def test_stage_to_stage_changes_within_the_intervals_are_marked(tmp_path):
    metrics = tmp_path / "metrics"
    write(metrics, "sft", "static_ood", static_metrics(60.0, 40.0, 50.0, 10.0, ci=4.0))
    write(metrics, "st_rl", "static_ood", static_metrics(62.0, 45.0, 58.5, 12.0, ci=4.0))  # overall: 8.5 apart
    write(metrics, "sft", "interactive", interactive_metrics(20.0, 30.0, ci=5.0))
    write(metrics, "st_rl", "interactive", interactive_metrics(25.0, 31.0, ci=5.0))
    md = build_report(metrics, TARGETS, tmp_path / "reports").read_text()
    stage = md.split("## Stage to stage")[1].split("## Training")[0]
    header = next(line for line in stage.splitlines() if line.startswith("| Number"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    rows = {cells[0]: dict(zip(columns, cells)) for line in stage.splitlines()[2:]
            if (cells := [c.strip() for c in line.strip("|").split("|")]) and len(cells) == len(columns)}
    change = "ST-RL − SFT ours"
    assert rows["Static OOD overall"][change] == "+8.50"  # [46, 54] and [54.5, 62.5]: apart
    assert rows["Static OOD task success"][change] == "+2.00 ≈"
    assert rows["Interactive Pass@1 (strict)"][change] == "+4.50 ≈"  # 18.0 [13, 23] -> 22.5 [17.5, 27.5]
    assert rows["Interactive Pass@1 (strict)"]["SFT ours"] == "18.00 [13.0, 23.0]"
    assert rows["Static ID overall"][change] == "—" and rows["Static ID overall"]["SFT ours"] == "missing"
    paper = load_targets(TARGETS)
    p1 = paper["st_rl"]["interactive"].strict.pass1 - paper["sft"]["interactive"].strict.pass1
    paper_col = columns.index(change) + 1
    cells = [c.strip() for c in next(line for line in stage.splitlines()
                                      if line.startswith("| Interactive Pass@1")).strip("|").split("|")]
    assert cells[paper_col] == f"{p1:+.2f}"  # the paper's own change, never marked (no intervals)


def test_empty_bucket_is_shown_as_no_number(tmp_path):
    metrics = tmp_path / "metrics"
    ours = static_metrics(70.0, 60.0, 65.0, 20.0)
    ours["path"] = None  # e.g. a subset with no multi-step task
    write(metrics, "sft", "static_ood", ours)
    md = build_report(metrics, TARGETS, tmp_path / "reports").read_text()
    (row,) = rows_of(md, "SFT", "Path")
    assert row[5:8] == ["—", f"{load_targets(TARGETS)['sft']['static_ood'].path:.2f}", "—"]


# --- bad input --------------------------------------------------------------------------------------

def _drop(data, *keys):
    node = data
    for key in keys[:-1]:
        node = node[key]
    del node[keys[-1]]
    return data


def _set(data, value, *keys):
    node = data
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return data


STATIC = static_metrics(70.0, 60.0, 65.0, 20.0)
BAD_FILES = [
    ("static_ood", _drop(static_metrics(70.0, 60.0, 65.0, 20.0), "edge"), "edge: missing key"),
    ("static_ood", _set(static_metrics(70.0, 60.0, 65.0, 20.0), 1.0, "accuracy"), "accuracy: unknown key"),
    ("static_ood", _set(static_metrics(70.0, 60.0, 65.0, 20.0), "70.0", "edge"), "edge: not a number"),
    ("static_ood", _set(static_metrics(70.0, 60.0, 65.0, 20.0), "n/a", "per_path", "3", "task_success"),
     "per_path.3.task_success: not a number"),
    ("static_ood", _set(static_metrics(70.0, 60.0, 65.0, 20.0), None, "per_path", "3", "tasks"),
     "per_path.3.tasks: not a number"),
    ("static_ood", _set(static_metrics(70.0, 60.0, 65.0, 20.0), True, "overall"), "overall: not a number"),
    ("static_ood", _set(static_metrics(70.0, 60.0, 65.0, 20.0), math.nan, "edge"), "edge: not a finite number"),
    ("static_ood", _set(static_metrics(70.0, 60.0, 65.0, 20.0), 0.5, "per_path", "x"), "per_path.x: unknown key"),
    ("interactive", _drop(interactive_metrics(10.0, 20.0), "strict", "per_path", "2", "pass@k"),
     "strict.per_path.2.pass@k: missing key"),
    ("interactive", _set(interactive_metrics(10.0, 20.0), 250.0, "lenient", "pass@1"),
     "lenient.pass@1: 250.0 is not a percentage"),
    ("static_ood", _set(static_metrics(70.0, 60.0, 65.0, 20.0, ci=5.0), [66.0, 64.0], "overall_ci95"),
     "overall_ci95: expected [low, high]"),
    ("static_ood", _set(static_metrics(70.0, 60.0, 65.0, 20.0, ci=5.0), [60.0], "per_path", "2", "step_accuracy_ci95"),
     "per_path.2.step_accuracy_ci95: expected [low, high]"),
    ("interactive", _set(interactive_metrics(10.0, 20.0, ci=5.0), [5.0, 101.0], "strict", "pass@k_ci95"),
     "strict.pass@k_ci95: expected [low, high]"),
    ("interactive", _set(interactive_metrics(10.0, 20.0, ci=5.0), "5..9", "lenient", "per_path", "3", "pass@1_ci95"),
     "lenient.per_path.3.pass@1_ci95: expected [low, high]"),
    ("interactive", _set(interactive_metrics(10.0, 20.0, counts=True), 2.5, "strict", "per_path", "1", "pass@1_n"),
     "strict.per_path.1.pass@1_n: 2.5 is not an integer count"),
    ("static_ood", _set(static_metrics(70.0, 60.0, 65.0, 20.0, counts=True), -1, "edge_n"),
     "edge_n: -1 is not an integer count"),
    ("interactive", "", "empty file"),  # the stage died before writing
    ("interactive", '{"k": 5, "strict": {', "not valid JSON"),  # the stage died mid-write
]


def test_metrics_files_with_and_without_intervals_and_counts_are_accepted(tmp_path):
    metrics = tmp_path / "metrics"
    write(metrics, "sft", "static_ood", static_metrics(70.0, 60.0, 65.0, 20.0, ci=5.0))
    write(metrics, "sft", "interactive", interactive_metrics(10.0, 20.0, ci=5.0))
    write(metrics, "st_rl", "static_ood", static_metrics(70.0, 60.0, 65.0, 20.0))  # written before intervals
    empty = static_metrics(70.0, 60.0, 65.0, 20.0, ci=5.0)
    empty["path"] = empty["path_ci95"] = None  # an empty bucket has neither a number nor an interval
    write(metrics, "mt_rl", "static_ood", empty)
    write(metrics, "gpt-4o", "interactive", interactive_metrics(10.0, 20.0, ci=5.0, counts=True))  # with KEY_n
    write(metrics, "oracle", "static_ood", static_metrics(70.0, 60.0, 65.0, 20.0, ci=5.0, counts=True))
    run = collect(metrics)
    assert run.get("sft", "interactive").strict.pass1_ci95 == Interval(4.0, 14.0)
    assert run.get("gpt-4o", "interactive").strict.per_path["2"].passk_n == 6
    assert set(run.models) == {"sft", "st_rl", "mt_rl", "gpt-4o", "oracle"}


@pytest.mark.parametrize("kind,data,message", BAD_FILES)
def test_bad_metrics_file_fails_naming_file_and_key(tmp_path, kind, data, message):
    metrics = tmp_path / "metrics"
    write(metrics, "sft", "static_id", STATIC)
    bad = write(metrics, "st_rl", kind, data)
    out = tmp_path / "reports"
    out.mkdir()
    (out / "old.md").write_text("previous report")
    with pytest.raises(MetricsError) as err:
        build_report(metrics, TARGETS, out)
    assert str(bad) in str(err.value) and message in str(err.value)
    assert [p.name for p in out.iterdir()] == ["old.md"]  # nothing half-written


def test_cli_reports_bad_input_with_exit_status_2(tmp_path, run_cli):
    metrics = tmp_path / "metrics"
    bad = write(metrics, "sft", "static_id", _drop(static_metrics(70.0, 60.0, 65.0, 20.0), "path"))
    proc = run_cli("report", "build", "--metrics", metrics, "--targets", TARGETS, "--out", tmp_path / "reports")
    assert proc.returncode == 2
    assert f"{bad}: path: missing key" in proc.stderr
    assert not (tmp_path / "reports").exists()


def test_training_summary_with_a_non_finite_value_fails(tmp_path):
    metrics = tmp_path / "metrics"
    (metrics / "train").mkdir(parents=True)
    (metrics / "train" / "st_rl.json").write_text('{"final": {"reward": Infinity}}')
    with pytest.raises(MetricsError, match=r"st_rl\.json: final\.reward: not a finite number"):
        collect(metrics)


# --- training curves --------------------------------------------------------------------------------

def test_curve_gaps_are_missing_not_zero(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("step,loss,reward\n1,2.0,\n2,,0.5\n")
    curve = read_curve(path)
    assert curve["step"] == [1.0, 2.0] and curve["loss"][0] == 2.0 and curve["reward"][1] == 0.5
    assert math.isnan(curve["reward"][0]) and math.isnan(curve["loss"][1])


def test_curve_jsonl_and_errors_name_file_line_and_column(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"step": 1, "reward": 0.25}\n{"step": 2, "reward": null}\n')
    curve = read_curve(path)
    assert curve["reward"][0] == 0.25 and math.isnan(curve["reward"][1])
    path.write_text('{"step": 1, "reward": "high"}\n')
    with pytest.raises(MetricsError, match=rf"{path}: line 1: reward: not a number"):
        read_curve(path)
    bad = tmp_path / "c.csv"
    bad.write_text("loss\n1.0\n")
    with pytest.raises(MetricsError, match=r"step: missing column"):
        read_curve(bad)
