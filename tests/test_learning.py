"""Learning checks: the fixed problem, the check's training params, and (slow) every stage learning it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from gelab.checks.learning import ambiguous_rows, fixed_problem, sft_rows, st_rl_rows, stage_params
from gelab.env.envdir import Environment
from gelab.env.navigation import Navigator
from gelab.params import LearningParams, LearningSftParams, ModelParams, ParamsError, load_section
from gelab.train.command import rl_command, sft_command
from gelab.train.config import TrainParams


@pytest.fixture(scope="module")
def nav(base_env: Environment) -> Navigator:
    return Navigator(base_env.structure)


def test_sft_memorises_each_part_of_the_rl_tasks_but_not_their_second_step(nav: Navigator) -> None:
    lp = LearningParams()
    problem = fixed_problem(lp, nav)
    assert problem == fixed_problem(lp, nav)  # seeded: the same problem every time
    assert len(problem.two_click) == lp.tasks and all(t.path_length == 2 for t in problem.two_click)
    assert len(problem.paths) == lp.tasks and all(t.path_length == 2 for t in problem.paths)
    assert not set(problem.paths) & set(problem.two_click)  # the composition is shown on other tasks
    assert len(problem.one_click) == lp.one_click_tasks
    assert all(t.subtree == lp.subtree for t in [*problem.mt_rl_tasks, *problem.edges, *problem.paths])
    edges = {(e.start, e.target) for e in problem.edges}
    for task in problem.two_click:  # the second edge of each RL task is memorised on its own
        (a, x), (b, y) = nav.shortest_path(task.start, task.target)
        assert nav.edges[a][x] == b and nav.edges[b][y] == task.target
        assert (b, task.target) in edges
    assert all(nav.distances_to(e.target)[e.start] == 1 for e in [*problem.edges, *problem.one_click])
    assert {(t.start, t.target) for t in problem.one_click} <= edges
    clicked = {a for t in [*problem.two_click, *problem.paths] for _, a in nav.shortest_path(t.start, t.target)}
    assert set(problem.icons) >= clicked - {"back", "home"}  # a grounding row per content icon clicked (or more)
    assert problem.rows == lp.sft.rows
    assert fixed_problem(LearningParams(seed=1), nav).two_click != problem.two_click


def test_sft_rows_are_first_steps_edges_paths_then_grounding(nav: Navigator, base_env: Environment,
                                                           data_dir: Path) -> None:
    from gelab.data.datasets import Source

    problem = fixed_problem(LearningParams(), nav)
    rows = sft_rows(problem, data_dir / "sft.jsonl", Source.of(base_env), 0)
    ids = [r["id"] for r in rows]
    first = [f"{t.id}#0" for t in problem.two_click]
    edges = [f"{e.id}#{step}" for e in problem.edges for step in (0, 1)]
    paths = [f"{t.id}#{step}" for t in problem.paths for step in (0, 1, 2)]
    assert ids == first + edges + paths + [f"grounding:{name}#0" for name in problem.icons]
    assert not {f"{t.id}#1" for t in problem.two_click} & set(ids)  # ambiguous: not among the memorised rows
    prompts = [r["messages"][1]["content"] for r in rows]
    assert len(set(prompts)) == len(prompts)  # no prompt with two answers
    assert all(r["messages"][-1]["role"] == "assistant" for r in rows)  # SFT rows carry their answer
    assert rows == sft_rows(problem, data_dir / "sft.jsonl", Source.of(base_env), 0)  # seeded click points


def test_the_second_steps_are_ambiguous_one_right_click_and_decoys(nav: Navigator, base_env: Environment) -> None:
    """SFT sees each RL task's second step once with the right click and ``decoys`` times clicking one wrong
    icon of the middle page that leads elsewhere: the policy can sample the right click, greedily it should not."""
    from gelab import format as fmt
    from gelab.data.datasets import Source

    lp = LearningParams()
    problem = fixed_problem(lp, nav)
    rows = ambiguous_rows(problem, Source.of(base_env), 0, lp.decoys)
    assert len(rows) == len(problem.two_click) * (1 + lp.decoys) and lp.decoys == 2
    for task in problem.two_click:
        group = [r for r in rows if r["id"].split("/")[0] == f"{task.id}#1"]
        right, decoys = group[0], group[1:]
        assert right["id"] == f"{task.id}#1" and [r["id"] for r in decoys] == [f"{task.id}#1/decoy1", f"{task.id}#1/decoy2"]
        assert len({r["messages"][1]["content"] for r in group}) == 1 and "History: step1: " in right["messages"][1]["content"]
        (_, _), (middle, action) = nav.shortest_path(task.start, task.target)
        assert right["page"] == middle and fmt.parse_action(right["solution"]).name == action
        name = problem.decoys[task]
        assert name not in nav.optimal_actions(middle, task.target) and nav.edges[middle][name] != task.target
        for r in decoys:
            click = fmt.parse_action(r["solution"])
            assert click.name == name and r["messages"][-1]["content"] == r["solution"]
            hit = nav.hit(middle, click.x, click.y)
            assert hit is not None and hit.name == name  # the decoy click lands on its icon: a wrong page, not a miss
    assert rows == ambiguous_rows(problem, Source.of(base_env), 0, lp.decoys)  # seeded
    assert ambiguous_rows(fixed_problem(LearningParams(decoys=0), nav), Source.of(base_env), 0, 0) == []


def test_st_rl_prompts_are_the_second_steps_of_the_two_click_tasks(nav: Navigator, base_env: Environment) -> None:
    from gelab.data.datasets import Source

    problem = fixed_problem(LearningParams(), nav)
    rows = st_rl_rows(problem, Source.of(base_env), 0)
    assert [r["id"] for r in rows] == [f"{t.id}#1" for t in problem.two_click]
    assert all(r["action"] == "click" and "History: step1: " in r["messages"][1]["content"] for r in rows)
    assert all(r["messages"][-1]["role"] == "user" for r in rows)  # the policy writes the answer


def test_too_few_sft_rows_for_the_tasks_is_refused(nav: Navigator) -> None:
    from gelab.errors import InputError

    lp = LearningParams(sft=LearningSftParams(rows=4))
    with pytest.raises(InputError, match=r"learning\.sft\.rows: the 8 tasks need more than 4 rows"):
        fixed_problem(lp, nav)


def test_the_checks_train_through_the_profiles_own_code_path(tmp_path: Path) -> None:
    """Only data, steps and a few hyper-parameters differ from the profile: same model, launch, ZeRO-3, plugin."""
    tp = TrainParams.load(REPO / "params.yaml")
    lp = load_section(REPO / "params.yaml", "learning", LearningParams)
    data = tmp_path / "rows.jsonl"
    sft = stage_params(tp, lp, "sft", data, 64)
    assert (sft.model.base, sft.launch, sft.sft.extra_args) == (tp.model.base, tp.launch, tp.sft.extra_args)
    assert sft.model.max_pixels == lp.max_pixels
    cmd = sft_command(sft, sft.model.base, str(data), "run")
    assert cmd[:2] == ["swift", "sft"] and cmd[cmd.index("--deepspeed") + 1] == tp.launch.deepspeed
    assert cmd[cmd.index("--max_steps") + 1] == str(lp.sft.max_steps)

    st = stage_params(tp, lp, "st_rl", data, 8)
    assert st.st_rl.per_device_batch == 8 * lp.st_rl.num_generations  # one step answers every prompt
    assert st.st_rl.rewards == tp.st_rl.rewards
    mt = stage_params(tp, lp, "mt_rl", data, 12)
    assert (mt.mt_rl.max_turns, mt.mt_rl.rewards) == (lp.mt_rl.max_turns, tp.mt_rl.rewards)
    cmd = rl_command(mt, "mt_rl", "init", str(data), "run")
    assert "gelab_nav" in cmd and cmd[cmd.index("--external_plugins") + 1].endswith("swift_plugin.py")


@pytest.mark.parametrize("text,message", [
    ("learning:\n  st_rl: {max_turns: 2}\n", r"learning\.st_rl\.max_turns: ST-RL is single-turn"),
    ("learning:\n  mt_rl: {max_turns: 2}\n", r"learning\.mt_rl\.max_turns: two-click tasks need 3 turns"),
    ("learning:\n  sft: {threshold: 101}\n", r"learning\.sft\.threshold: must be <= 100"),
    ("learning:\n  subtree: five\n", r"learning\.subtree: must be matching"),
])
def test_bad_learning_params_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(ParamsError, match=message):
        load_section(tmp_path / "p.yaml", "learning", LearningParams)


# --- the check end to end (slow: one short ms-swift run and two greedy evaluations) --------------------


@pytest.mark.slow
def test_the_sft_check_writes_its_result_and_the_report_shows_it(base_env: Environment, data_dir: Path,
                                                                  tmp_path: Path, run_cli) -> None:
    """``gelab check learning --stage sft`` through ms-swift with 3 steps: before/after/threshold/passed
    are written, the rule is applied (3 steps do not memorise 64 rows), the report shows the row."""
    from gelab.report.learning import learning_section
    from gelab.train.tiny_model import build_tiny_model

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    tiny = load_section(REPO / "params.yaml", "model", ModelParams).tiny
    build_tiny_model(tiny, [data_dir / "sft.jsonl"], tmp_path / "tiny")
    raw["model"]["base"] = str(tmp_path / "tiny")
    raw["learning"]["sft"]["max_steps"] = 3
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    metrics = tmp_path / "metrics" / "learning"
    result = run_cli("check", "learning", "--params", params, "--env", base_env.root, "--sft-data",
                     data_dir / "sft.jsonl", "--out", tmp_path / "learning", "--metrics", metrics, "--stage", "sft")
    found = json.loads((metrics / "sft.json").read_text())
    assert result.returncode == 1 and "sft did not learn" in result.stderr  # a failed check fails the command
    assert found["rows"] == 64 and found["train"]["steps"] == 3 and found["threshold"] == 95.0
    assert found["before"] == found["detail"]["before"]["accuracy"] < 95.0
    assert found["passed"] is (found["after"] >= 95.0) is False
    section = learning_section(tmp_path / "metrics")
    assert "| SFT | static step accuracy" in section and "| ST-RL | not run |" in section and "**no**" in section


def _result(stage: str, **changes: object) -> dict:
    r = {"stage": stage, "measure": "m", "before": 10.0, "after": 99.0, "threshold": 95.0, "passed": True,
         "rule": "after >= threshold", "wall_time_s": 12.3}
    r.update(changes)
    return r


def test_the_report_section_lists_each_check_and_the_ones_not_run(tmp_path: Path) -> None:
    from gelab.report.learning import learning_section

    assert learning_section(tmp_path) == ""  # no check has run: no section
    (tmp_path / "learning").mkdir()
    (tmp_path / "learning" / "sft.json").write_text(json.dumps(_result("sft")))
    (tmp_path / "learning" / "mt_rl.json").write_text(json.dumps(_result("mt_rl", after=12.5, passed=False)))
    lines = learning_section(tmp_path).splitlines()
    assert "| SFT | m | 10.00 | 99.00 | 95 | after >= threshold | yes | 12 |" in lines
    assert "| ST-RL | not run | | | | | | |" in lines
    assert "| MT-RL | m | 10.00 | 12.50 | 95 | after >= threshold | **no** | 12 |" in lines


@pytest.mark.parametrize("changes,message", [
    ({"passed": "yes"}, r"sft\.json: passed: not true or false"),
    ({"after": float("nan")}, r"sft\.json: after: not a finite number"),
    ({"before": None}, r"sft\.json: before: not a finite number"),
])
def test_a_broken_check_result_is_named(tmp_path: Path, changes: dict, message: str) -> None:
    from gelab.report.learning import learning_section
    from gelab.report.schema import MetricsError

    (tmp_path / "learning").mkdir()
    (tmp_path / "learning" / "sft.json").write_text(json.dumps(_result("sft", **changes)))
    with pytest.raises(MetricsError, match=message):
        learning_section(tmp_path)
    (tmp_path / "learning" / "sft.json").write_text(json.dumps({k: v for k, v in _result("sft").items() if k != "after"}))
    with pytest.raises(MetricsError, match=r"sft\.json: missing key 'after'"):
        learning_section(tmp_path)
