"""The viewer without a browser: outcome and failure tallies (tables of literal trajectories), Wilson
intervals, reading logs, the site writer, case studies, the CLI's errors and the DVC stage."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gelab.cli import main
from gelab.env.navigation import Navigator
from gelab.errors import InputError
from gelab.eval.intervals import wilson
from gelab.report.build import build_report
from gelab.report.viewer import aggregate
from gelab.report.viewer.aggregate import (
    CAP,
    PREMATURE,
    SUCCESS,
    UNFINISHED,
    failure_summary,
    summarize,
    visited_pages,
)
from gelab.report.viewer.cases import choose_cases, write_cases
from gelab.report.viewer.logs import EpisodeLog, read_episodes
from gelab.report.viewer.site import build_site

REPO = Path(__file__).resolve().parents[1]


def click(page: str, new_page: str, name: str = "icon_1", *, hit: str | None = "", error: str | None = None,
          xy: tuple[int, int] = (500, 500)) -> dict[str, Any]:
    """A logged click; ``hit`` defaults to the claimed name (a hit that moved)."""
    return {"page": page, "action": "click", "click": list(xy), "claimed": name,
            "hit": name if hit == "" else hit, "new_page": new_page, "error": error, "done": False}


def miss(page: str, name: str = "icon_1") -> dict[str, Any]:
    return click(page, page, name, hit=None, error="miss")


def nowhere(page: str, name: str) -> dict[str, Any]:
    return click(page, page, "other_2", hit=name, error=f"{name} leads nowhere")


def invalid(page: str, reason: str = "no action found") -> dict[str, Any]:
    return {"page": page, "action": "invalid", "click": None, "claimed": None, "hit": None, "new_page": page,
            "error": reason, "done": False}


def complete(page: str) -> dict[str, Any]:
    return {"page": page, "action": "complete", "click": None, "claimed": None, "hit": None, "new_page": page,
            "error": None, "done": False}


def ended(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mark the last row as the episode's end (complete, or the cap)."""
    return rows[:-1] + [{**rows[-1], "done": True}]


# start page_1, target page_3 unless said; columns: outcome, loop, reached (lenient), misses, invalid
OUTCOME_TABLE = [
    (ended([click("page_1", "page_3"), complete("page_3")]), SUCCESS, False, True, 0, 0),  # shortest path, complete on target
    (ended([complete("page_1")]), PREMATURE, False, False, 0, 0),  # complete said on the start page
    (ended([click("page_1", "page_3"), click("page_3", "page_1", "back"), complete("page_1")]),
     PREMATURE, True, True, 0, 0),  # passed the target, went back (page_1 entered twice), completed there
    (ended([miss("page_1"), miss("page_1"), miss("page_1")]), CAP, False, False, 3, 0),  # misses stay put: no loop
    (ended([click("page_1", "page_0", "back"), click("page_0", "page_1"), click("page_1", "page_0", "back")]),
     CAP, True, False, 0, 0),  # back and forth between two pages: a loop, then the cap
    (ended([click("page_1", "page_3"), click("page_3", "page_7")]), CAP, False, True, 0, 0),  # reached, no complete
    ([invalid("page_1"), click("page_1", "page_3")], UNFINISHED, False, True, 0, 1),  # log stops mid-episode
    ([], UNFINISHED, False, False, 0, 0),  # no row yet
    (ended([nowhere("page_1", "noise_4"), invalid("page_1", "bad box"), click("page_1", "page_3"), complete("page_3")]),
     SUCCESS, False, True, 1, 1),  # a dead icon is a miss, an invalid output is not
]


@pytest.mark.parametrize("rows, expected, loop, reached, misses, invalid_steps", OUTCOME_TABLE)
def test_outcome_loops_and_counts(rows, expected, loop, reached, misses, invalid_steps):
    s = summarize("page_1", "page_3", rows)
    assert (s.outcome, s.loop, s.reached, s.misses, s.invalid, s.steps) == \
        (expected, loop, reached, misses, invalid_steps, len(rows))


def test_visited_pages_skip_turns_that_stay():
    rows = [miss("page_1"), click("page_1", "page_3"), invalid("page_3"), click("page_3", "page_1", "back")]
    assert visited_pages("page_1", rows) == ["page_1", "page_3", "page_1"]


def test_failure_summary_tallies_by_page_icon_and_length():
    episodes = [  # (path length, rows) with start page_1, target page_3
        (1, ended([click("page_1", "page_3"), complete("page_3")])),
        (1, ended([miss("page_1", "geo_5"), miss("page_1", "geo_5"), complete("page_1")])),
        (2, ended([nowhere("page_1", "noise_4"), invalid("page_1", "no action found"), invalid("page_4", "bad box")])),
        (2, ended([click("page_1", "page_0", "back"), click("page_0", "page_1"), click("page_1", "page_3"),
                   click("page_3", "page_7")])),
    ]
    s = failure_summary([(n, summarize("page_1", "page_3", rows), rows) for n, rows in episodes])
    assert s["outcomes"] == {SUCCESS: 1, PREMATURE: 1, CAP: 2, UNFINISHED: 0}
    assert s["loops"] == 1 and s["reached_without_complete"] == 1
    assert s["misses_by_page"] == [["page_1", 3]]
    assert s["misses_by_icon"] == [["geo_5", 2], ["noise_4", 1]]  # a dead icon is charged to what was hit
    assert s["invalid_by_page"] == [["page_1", 1], ["page_4", 1]]
    assert s["invalid_by_reason"] == [["bad box", 1], ["no action found", 1]]
    by_length = {r["length"]: r for r in s["by_length"]}
    assert by_length[1]["episodes"] == 2 and by_length[1]["strict"]["rate"] == 50.0
    assert by_length[2]["strict"]["rate"] == 0.0 and by_length[2]["lenient"]["rate"] == 50.0
    assert by_length[2]["strict"]["high"] == round(wilson(0, 2)[1], 2)


def test_the_viewer_has_no_wilson_of_its_own():
    assert aggregate.wilson is wilson  # the package's one formula (gelab.eval.intervals), in percent
    assert aggregate.rate_with_interval(0, 1) == {"k": 0, "rate": 0.0, "low": 0.0, "high": 79.35}


# --- reading logs -------------------------------------------------------------------------------

def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def logged(rows: list[dict[str, Any]], task: str = "page_1:page_1->page_3", attempt: int = 0) -> list[dict[str, Any]]:
    return [{"episode": f"{task}@{attempt}", "task": task, "attempt": attempt, "step": i, "prompt": "", "output": "x",
             **r} for i, r in enumerate(rows)]


def test_read_episodes_groups_rows_in_order(tmp_path):
    a = logged(ended([click("page_1", "page_3"), complete("page_3")]))
    b = logged(ended([complete("page_1")]), attempt=1)
    eps = read_episodes("m", write_rows(tmp_path / "t.jsonl", [a[0], b[0], a[1]]))
    assert [(e.key, e.attempt, len(e.rows)) for e in eps] == [("page_1:page_1->page_3@0", 0, 2),
                                                              ("page_1:page_1->page_3@1", 1, 1)]
    assert (eps[0].subtree, eps[0].start, eps[0].target) == ("page_1", "page_1", "page_3")


@pytest.mark.parametrize("mutate, message", [
    (lambda rows: [{k: v for k, v in rows[0].items() if k != "new_page"}], "line 1: no field 'new_page'"),
    (lambda rows: [{**rows[0], "task": "from page_1 to page_3"}], "line 1: field 'task'"),
    (lambda rows: [rows[1]], "line 1: field 'step': 1 in episode"),
    (lambda rows: rows + [{**rows[1], "step": 2}], "line 3: episode page_1:page_1->page_3@0 continues after its last step"),
])
def test_bad_log_rows_name_file_line_and_field(tmp_path, mutate, message):
    rows = logged(ended([click("page_1", "page_3"), complete("page_3")]))
    path = write_rows(tmp_path / "bad.jsonl", mutate(rows))
    with pytest.raises(InputError, match=str(path).replace(".", r"\.") + ": " + message.replace("(", r"\(")):
        read_episodes("m", path)


def test_missing_log_is_an_input_error_naming_it(tmp_path):
    with pytest.raises(InputError, match=r"nowhere\.jsonl: trajectory log not found"):
        read_episodes("m", tmp_path / "nowhere.jsonl")


# --- the site writer, case studies, CLI ---------------------------------------------------------

def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_site_is_deterministic_and_self_contained(small_env, small_logs, tmp_path):
    base, _ = small_env
    runs = {m: read_episodes(m, p) for m, p in small_logs.items()}
    a = build_site(tmp_path / "a", base, runs, progress=False, chunk_size=16)
    build_site(tmp_path / "b", base, runs, progress=False, chunk_size=16)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    assert a["episodes"] == 3 * 30 * 2
    files = digests(tmp_path / "a")
    assert "data/chunks/random/3.js" in files and "data/chunks/random/4.js" not in files  # 60 episodes / 16
    assert sum(f.startswith("img/base/") for f in files) == len(base.structure.pages)
    for name in ("index.html", "assets/viewer.js", "assets/viewer.css"):  # nothing fetched from elsewhere
        text = (tmp_path / "a" / name).read_text(encoding="utf-8").replace("http://www.w3.org/2000/svg", "")  # a name
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
    index = (tmp_path / "a" / "data" / "index.js").read_text(encoding="utf-8")
    assert index.startswith("window.GELAB_INDEX = {")


def test_site_rejects_a_log_of_another_environment(small_env, tmp_path):
    base, _ = small_env
    path = write_rows(tmp_path / "t.jsonl", logged(ended([complete("page_99")]), task="page_1:page_99->page_3"))
    with pytest.raises(InputError, match="page 'page_99' is not in the environment"):
        build_site(tmp_path / "site", base, {"m": read_episodes("m", path)}, progress=False)
    assert not (tmp_path / "site").exists()


def test_cases_prefer_tasks_where_models_differ(small_env, tmp_path):
    base, _ = small_env
    nav = Navigator(base.structure)

    def ep(model: str, start: str, target: str, rows: list[dict[str, Any]]) -> EpisodeLog:
        return EpisodeLog(model, f"page_1:{start}->{target}@0", "page_1", start, target, 0, tuple(rows))

    same = ended([complete("page_1")])  # every model fails page_1 -> page_3 alike
    runs = {"sft": [ep("sft", "page_1", "page_3", same), ep("sft", "page_0", "page_3", ended([complete("page_0")]))],
            "mt_rl": [ep("mt_rl", "page_1", "page_3", same),
                      ep("mt_rl", "page_0", "page_3", ended([click("page_0", "page_1"), click("page_1", "page_3"),
                                                             complete("page_3")]))]}
    (first, second) = choose_cases(runs, ["sft", "mt_rl"], 2, nav)
    assert first["sft"].start == "page_0"  # outcomes differ and the last model succeeds
    assert second["sft"].start == "page_1"
    pngs = write_cases(tmp_path / "cases", base, runs, ["sft", "mt_rl"], 1, progress=False)
    assert [p.name for p in pngs] == ["case_1.png"] and pngs[0].stat().st_size > 1000
    again = write_cases(tmp_path / "again", base, runs, ["sft", "mt_rl"], 1, progress=False)
    assert again[0].read_bytes() == pngs[0].read_bytes()  # deterministic


def test_report_links_case_studies_and_keeps_the_site(tmp_path):
    reports = tmp_path / "reports"
    (reports / "cases").mkdir(parents=True)
    (reports / "site").mkdir()
    (reports / "site" / "index.html").write_text("site", encoding="utf-8")
    for n in (10, 2, 1):
        (reports / "cases" / f"case_{n}.png").write_bytes(b"png")
    md = build_report(tmp_path / "no-metrics", REPO / "paper" / "targets.yaml", reports).read_text(encoding="utf-8")
    section = md[md.index("## Case studies"):]
    assert [line for line in section.splitlines() if line.startswith("![")] == \
        ["![case study 1](cases/case_1.png)", "![case study 2](cases/case_2.png)", "![case study 3](cases/case_10.png)"]
    assert (reports / "site" / "index.html").read_text(encoding="utf-8") == "site"


@pytest.mark.parametrize("extra, message", [
    (["--run", "sft={tmp}/gone.jsonl"], "{tmp}/gone.jsonl: trajectory log not found"),
    (["--run", "sft={log}", "--cases", "{tmp}/cases", "--case-models", "sft,mt_rl"],
     "--case-models: no trajectory log for 'mt_rl'"),
    (["--variant", "noise={tmp}/no-env"], "{tmp}/no-env/ui_structure.json"),
    (["--run", "a/b={log}"], "model name 'a/b'"),
])
def test_cli_bad_input_exits_2_with_one_line(small_env, small_logs, tmp_path, capsys, extra, message):
    base, _ = small_env
    fill = {"tmp": str(tmp_path), "log": str(small_logs["oracle"])}
    code = main(["view", "--env", str(base.root), "--out", str(tmp_path / "site"), *(a.format(**fill) for a in extra)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert message.format(**fill) in err
    assert not (tmp_path / "site").exists() and not (tmp_path / "cases").exists()


def test_cli_reads_the_models_of_params(small_env, small_logs, tmp_path, capsys):
    """--params: logs of eval.checkpoints then eval.reference_policies under --eval-dir; cases of the checkpoints."""
    base, variants = small_env
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"eval": {"checkpoints": {"sft": "x", "mt_rl": "y"},
                                               "reference_policies": ["oracle"]}}, sort_keys=False), encoding="utf-8")
    eval_dir = tmp_path / "eval"
    for model, policy in (("sft", "random"), ("mt_rl", "home-then-complete"), ("oracle", "oracle")):
        (eval_dir / model / "interactive").mkdir(parents=True)
        (eval_dir / model / "interactive" / "trajectories.jsonl").write_bytes(small_logs[policy].read_bytes())
    code = main(["view", "--params", str(params), "--eval-dir", str(eval_dir), "--env", str(base.root),
                 "--variant", f"noise={variants['noise'].root}", "--out", str(tmp_path / "site"),
                 "--cases", str(tmp_path / "cases"), "--cases-count", "2", "--quiet"])
    assert code == 0, capsys.readouterr().err
    index = (tmp_path / "site" / "data" / "index.js").read_text(encoding="utf-8")
    models = json.loads(index[index.index("{"):index.rindex("}") + 1])["models"]
    assert [m["name"] for m in models] == ["sft", "mt_rl", "oracle"]
    assert sorted(p.name for p in (tmp_path / "cases").iterdir()) == ["case_1.png", "case_2.png"]
    assert "sft, mt_rl" in capsys.readouterr().out


@pytest.mark.parametrize("profile", ["params.yaml", "profiles/paper.yaml"])
def test_view_stage_depends_on_every_evaluated_log(profile):
    """The view stage's deps name the interactive logs of eval.checkpoints and eval.reference_policies."""
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]["view"]
    params = yaml.safe_load((REPO / profile).read_text(encoding="utf-8"))["eval"]
    wanted = {f"build/eval/{m}/interactive" for m in [*params["checkpoints"], *params["reference_policies"]]}
    assert wanted <= set(stage["deps"])
    assert "--params params.yaml" in stage["cmd"] and "--eval-dir build/eval" in stage["cmd"]
    assert {"eval.checkpoints", "eval.reference_policies"} <= set(stage["params"])
