"""Interactive benchmark: exact scores of reference policies, batching, strict vs lenient, resuming."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import msgspec
import pytest
from evalkit import TEST_SUBTREE, env_base, navigator, tasks, write_env_folder

from gelab import format as fmt
from gelab.env.structure import ROOT_PAGE
from gelab.eval.interactive import interactive_metrics, run_episodes
from gelab.eval.policies import Observation, OraclePolicy, reference_policy
from gelab.eval.records import AppendLog, read_log
from gelab.eval.schema import Interactive, to_json

SRC = Path(__file__).resolve().parents[1] / "src"


def image_of(page: str) -> str:
    return f"env/model_images/{page}.png"


def run(policy, task_list=None, attempts: int = 2, max_steps: int = 12, log=None, batch_size=None):
    task_list = tasks() if task_list is None else task_list
    eps = run_episodes(navigator(), task_list, policy, attempts=attempts, max_steps=max_steps, image_of=image_of,
                       log=log, batch_size=batch_size)
    return eps, interactive_metrics(eps, attempts, max_steps)


def test_oracle_is_perfect_everywhere_in_shortest_steps() -> None:
    eps, m = run(OraclePolicy(navigator()))
    assert m["k"] == 2 and m["tasks"] == 2162
    for mode in ("strict", "lenient"):
        assert m[mode]["pass@1"] == m[mode]["pass@k"] == 100.0
        assert {v["pass@1"] for v in m[mode]["per_path"].values()} == {100.0}
    assert [m["strict"]["per_path"][str(n)]["tasks"] for n in range(1, 8)] == [137, 147, 222, 324, 492, 456, 384]
    assert all(e.episode.steps == e.episode.task.path_length + 1 for e in eps)  # shortest path, then complete
    assert m["misses"] == m["invalid"] == 0
    # the file is the report's Struct, key for key and in order (gelab.eval.schema)
    assert json.dumps(to_json(msgspec.convert(m, Interactive, strict=True))) == json.dumps(m)


def test_home_then_complete_exact_values_derived_from_the_environment() -> None:
    structure, _ = env_base()
    nav = navigator()
    task_list = tasks()
    has_home = {p: "home" in nav.edges[p] for p in structure.pages}
    # step 0 clicks the home position: moves to page_0 where the page has home, else misses; step 1 completes.
    strict = {t.id for t in task_list if has_home[t.start] and t.target == ROOT_PAGE}
    # lenient, derived apart from the strict rule: the pages visited are the start and where home leads
    visited = {t.id: {t.start, *([nav.edges[t.start]["home"]] if has_home[t.start] else [])} for t in task_list}
    reached = {t.id for t in task_list if t.target in visited[t.id]}
    eps, m = run(reference_policy("home-then-complete", nav), attempts=3)
    assert len(strict) == 45  # 45 pages of depth >= 2 in the subtree
    by_len = {}
    for t in task_list:
        by_len.setdefault(t.path_length, []).append(t.id in strict)
    assert m["strict"]["pass@1"] == pytest.approx(100 * len(strict) / len(task_list))
    assert m["strict"]["pass@k"] == pytest.approx(100 * len(strict) / len(task_list))
    assert m["lenient"]["pass@1"] == pytest.approx(100 * len(reached) / len(task_list))
    for n, ok in by_len.items():
        assert m["strict"]["per_path"][str(n)]["pass@1"] == pytest.approx(100 * sum(ok) / len(ok))
    assert m["misses"] == 3 * sum(not has_home[t.start] for t in task_list)
    assert all(e.episode.steps == 2 for e in eps)


class NeverComplete:
    """The oracle's clicks, but ``complete`` replaced by a click on ``back``: reaches, never completes."""

    name = "never-complete"

    def __init__(self) -> None:
        self.oracle = OraclePolicy(navigator())

    def act(self, observations: Sequence[Observation]) -> list[str]:
        out = self.oracle.act(observations)
        return [fmt.click_text("back", o.page, 136, 62) if a == fmt.complete_text() else a
                for o, a in zip(observations, out)]


def test_lenient_counts_reaching_strict_needs_complete() -> None:
    eps, m = run(NeverComplete(), attempts=1, max_steps=12)
    assert m["lenient"]["pass@1"] == 100.0  # every target is reached on the way
    assert m["strict"]["pass@1"] == 0.0  # complete is never said
    assert m["completed"] == 0 and all(e.episode.steps == 12 for e in eps)  # the cap ends every episode


def test_step_cap_and_invalid_outputs() -> None:
    class Babble:
        name = "babble"

        def act(self, observations: Sequence[Observation]) -> list[str]:
            # empty, binary garbage, huge, a click outside the screen: all invalid, nothing moves
            table = ["", "\x00\x01", "x" * 10_000, "Action: click(5000,5000)"]
            return [table[o.step % 4] for o in observations]

    eps, m = run(Babble(), task_list=tasks()[:10], attempts=1, max_steps=7)
    assert all(e.episode.steps == 7 and e.episode.page == e.episode.task.start for e in eps)
    assert m["invalid"] == 70 and m["misses"] == 0
    assert m["strict"]["pass@1"] == m["lenient"]["pass@1"] == 0.0


def test_random_policy_is_seeded_and_independent_of_batching() -> None:
    nav = navigator()
    _, all_at_once = run(reference_policy("random", nav, seed=3), attempts=3)
    _, chunked = run(reference_policy("random", nav, seed=3), attempts=3, batch_size=97)
    _, other_seed = run(reference_policy("random", nav, seed=4), attempts=3)
    assert all_at_once == chunked
    assert all_at_once != other_seed
    assert all_at_once["lenient"]["pass@1"] > all_at_once["strict"]["pass@1"] > 0
    assert all_at_once["strict"]["pass@k"] > all_at_once["strict"]["pass@1"]


def test_history_is_written_as_in_training() -> None:
    task = next(t for t in tasks() if t.path_length == 3)
    log_rows: list[dict] = []

    class Recorder:  # an in-memory stand-in for AppendLog
        path, rows = Path("mem"), []

        def write(self, rows) -> None:
            log_rows.extend(rows)

    run(OraclePolicy(navigator()), task_list=[task], attempts=1, log=Recorder())
    prompts = [r["prompt"] for r in log_rows]
    path = navigator().shortest_path(task.start, task.target)
    expected = [fmt.navigation_prompt(task.start, task.target, [fmt.HistoryStep(a, p) for p, a in path[:k]],
                                      image_placeholder=False) for k in range(len(path) + 1)]
    assert prompts == expected
    assert [r["hit"] for r in log_rows] == [a for _, a in path] + [None]
    assert [r["new_page"] for r in log_rows][-1] == task.target


def test_resume_replays_the_log_and_tolerates_a_cut_line(tmp_path: Path) -> None:
    nav = navigator()
    task_list = tasks()[:300]
    _, expected = run(reference_policy("random", nav, seed=1), task_list=task_list, attempts=3)
    log_path = tmp_path / "traj.jsonl"
    with AppendLog(log_path, resume=False) as log:
        run(reference_policy("random", nav, seed=1), task_list=task_list, attempts=3, log=log, batch_size=50)
    lines = log_path.read_bytes().split(b"\n")
    cut = len(lines) // 3
    log_path.write_bytes(b"\n".join(lines[:cut]) + b"\n" + lines[cut][:17])  # killed in the middle of a line
    with AppendLog(log_path) as log:
        _, resumed = run(reference_policy("random", nav, seed=1), task_list=task_list, attempts=3, log=log)
    assert resumed == expected
    rows, _ = read_log(log_path)
    keys = [(r["episode"], r["step"]) for r in rows]
    assert len(keys) == len(set(keys)) == expected["steps"]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "gelab.cli", "eval", "interactive", *args]


@pytest.mark.slow
def test_cli_run_killed_midway_then_restarted_gives_the_same_metrics(tmp_path: Path) -> None:
    env = write_env_folder(tmp_path / "env")
    envvars = {**os.environ, "PYTHONPATH": str(SRC)}
    common = ["--env", str(env), "--subtree", TEST_SUBTREE, "--policy", "random", "--attempts", "5",
              "--batch-size", "40", "--seed", "11"]
    whole = tmp_path / "whole.json"
    subprocess.run(_cli(*common, "--out", str(whole)), check=True, env=envvars, capture_output=True)

    out = tmp_path / "killed.json"
    traj = tmp_path / "killed.trajectories.jsonl"
    proc = subprocess.Popen(_cli(*common, "--out", str(out)), env=envvars, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (not traj.exists() or traj.stat().st_size < 2_000_000):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "the run finished before it could be killed"
    subprocess.run(_cli(*common, "--out", str(out)), check=True, env=envvars, capture_output=True)
    assert json.loads(out.read_text()) == json.loads(whole.read_text())
    rows, _ = read_log(traj)
    whole_rows, _ = read_log(tmp_path / "whole.trajectories.jsonl")
    key = lambda r: (r["episode"], r["step"])  # noqa: E731
    assert sorted(map(key, rows)) == sorted(map(key, whole_rows))
    assert len(set(map(key, rows))) == len(rows)


def test_resuming_someone_elses_log_is_refused(tmp_path: Path, run_cli) -> None:
    env = write_env_folder(tmp_path / "env")
    base = ["--env", str(env), "--subtree", TEST_SUBTREE, "--limit-tasks", "20", "--out", str(tmp_path / "m.json")]
    run_cli("eval", "interactive", *base, "--policy", "oracle", check=True)
    res = run_cli("eval", "interactive", *base, "--policy", "random")
    assert res.returncode == 2 and "written by another run (policy: 'oracle' there, 'random' now)" in res.stderr


@pytest.mark.parametrize("change,message", [
    ({"target": "page_999"}, "row 3: 'page_999' is not a page of this environment"),  # before: a KeyError traceback
    ({"path_length": 7}, "row 3: path_length 7, but"),  # before: scored in the wrong per-length bucket
    ({"target": "page_7"}, "row 3: page_7->page_7"),  # start == target (the task of row 3 starts on page_7)
    ({"subtree": "page_1"}, "is not a task of subtree 'page_1'"),
])
def test_a_task_file_that_does_not_fit_the_environment_is_refused(tmp_path: Path, run_cli, change: dict,
                                                                    message: str) -> None:
    env = write_env_folder(tmp_path / "env")
    rows = [t.to_json() for t in tasks()[:5]]
    rows[2].update(change)
    if change.get("target") == "page_7":
        rows[2]["start"] = "page_7"
        message = "row 3: start and target are both page_7"
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run_cli("eval", "interactive", "--policy", "oracle", "--env", env, "--tasks", path,
                     "--out", tmp_path / "m.json")
    assert result.returncode == 2 and message in result.stderr and str(path) in result.stderr, result.stderr
