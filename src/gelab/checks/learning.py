"""Learning checks: each training stage moves its own objective on a small fixed problem.

The pipeline's embedded run is too short to show that a stage *learns*; these checks show it, one
per stage, through the same code path as the pipeline (:func:`gelab.train.training.run_stage`:
stock ms-swift, DeepSpeed ZeRO-3, the gelab plugin and scheduler) on the profile's own model and
launch settings. Only the data, the number of steps and a few hyper-parameters differ; they are in
the ``learning`` section of the params file.

The fixed problem (:func:`fixed_problem`) lives in one RL subtree (``learning.subtree``):
``learning.tasks`` two-click *RL tasks* drawn by a seeded shuffle. SFT memorises the first step of
each RL task, its second edge as a one-click task (click, then complete), the whole path of as many
*other* two-click tasks (a click after a click), and grounding rows of the content icons clicked.
The second step of an RL task (on the middle page, one click in the history) is left *ambiguous*:
SFT sees its right click once and ``learning.decoys`` clicks on another icon of the same page, so
the SFT policy samples the right click about 1 time in ``1 + decoys`` and greedily clicks the decoy.
Only the reward tells the answers apart: that is what the RL stages must find. (Without the right
answer among the samples there is nothing for GRPO to reinforce: docs/training.md measured 0 right
second clicks in 48 samples when SFT never showed them.) ``learning.one_click_tasks`` of the second
edges join the MT-RL tasks.

- **SFT** from the random-init base model on those ``learning.sft.rows`` rows (the first steps and
  path rows written by the data builder, the edge and grounding rows read from ``sft.jsonl``) and the
  ambiguous second steps. Objective: static step accuracy on exactly the ``learning.sft.rows`` rows
  with one answer (greedy, hf backend, :mod:`gelab.eval.static` scoring) >= the threshold. *before* =
  the base model, *after* = the SFT checkpoint.
- **ST-RL** from that SFT checkpoint on the second-step prompts of the RL tasks (one GRPO step sees
  every prompt once). Objective: the mean total reward (of 4) rises by >= the threshold between the
  first and the last logged step, and the coordinate reward is non-zero at the end.
- **MT-RL** from that SFT checkpoint on the RL tasks (environment in the loop). Objective: strict
  success of greedy episodes (:func:`gelab.eval.interactive.run_episodes`, hf backend, temperature
  0) on the same tasks rises by >= the threshold (points). *before* = the SFT checkpoint.

Each check writes ``METRICS/<stage>.json`` with ``before``, ``after``, ``threshold`` and ``passed``
(plus what was measured and how long it took); the training runs and predictions stay under ``OUT``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from msgspec.structs import replace

from gelab import format as fmt
from gelab.data.datasets import Source, random_point as _point, step_rows
from gelab.data.datasets import mt_rl_rows as task_rows
from gelab.env.envdir import load_environment
from gelab.env.navigation import BACK, HOME, Navigator
from gelab.errors import InputError, quote
from gelab.eval.backends import Sampling, make_backend
from gelab.eval.interactive import interactive_metrics, run_episodes
from gelab.eval.policies import ModelPolicy
from gelab.eval.records import AppendLog
from gelab.eval.static import load_predictions, static_metrics, step_correct
from gelab.eval.static_run import predict
from gelab.io import atomic_write_bytes, atomic_write_json, jsonl_bytes, read_jsonl
from gelab.params import LearningParams, as_dict, load_section
from gelab.seeding import derived_rng
from gelab.tasks.universe import Task, task_universe
from gelab.train.config import TrainParams
from gelab.train.logs import read_log, step_rows as logged_steps
from gelab.train.training import run_stage

STAGES = ("sft", "st_rl", "mt_rl")


@dataclass(frozen=True)
class Problem:
    """The fixed problem of the checks (see the module docstring)."""

    two_click: list[Task]  # the RL tasks: SFT sees their first step and their second edge, never the second step
    one_click: list[Task]  # the MT-RL tasks of one click (second edges of the above)
    edges: list[Task]  # the one-click tasks (second edges of the RL tasks) whose rows SFT memorises
    paths: list[Task]  # other two-click tasks whose whole path SFT memorises (a click after a click)
    icons: list[str]  # content icons with one grounding row each
    decoys: dict[Task, str]  # RL task -> the icon its ambiguous second step's decoy rows click (empty: no such rows)

    @property
    def mt_rl_tasks(self) -> list[Task]:
        return [*self.one_click, *self.two_click]

    @property
    def rows(self) -> int:
        """SFT rows: one first step per RL task, two per edge, three per path task, one per icon."""
        return len(self.two_click) + 2 * len(self.edges) + 3 * len(self.paths) + len(self.icons)


def _edges(task: Task, nav: Navigator) -> list[Task]:
    """The one-click tasks a task's labelled shortest path is made of."""
    return [Task(page, nav.edges[page][action], task.subtree, 1) for page, action in nav.shortest_path(task.start, task.target)]


def _content_icons(tasks: list[Task], nav: Navigator) -> list[str]:
    """The content icons clicked on the tasks' labelled shortest paths, in first-use order."""
    names = (action for t in tasks for _, action in nav.shortest_path(t.start, t.target))
    return list(dict.fromkeys(n for n in names if n not in (BACK, HOME)))


def _decoy(task: Task, nav: Navigator) -> str:
    """The icon the decoy rows of a two-click task's second step click: the first element of the middle
    page that leads somewhere but not towards the target (a content icon if there is one)."""
    (_, _), (middle, _) = nav.shortest_path(task.start, task.target)
    good = set(nav.optimal_actions(middle, task.target))
    wrong = [a for a in nav.edges[middle] if a not in good]
    content = [a for a in wrong if a not in (BACK, HOME)]
    if not wrong:
        raise InputError(f"learning.decoys: {middle} has no icon off the way to {task.target} to serve as a decoy")
    return (content or wrong)[0]


def fixed_problem(lp: LearningParams, nav: Navigator) -> Problem:
    """Two-click tasks of ``lp.subtree`` in a seeded order. The first ``lp.tasks`` are the RL tasks: SFT
    memorises their first step and their second edge (click, then complete), so each part is known
    but not the composition, a click after a click on the way to a farther target. Up to ``lp.tasks``
    further two-click tasks show that composition on other pages (their whole path). Grounding rows
    of the content icons clicked fill ``lp.sft.rows``."""
    universe = task_universe(nav.structure, lp.subtree, nav)
    candidates = [t for t in universe if t.path_length == 2]
    derived_rng(lp.seed, "learning", lp.subtree).shuffle(candidates)
    if len(candidates) < 2 * lp.tasks:
        raise InputError(f"learning.tasks: {lp.subtree} has {len(candidates)} two-click tasks, "
                         f"{2 * lp.tasks} needed (the RL tasks and as many path tasks)")
    rl = candidates[:lp.tasks]
    edges = list(dict.fromkeys(_edges(t, nav)[1] for t in rl))
    if len(rl) + 2 * len(edges) + len(_content_icons(rl, nav)) > lp.sft.rows:
        raise InputError(f"learning.sft.rows: the {lp.tasks} tasks need more than {lp.sft.rows} rows "
                         "(first step, second edge and one grounding row per content icon); ask for fewer "
                         "tasks or more rows")
    paths: list[Task] = []
    for task in candidates[lp.tasks:]:
        if len(paths) == lp.tasks:
            break
        trial = Problem(rl, [], edges, [*paths, task], _content_icons([*rl, *paths, task], nav), {})
        if trial.rows <= lp.sft.rows:
            paths.append(task)
    icons = _content_icons([*rl, *paths], nav)
    short = lp.sft.rows - Problem(rl, [], edges, paths, icons, {}).rows
    if short > 0:  # top up with grounding rows of further content icons of the subtree, in the seeded order
        more = [n for n in _content_icons(candidates, nav) if n not in icons]
        icons += more[:short]
    decoys = {t: _decoy(t, nav) for t in rl} if lp.decoys else {}
    problem = Problem(rl, edges[:lp.one_click_tasks], edges, paths, icons, decoys)
    if len(problem.one_click) < lp.one_click_tasks:
        raise InputError(f"learning.one_click_tasks: the tasks have {len(edges)} second edges, {lp.one_click_tasks} asked")
    if problem.rows != lp.sft.rows:
        raise InputError(f"learning.sft.rows: {lp.subtree} cannot fill exactly {lp.sft.rows} rows")
    return problem


def sft_rows(problem: Problem, sft_file: str | Path, source: Source, seed: int) -> list[dict[str, Any]]:
    """The memorised SFT rows of the problem: the RL tasks' first steps and the path tasks' steps (written by
    the data builder with the check's seed), each edge's click and complete rows and one grounding row per
    content icon (from the SFT data). Every prompt is distinct and has one answer."""
    by_id = {str(r["id"]): r for r in read_jsonl(sft_file)}
    edge_ids = [fmt.step_id(e.start, e.target, step, e.subtree) for e in problem.edges for step in (0, 1)]
    icon_ids = [fmt.icon_row_id("grounding", n, 0) for n in problem.icons]
    missing = [k for k in [*edge_ids, *icon_ids] if k not in by_id]
    if missing:
        raise InputError(f"{sft_file}: no row {quote(missing[0])} (SFT data with edge data of every subtree and "
                         "grounding rows, as `gelab data build` writes it)")
    rng = derived_rng(seed, "learning", "sft")
    first = [r for r in step_rows(source, problem.two_click, rng) if r["step"] == 0]
    paths = list(step_rows(source, problem.paths, rng))
    return [*first, *(by_id[k] for k in edge_ids), *paths, *(by_id[k] for k in icon_ids)]


def ambiguous_rows(problem: Problem, source: Source, seed: int, decoys: int) -> list[dict[str, Any]]:
    """The SFT rows of the RL tasks' second steps: the right click once, then ``decoys`` rows of the same
    prompt clicking the task's decoy icon (a point drawn in its box each); none when the problem has no
    decoys."""
    if not problem.decoys:
        return []
    rng = derived_rng(seed, "learning", "ambiguous")
    rows: list[dict[str, Any]] = []
    for task, name in problem.decoys.items():
        right = next(r for r in step_rows(source, [task], rng) if r["step"] == 1)
        page = right["page"]
        rows.append(right)
        for k in range(1, decoys + 1):
            x, y = _point(rng, source.nav.bbox_norm(page, name))
            answer = fmt.click_text(name, page, x, y)
            rows.append({**right, "id": f"{right['id']}/decoy{k}", "solution": answer,
                         "messages": [*right["messages"][:-1], {"role": "assistant", "content": answer}]})
    return rows


def st_rl_rows(problem: Problem, source: Source, seed: int) -> list[dict[str, Any]]:
    """ST-RL prompts: the second step of each RL task (on the middle page, one click in the history), the
    step SFT left ambiguous (:func:`ambiguous_rows`)."""
    rows = step_rows(source, problem.two_click, derived_rng(seed, "learning", "st_rl"), with_answer=False)
    return [r for r in rows if r["step"] == 1]


# --- the three checks -----------------------------------------------------------------------------


def _greedy_policy(model: str | Path, max_pixels: int) -> ModelPolicy:
    return ModelPolicy(make_backend("hf", Sampling(0.0, 1.0, 0, 64), model=str(model), max_pixels=max_pixels,
                                    device="cpu"))


def static_accuracy(model: str | Path, rows: list[dict[str, Any]], predictions: Path,
                    max_pixels: int) -> dict[str, Any]:
    """Greedy predictions of ``model`` on ``rows`` scored by the static scorer: every row counts once."""
    with AppendLog(predictions, resume=False) as log:  # a fresh file
        predict(rows, _greedy_policy(model, max_pixels), log, batch_size=32)
    records = load_predictions(predictions)
    right = sum(step_correct(r) for r in records)
    metrics = static_metrics(records)
    return {"accuracy": 100.0 * right / len(records), "rows": len(records), "right": right,
            "navigation_steps": metrics["overall"], "grounding": metrics.get("grounding"),
            "unparseable": metrics["unparseable"]}


def greedy_success(model: str | Path, tasks: list[Task], nav: Navigator, image_of: Callable[[str], str],
                   max_steps: int, max_pixels: int) -> dict[str, Any]:
    """Strict and lenient success (%) of one greedy episode per task, overall and per path length."""
    runs = run_episodes(nav, tasks, _greedy_policy(model, max_pixels), attempts=1, max_steps=max_steps,
                        image_of=image_of)
    m = interactive_metrics(runs, 1, max_steps)
    return {"success": m["strict"]["pass@1"], "reached": m["lenient"]["pass@1"],
            "per_path": {n: v["pass@1"] for n, v in m["strict"]["per_path"].items()},
            "misses": m["misses"], "invalid": m["invalid"], "mean_steps": m["mean_steps"]}


def stage_params(tp: TrainParams, lp: LearningParams, stage: str, dataset: Path, rows: int) -> TrainParams:
    """The profile's training params with the check's data, steps and hyper-parameters."""
    model = replace(tp.model, max_pixels=lp.max_pixels)
    if stage == "sft":
        c = lp.sft
        sft = replace(tp.sft, dataset=str(dataset), max_samples=0, max_steps=c.max_steps, learning_rate=c.learning_rate,
                      per_device_batch=c.per_device_batch, grad_accum=1, save_steps=max(1, c.max_steps // 4),
                      save_total_limit=1, logging_steps=max(1, c.max_steps // 20))  # saves: an interrupted run resumes
        return replace(tp, model=model, sft=sft)
    c = lp.st_rl if stage == "st_rl" else lp.mt_rl
    base = tp.stage(stage)
    prompts = rows  # every step answers every prompt (task) once
    rl = replace(base, dataset=str(dataset), max_samples=0, max_path_length=0, max_steps=c.max_steps,
                 learning_rate=c.learning_rate, num_generations=c.num_generations, temperature=c.temperature,
                 per_device_batch=prompts * c.num_generations, grad_accum=1, max_turns=c.max_turns,
                 save_steps=c.max_steps, save_total_limit=1, logging_steps=1)
    return replace(tp, model=model, **{stage: rl})


def _result(stage: str, measure: str, before: Any, after: Any, threshold: float, passed: bool,
            **extra: Any) -> dict[str, Any]:
    return {"stage": stage, "measure": measure, "before": before, "after": after, "threshold": threshold,
            "passed": bool(passed), **extra}


def _reward_steps(out: Path) -> list[dict[str, Any]]:
    """The logged GRPO steps of an RL run in ``out`` (those with a reward), in order."""
    return [r for r in logged_steps(read_log(out / "run")) if "reward" in r]


class LearningCheck:
    """The three checks over one params file; ``run(stage)`` trains, evaluates and writes the result."""

    def __init__(self, params_file: str | Path, out: str | Path, metrics_dir: str | Path,
                 env_dir: str = "build/env/base", sft_file: str = "build/data/sft.jsonl") -> None:
        self.params_file = str(params_file)
        self.tp = TrainParams.load(params_file)
        self.lp = load_section(params_file, "learning", LearningParams)
        self.out, self.metrics_dir = Path(out), Path(metrics_dir)
        self.env = load_environment(env_dir)
        self.source = Source.of(self.env, env_dir)
        self.nav = self.source.nav
        self.sft_file = sft_file
        self.problem = fixed_problem(self.lp, self.nav)

    def _image(self, page: str) -> str:
        return str(self.env.model_image_path(page))

    def _train(self, stage: str, init: str, rows: list[dict[str, Any]]) -> tuple[dict[str, Any], Path]:
        data = self.out / "data" / f"{stage}.jsonl"
        atomic_write_bytes(data, jsonl_bytes(rows))
        tp = stage_params(self.tp, self.lp, stage, data, len(rows))
        out = self.out / stage
        summary = run_stage(tp, stage, init, out, self.out / "train_metrics", params_file=self.params_file)
        return summary, out

    def sft_checkpoint(self) -> Path:
        return self.out / "sft" / "final"

    def run(self, stage: str) -> dict[str, Any]:
        start = time.perf_counter()
        result = getattr(self, f"_{stage}")()
        result["wall_time_s"] = round(time.perf_counter() - start, 1)
        result["params"] = {"learning": as_dict(self.lp), "params_file": self.params_file}
        atomic_write_json(self.metrics_dir / f"{stage}.json", result)
        return result

    def _sft(self) -> dict[str, Any]:
        rows = sft_rows(self.problem, self.sft_file, self.source, self.lp.seed)
        ambiguous = ambiguous_rows(self.problem, self.source, self.lp.seed, self.lp.decoys)
        mp, evals = self.lp.max_pixels, self.out / "eval"
        before = static_accuracy(self.tp.model.base, rows, evals / "sft_before.jsonl", mp)
        summary, out = self._train("sft", self.tp.model.base, [*rows, *ambiguous])
        after = static_accuracy(out / "final", rows, evals / "sft_after.jsonl", mp)
        threshold = self.lp.sft.threshold
        extra: dict[str, Any] = {}
        if ambiguous:  # the second steps RL must settle: greedy SFT should click the decoy there
            right = [r for r in ambiguous if "/decoy" not in r["id"]]
            extra["ambiguous"] = {"prompts": len(right), "rows": len(ambiguous),
                                  "greedy_right": static_accuracy(out / "final", right, evals / "sft_ambiguous.jsonl",
                                                                  mp)["right"]}
        return _result("sft", "static step accuracy (%) on the fixed SFT rows, greedy", before["accuracy"],
                       after["accuracy"], threshold, after["accuracy"] >= threshold,
                       rule="after >= threshold", rows=len(rows), detail={"before": before, "after": after},
                       train={k: summary.get(k) for k in ("steps", "first_loss", "final_loss", "wall_time_s")},
                       **extra)

    def _st_rl(self) -> dict[str, Any]:
        init = self._need_sft()
        rows = st_rl_rows(self.problem, self.source, self.lp.seed)
        summary, out = self._train("st_rl", str(init), rows)
        steps = _reward_steps(out)
        if not steps:
            raise InputError(f"{out}/run/logging.jsonl: no logged reward")
        first, last = steps[0], steps[-1]
        coord = "rewards/GelabCoord/mean"
        gain = last["reward"] - first["reward"]
        threshold = self.lp.st_rl.threshold
        return _result("st_rl", "mean total reward (of 4) on the fixed prompts, first vs last logged step",
                       first["reward"], last["reward"], threshold, gain >= threshold and last.get(coord, 0) > 0,
                       rule="after - before >= threshold and the coordinate reward is non-zero at the end",
                       gain=gain, prompts=len(rows),
                       terms={k.split("/")[1]: {"before": first.get(k), "after": last.get(k)}
                              for k in first if k.startswith("rewards/")},
                       reward_std=[r.get("reward_std") for r in steps], steps=[r["reward"] for r in steps],
                       train={k: summary.get(k) for k in ("steps", "wall_time_s")})

    def _mt_rl(self) -> dict[str, Any]:
        init = self._need_sft()
        tasks = self.problem.mt_rl_tasks
        rows = list(task_rows(self.source, tasks))  # trained on the tasks it is scored on
        turns, mp = self.lp.mt_rl.max_turns, self.lp.max_pixels
        before = greedy_success(init, tasks, self.nav, self._image, turns, mp)
        summary, out = self._train("mt_rl", str(init), rows)
        after = greedy_success(out / "final", tasks, self.nav, self._image, turns, mp)
        steps = _reward_steps(out)
        gain = after["success"] - before["success"]
        threshold = self.lp.mt_rl.threshold
        return _result("mt_rl", "strict success (%) of greedy episodes on the fixed tasks", before["success"],
                       after["success"], threshold, gain >= threshold, rule="after - before >= threshold",
                       gain=gain, tasks=[t.id for t in tasks], detail={"before": before, "after": after},
                       reward=[r["reward"] for r in steps], reward_std=[r.get("reward_std") for r in steps],
                       train={k: summary.get(k) for k in ("steps", "wall_time_s")})

    def _need_sft(self) -> Path:
        init = self.sft_checkpoint()
        if not (init / "config.json").exists():
            raise InputError(f"{init}: no SFT checkpoint of the learning check; run the sft check first")
        return init

