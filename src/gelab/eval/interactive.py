"""Interactive benchmark: batched episodes over a task list, k attempts per task (SPEC §5).

Each attempt is one episode of the engine :mod:`gelab.tasks.episode`, which owns the turn rule (hits,
misses, invalid outputs, ``complete``, the ``max_steps`` cap) and the prompt the policy is shown.

**Strict** success: ``complete`` said on the target. **Lenient**: the target was reached at any
point. **Pass@1** = mean success over the k attempts of a task, **Pass@k** = at least one success;
both averaged over tasks, overall and per path length, in percent, each with a 95 % interval from a
seeded bootstrap over tasks (``pass@1_ci95``, ``pass@k_ci95``; :mod:`gelab.eval.intervals`).

All live episodes advance together: each round gathers every live episode's observation and makes
one batched policy call (in chunks of ``batch_size`` when given). Every step is appended to a
trajectory log as it happens; a restarted run replays the logged outputs to rebuild each episode and
continues where it stopped, so the final metrics equal those of an uninterrupted run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from gelab.env.navigation import Navigator
from gelab.errors import InputError, quote
from gelab.eval.intervals import bootstrap_mean
from gelab.eval.policies import Observation, Policy
from gelab.eval.records import AppendLog
from gelab.eval.schema import Interactive, PassBlock, PassPath, interval, to_json
from gelab.eval.static import percent
from gelab.tasks.episode import Episode
from gelab.tasks.universe import Task


@dataclass
class Attempt:
    """Attempt ``attempt`` (0-based) of a task: an engine episode plus its key in the logs."""

    episode: Episode
    attempt: int

    @property
    def key(self) -> str:
        return f"{self.episode.task.id}@{self.attempt}"

    def observation(self, image_of: Callable[[str], str]) -> Observation:
        ep = self.episode
        return Observation(self.key, ep.steps, ep.task.start, ep.task.target, ep.page, tuple(ep.history),
                           ep.prompt(), image_of(ep.page))


def _safe_text(output: object) -> str:
    """The raw output as loggable text (non-text outputs are logged by their repr)."""
    if not isinstance(output, str):
        return repr(output)
    return output.encode("utf-8", "backslashreplace").decode("utf-8")


def play_turn(nav: Navigator, run: Attempt, output: object, prompt: str) -> dict[str, Any]:
    """Advance ``run`` by one turn with the policy's raw ``output``; returns the trajectory row."""
    turn = run.episode.act(output, nav)
    return {"episode": run.key, "task": run.episode.task.id, "attempt": run.attempt, "step": turn.step,
            "page": turn.page, "prompt": prompt, "output": _safe_text(output), "action": turn.action,
            "click": list(turn.click) if turn.click else None, "claimed": turn.claimed, "hit": turn.hit,
            "new_page": turn.new_page, "error": turn.error, "done": turn.done}


def _resume(nav: Navigator, runs: dict[str, Attempt], rows: list[dict[str, Any]], where: str) -> None:
    """Replay logged outputs; a row that does not continue its episode exactly is an error."""
    for i, row in enumerate(rows, start=1):
        run = runs.get(row.get("episode"))  # type: ignore[arg-type]
        if run is None:
            raise InputError(f"{where}: row {i}: episode {quote(row.get('episode'))} is not one of this run's")
        ep = run.episode
        if ep.done or row.get("step") != ep.steps:
            raise InputError(f"{where}: row {i}: step {row.get('step')} of {run.key} out of order "
                             f"(expected {'none, episode ended' if ep.done else ep.steps})")
        replay = play_turn(nav, run, row["output"], ep.prompt())
        if replay["new_page"] != row.get("new_page"):
            raise InputError(f"{where}: row {i}: {run.key} step {row['step']} replays to {replay['new_page']}, "
                             f"log says {row.get('new_page')} (different environment?)")


def run_episodes(nav: Navigator, tasks: Sequence[Task], policy: Policy, *, attempts: int, max_steps: int,
                 image_of: Callable[[str], str], log: AppendLog | None = None,
                 batch_size: int | None = None, progress: Callable[[int, int], None] | None = None) -> list[Attempt]:
    """Run (or finish) ``attempts`` episodes of every task; returns them in (task, attempt) order."""
    if attempts < 1 or max_steps < 1:
        raise InputError(f"attempts and max_steps must be at least 1 (got {attempts}, {max_steps})")
    runs = [Attempt(Episode(t, max_steps), a) for t in tasks for a in range(attempts)]
    by_key = {r.key: r for r in runs}
    if len(by_key) != len(runs):
        raise InputError("the task list holds duplicated tasks")
    if log is not None and log.rows:
        _resume(nav, by_key, log.rows, str(log.path))
    live = [r for r in runs if not r.episode.done]
    while live:
        chunk_size = batch_size or len(live)
        for lo in range(0, len(live), chunk_size):
            chunk = live[lo:lo + chunk_size]
            observations = [r.observation(image_of) for r in chunk]
            outputs = policy.act(observations)
            if len(outputs) != len(chunk):
                raise RuntimeError(f"policy {policy.name} returned {len(outputs)} answers for {len(chunk)} observations")
            rows = [play_turn(nav, r, out, o.prompt) for r, o, out in zip(chunk, observations, outputs)]
            if log is not None:
                log.write(rows)
        live = [r for r in live if not r.episode.done]
        if progress is not None:
            progress(len(runs) - len(live), len(runs))
    return runs


def _pass_block(per_task: dict[str, tuple[int, list[bool]]], seed: int, mode: str) -> PassBlock:
    def rates(items: list[list[bool]], bucket: str) -> dict[str, Any]:
        one = [sum(s) / len(s) for s in items]  # each task's success rate over its attempts
        some = [float(any(s)) for s in items]
        return {"pass1": 100.0 * sum(one) / len(one) if items else None,
                "passk": percent(int(sum(some)), len(some)),
                "pass1_ci95": interval(bootstrap_mean(one, seed, mode, bucket, "pass@1")),
                "passk_ci95": interval(bootstrap_mean(some, seed, mode, bucket, "pass@k")),
                "pass1_n": len(items), "passk_n": len(items)}

    per_path = {}
    for length in sorted({n for n, _ in per_task.values()}):
        items = [s for n, s in per_task.values() if n == length]
        per_path[str(length)] = PassPath(tasks=len(items), **rates(items, str(length)))
    return PassBlock(**rates([s for _, s in per_task.values()], "all"), per_path=per_path)


def interactive_metrics(runs: Sequence[Attempt], attempts: int, max_steps: int, seed: int = 0) -> dict[str, Any]:
    """The metrics JSON, built as :class:`gelab.eval.schema.Interactive`: ``k``, ``strict`` and ``lenient``
    blocks, plus step, miss and invalid counts.

    Pass@1 and Pass@k carry 95 % intervals (``pass@1_ci95``, ...) from a bootstrap over tasks seeded
    by ``seed``, never narrower than the Wilson interval over those tasks, and the task count they are
    over (``pass@1_n``, ``pass@k_n``; :mod:`gelab.eval.intervals`).
    """
    strict: dict[str, tuple[int, list[bool]]] = {}
    lenient: dict[str, tuple[int, list[bool]]] = {}
    episodes = [r.episode for r in runs]
    for e in episodes:
        strict.setdefault(e.task.id, (e.task.path_length, []))[1].append(e.success)
        lenient.setdefault(e.task.id, (e.task.path_length, []))[1].append(e.reached or e.success)
    steps = sum(e.steps for e in episodes)
    return to_json(Interactive(
        k=attempts,
        tasks=len(strict),
        episodes=len(episodes),
        max_steps=max_steps,
        strict=_pass_block(strict, seed, "strict"),
        lenient=_pass_block(lenient, seed, "lenient"),
        steps=steps,
        misses=sum(e.misses for e in episodes),
        invalid=sum(e.invalid for e in episodes),
        completed=sum(e.said_complete for e in episodes),
        mean_steps=steps / len(episodes) if episodes else None,
    ))
