"""Interactive benchmark: batched episodes over a task list, k attempts per task (SPEC §5).

An episode starts on the task's start page with ``History: Null``. Each turn the policy answers the
current page and the history (written by :mod:`gelab.format`, exactly as in training):

- a click inside an element that leads somewhere moves there and appends ``click NAME icon on PAGE``
  (NAME = the element actually hit) to the history;
- a click that hits nothing, or an element that leads nowhere, changes nothing and counts as a miss;
- unparseable text changes nothing and counts as invalid;
- ``complete`` ends the episode; so does reaching ``max_steps`` turns.

**Strict** success: ``complete`` said on the target. **Lenient**: the target was reached at any
point. **Pass@1** = mean success over the k attempts of a task, **Pass@k** = at least one success;
both averaged over tasks, overall and per path length, in percent.

All live episodes advance together: each round gathers every live episode's observation and makes
one batched policy call (in chunks of ``batch_size`` when given). Every step is appended to a
trajectory log as it happens; a restarted run replays the logged outputs to rebuild each episode and
continues where it stopped, so the final metrics equal those of an uninterrupted run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from gelab import format as fmt
from gelab.evaluation.policies import Observation, Policy
from gelab.evaluation.records import AppendLog
from gelab.evaluation.static import percent
from gelab.navigation import Navigator
from gelab.tasks import Task


@dataclass
class Episode:
    task: Task
    attempt: int
    page: str
    history: list[fmt.HistoryStep] = field(default_factory=list)
    history_text: str = "Null"
    steps: int = 0
    misses: int = 0
    invalid: int = 0
    reached: bool = False  # the target was reached at some point
    completed: bool = False  # the agent said complete
    done: bool = False

    @property
    def key(self) -> str:
        return f"{self.task.id}@{self.attempt}"

    @property
    def strict(self) -> bool:
        return self.completed and self.page == self.task.target

    def observation(self, image_of: Callable[[str], str]) -> Observation:
        prompt = fmt.instruction_text(self.task.start, self.task.target, self.history_text)
        return Observation(self.key, self.steps, self.task.start, self.task.target, self.page,
                           tuple(self.history), prompt, image_of(self.page))


def _safe_text(output: object) -> str:
    """The raw output as loggable text (non-text outputs are logged by their repr)."""
    if not isinstance(output, str):
        return repr(output)
    return output.encode("utf-8", "backslashreplace").decode("utf-8")


def apply_output(nav: Navigator, ep: Episode, output: object, prompt: str, max_steps: int) -> dict[str, Any]:
    """Advance ``ep`` by one turn with the policy's raw ``output``; returns the trajectory row."""
    page = ep.page
    action = fmt.parse_action(output)
    row: dict[str, Any] = {"episode": ep.key, "task": ep.task.id, "attempt": ep.attempt, "step": ep.steps,
                           "page": page, "prompt": prompt, "output": _safe_text(output), "action": action.kind,
                           "click": None, "claimed": None, "hit": None, "new_page": page, "error": None}
    if isinstance(action, fmt.Complete):
        ep.completed = ep.done = True
    elif isinstance(action, fmt.Click):
        row["click"], row["claimed"] = [action.x, action.y], action.name
        spot = nav.hit(page, action.x, action.y)
        if spot is not None:
            row["hit"] = spot.name
        if spot is not None and spot.target is not None:
            ep.history.append(fmt.HistoryStep(spot.name, page))
            entry = fmt.history_entry(len(ep.history), spot.name, page)
            ep.history_text = entry if ep.history_text == "Null" else f"{ep.history_text} {entry}"
            ep.page = row["new_page"] = spot.target
            ep.reached = ep.reached or ep.page == ep.task.target
        else:
            ep.misses += 1
            row["error"] = "miss" if spot is None else f"{spot.name} leads nowhere"
    else:
        ep.invalid += 1
        row["error"] = action.reason
    ep.steps += 1
    if ep.steps >= max_steps:
        ep.done = True
    row["done"] = ep.done
    return row


def _resume(nav: Navigator, episodes: dict[str, Episode], rows: list[dict[str, Any]], where: str,
            max_steps: int) -> None:
    """Replay logged outputs; a row that does not continue its episode exactly is an error."""
    for i, row in enumerate(rows, start=1):
        ep = episodes.get(row.get("episode"))  # type: ignore[arg-type]
        if ep is None:
            raise ValueError(f"{where}: row {i}: episode {row.get('episode')!r} is not one of this run's")
        if ep.done or row.get("step") != ep.steps:
            raise ValueError(f"{where}: row {i}: step {row.get('step')} of {ep.key} out of order "
                             f"(expected {'none, episode ended' if ep.done else ep.steps})")
        prompt = fmt.instruction_text(ep.task.start, ep.task.target, ep.history_text)
        replay = apply_output(nav, ep, row["output"], prompt, max_steps)
        if replay["new_page"] != row.get("new_page"):
            raise ValueError(f"{where}: row {i}: {ep.key} step {row['step']} replays to {replay['new_page']}, "
                             f"log says {row.get('new_page')} (different environment?)")


def run_episodes(nav: Navigator, tasks: Sequence[Task], policy: Policy, *, attempts: int, max_steps: int,
                 image_of: Callable[[str], str], log: AppendLog | None = None,
                 batch_size: int | None = None, progress: Callable[[int, int], None] | None = None) -> list[Episode]:
    """Run (or finish) ``attempts`` episodes of every task; returns them in (task, attempt) order."""
    if attempts < 1 or max_steps < 1:
        raise ValueError(f"attempts and max_steps must be at least 1 (got {attempts}, {max_steps})")
    episodes = [Episode(t, a, t.start) for t in tasks for a in range(attempts)]
    by_key = {e.key: e for e in episodes}
    if len(by_key) != len(episodes):
        raise ValueError("the task list holds duplicated tasks")
    if log is not None and log.rows:
        _resume(nav, by_key, log.rows, str(log.path), max_steps)
    live = [e for e in episodes if not e.done]
    while live:
        chunk_size = batch_size or len(live)
        for lo in range(0, len(live), chunk_size):
            chunk = live[lo:lo + chunk_size]
            observations = [e.observation(image_of) for e in chunk]
            outputs = policy.act(observations)
            if len(outputs) != len(chunk):
                raise RuntimeError(f"policy {policy.name} returned {len(outputs)} answers for {len(chunk)} observations")
            rows = [apply_output(nav, e, out, o.prompt, max_steps) for e, o, out in zip(chunk, observations, outputs)]
            if log is not None:
                log.write(rows)
        live = [e for e in live if not e.done]
        if progress is not None:
            progress(len(episodes) - len(live), len(episodes))
    return episodes


def _pass_block(per_task: dict[str, tuple[int, list[bool]]]) -> dict[str, Any]:
    def summary(items: list[list[bool]]) -> tuple[float | None, float | None]:
        if not items:
            return None, None
        p1 = 100.0 * sum(sum(s) / len(s) for s in items) / len(items)
        pk = percent(sum(any(s) for s in items), len(items))
        return p1, pk

    everything = [s for _, s in per_task.values()]
    p1, pk = summary(everything)
    per_path = {}
    for length in sorted({n for n, _ in per_task.values()}):
        items = [s for n, s in per_task.values() if n == length]
        lp1, lpk = summary(items)
        per_path[str(length)] = {"tasks": len(items), "pass@1": lp1, "pass@k": lpk}
    return {"pass@1": p1, "pass@k": pk, "per_path": per_path}


def interactive_metrics(episodes: Sequence[Episode], attempts: int, max_steps: int) -> dict[str, Any]:
    """The metrics JSON: ``k``, ``strict`` and ``lenient`` blocks, plus step, miss and invalid counts."""
    strict: dict[str, tuple[int, list[bool]]] = {}
    lenient: dict[str, tuple[int, list[bool]]] = {}
    for e in episodes:
        strict.setdefault(e.task.id, (e.task.path_length, []))[1].append(e.strict)
        lenient.setdefault(e.task.id, (e.task.path_length, []))[1].append(e.reached or e.strict)
    steps = sum(e.steps for e in episodes)
    return {
        "k": attempts,
        "tasks": len(strict),
        "episodes": len(episodes),
        "max_steps": max_steps,
        "strict": _pass_block(strict),
        "lenient": _pass_block(lenient),
        "steps": steps,
        "misses": sum(e.misses for e in episodes),
        "invalid": sum(e.invalid for e in episodes),
        "completed": sum(e.completed for e in episodes),
        "mean_steps": steps / len(episodes) if episodes else None,
    }
