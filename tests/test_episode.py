"""One episode engine, three drivers: the same outputs give the same episode everywhere.

A scripted list of agent outputs — garbage, a miss, a click on an element that leads nowhere, hits
along the shortest path, an early ``complete`` and a ``complete`` on the target — is fed through the
Gymnasium env, the MT-RL scheduler (turn by turn, with stub response objects) and the interactive
harness. Pages, histories, counters and success flags must agree turn by turn; the scheduler and the
harness must show the policy byte-identical prompt text and the same single page image.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, Sequence

import pytest

from gelab import format as fmt
from gelab.env.envdir import Environment
from gelab.env.navigation import Navigator
from gelab.eval.interactive import interactive_metrics, run_episodes
from gelab.eval.policies import Observation
from gelab.tasks.episode import Episode, Turn
from gelab.tasks.gym_env import GuiNavEnv
from gelab.tasks.universe import Task

swift_plugin = pytest.importorskip("gelab.train.swift_plugin")

START, TARGET = "page_0", "page_19"  # two clicks apart in Env-Base (seed 0)


def _click_on(nav: Navigator, page: str, name: str) -> str:
    box = nav.bbox_norm(page, name)
    return fmt.click_text(name, page, (box[0] + box[2]) // 2, (box[1] + box[3]) // 2)


def scripts(env: Environment) -> dict[str, list[str]]:
    """Two episodes of the same task: one that succeeds after mistakes, one that says complete too early."""
    nav = Navigator(env.structure)
    (p0, first), (p1, second) = nav.shortest_path(START, TARGET)
    dead = next(h for h in nav.hotspots[p0] if h.target is None)  # a distractor of Env-Noise
    return {
        "succeeds": [
            "\x00 garbage",  # invalid
            fmt.click_text("nothing_1", p0, 500, 995),  # bottom margin: a miss
            _click_on(nav, p0, dead.name),  # an element that leads nowhere: a miss
            _click_on(nav, p0, first),  # hit: moves
            "Explain: typo\tAction: click(start_box='<|box_start|>(1200,5)<|box_end|>')",  # outside 0..1000: invalid
            _click_on(nav, p1, second),  # hit: reaches the target
            fmt.complete_text(),  # complete on the target: success
        ],
        "early": [_click_on(nav, p0, first), fmt.complete_text()],  # complete one page short: no success
    }


def _state(ep_page: str, history: str, misses: int, invalid: int, success: bool) -> tuple:
    return ep_page, history, misses, invalid, success


def through_gym(env: Environment, outputs: list[str]) -> tuple[list[tuple], list[str]]:
    gym_env = GuiNavEnv(env.root, obs_mode="text")
    obs, info = gym_env.reset(seed=0, options={"start": START, "target": TARGET})
    states, prompts = [], [obs["text"]]
    for out in outputs:
        obs, reward, terminated, _, info = gym_env.step(out)
        states.append(_state(info["page"], info["history"], info["misses"], info["invalid"], info["success"]))
        assert reward == float(info["success"])
        if terminated:
            break
        prompts.append(obs["text"])
    return states, prompts


def through_scheduler(env: Environment, outputs: list[str]) -> tuple[list[tuple], list[tuple[str, list[str]]]]:
    from swift.infer_engine.protocol import RolloutInferRequest

    scheduler = swift_plugin.GelabNavScheduler(max_turns=12)
    request = RolloutInferRequest(
        messages=[{"role": "system", "content": fmt.SYSTEM_PROMPT},
                  {"role": "user", "content": fmt.navigation_prompt(START, TARGET)}],
        images=[str(env.model_image_path(START))],
        data_dict={"start": START, "target": TARGET, "env_dir": str(env.root)})
    states, shown = [], []
    for turn, out in enumerate(outputs, start=1):
        assert [m["role"] for m in request.messages] == ["system", "user"] and len(request.images) == 1
        shown.append((fmt.strip_image_placeholder(request.messages[1]["content"]), list(request.images)))
        assert request.messages[1]["content"].count(fmt.IMAGE_PLACEHOLDER) == 1
        choice = SimpleNamespace(message=SimpleNamespace(content=out), finish_reason="stop", token_ids=None,
                                 logprobs=None)
        request.messages.append({"role": "assistant", "content": out})  # what ms-swift's rollout loop does
        result = asyncio.run(scheduler.on_turn_end(request, choice, turn))
        infos = result["rollout_infos"]
        ep = Episode.from_json(request.data_dict[swift_plugin.EPISODE_KEY])
        states.append(_state(infos["page"], fmt.history_text(ep.history), infos["misses"], infos["invalid"],
                             infos["success"]))
        assert infos["images"] == request.images and len(infos["images"]) == 1  # the trained sample's image
        if scheduler.check_finished(request, choice, turn):
            assert result["done"]
            break
        scheduler.step(request, choice, turn)
    return states, shown


class Scripted:
    """A policy that answers from the script and records what it was shown."""

    name = "scripted"

    def __init__(self, outputs: list[str]) -> None:
        self.outputs = outputs
        self.shown: list[Observation] = []

    def act(self, observations: Sequence[Observation]) -> list[str]:
        self.shown.extend(observations)
        return [self.outputs[o.step] for o in observations]


class Rows:
    """An in-memory trajectory log."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.path = "memory"

    def write(self, rows: list[dict[str, Any]]) -> None:
        self.rows.extend(rows)


def through_harness(env: Environment, outputs: list[str]) -> tuple[list[tuple], list[tuple[str, list[str]]], dict]:
    nav = Navigator(env.structure)
    policy, log = Scripted(outputs), Rows()
    task = Task(START, TARGET, "", nav.distances_to(TARGET)[START])
    runs = run_episodes(nav, [task], policy, attempts=1, max_steps=12, log=log,  # type: ignore[arg-type]
                        image_of=lambda page: str(env.model_image_path(page)))
    # replay the log's rows turn by turn through a fresh engine: the states after each turn
    replay, states = Episode(task), []
    for row in log.rows:
        turn = replay.act(row["output"], nav)
        assert (turn.page, turn.new_page, turn.error, turn.done) == (row["page"], row["new_page"], row["error"],
                                                                     row["done"])
        states.append(_state(replay.page, fmt.history_text(replay.history), replay.misses, replay.invalid,
                             replay.success))
    assert replay.to_json() == runs[0].episode.to_json()
    shown = [(o.prompt, [o.image]) for o in policy.shown]
    return states, shown, interactive_metrics(runs, 1, 12)


@pytest.mark.parametrize("script", ["succeeds", "early"])
def test_three_drivers_play_one_episode_alike(variant_envs: dict[str, Environment], script: str) -> None:
    env = variant_envs["noise"]  # Env-Noise: elements that lead nowhere
    outputs = scripts(env)[script]
    gym_states, gym_prompts = through_gym(env, outputs)
    sched_states, sched_shown = through_scheduler(env, outputs)
    harness_states, harness_shown, metrics = through_harness(env, outputs)

    assert gym_states == sched_states == harness_states
    assert len(gym_states) == len(outputs)  # every scripted turn was played, the last one ends it
    assert sched_shown == harness_shown  # byte-identical prompt text and the same single image each turn
    assert [p for p, _ in harness_shown] == gym_prompts
    final = gym_states[-1]
    if script == "succeeds":
        path = Navigator(env.structure).shortest_path(START, TARGET)
        expected = fmt.history_text([fmt.HistoryStep(name, page) for page, name in path])
        assert final == (TARGET, expected, 2, 2, True)
        assert metrics["strict"]["pass@1"] == 100.0 and (metrics["misses"], metrics["invalid"]) == (2, 2)
    else:
        assert final[0] != TARGET and final[4] is False
        assert metrics["strict"]["pass@1"] == 0.0 and metrics["completed"] == 1


def test_engine_turns_and_json_round_trip(base_env: Environment) -> None:
    nav = Navigator(base_env.structure)
    task = Task(START, TARGET, "page_4", nav.distances_to(TARGET)[START])
    ep = Episode(task, max_steps=2)
    turn = ep.act("nonsense", nav)
    assert turn == Turn(0, START, fmt.INVALID, None, None, None, START, turn.error, False) and turn.error
    again = Episode.from_json(ep.to_json())
    assert again == ep and again.prompt() == ep.prompt() == fmt.instruction_text(START, TARGET)
    last = ep.act(fmt.click_text("x_1", START, 500, 995), nav)
    assert last.error == "miss" and last.done and ep.truncated and not ep.success and ep.reward == 0.0
    with pytest.raises(ValueError, match="has ended"):
        ep.act(fmt.complete_text(), nav)


def test_success_is_the_tasks_own_predicate(base_env: Environment) -> None:
    nav = Navigator(base_env.structure)
    task = Task(START, START.replace("0", "5"), "", 1)
    ep = Episode(task)
    ep.act(fmt.complete_text(), nav)  # complete on the start page, not the target
    assert ep.success is False and task.is_successful(ep.page, ep.said_complete) == 0.0
    ep2 = Episode(task)
    ep2.act(_click_on(nav, START, nav.label_action(START, task.target)), nav)
    ep2.act(fmt.complete_text(), nav)
    assert ep2.success is True and task.is_successful(ep2.page, ep2.said_complete) == 1.0 and ep2.reward == 1.0
