"""The gelab_nav multi-turn scheduler driven against a real environment, turn by turn."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from gelab import format as fmt
from gelab.env.envdir import Environment
from gelab.env.navigation import Navigator

swift_plugin = pytest.importorskip("gelab.train.swift_plugin")


def _choice(text: str, finish_reason: str = "stop") -> Any:
    """What an engine returns for one answer (token ids and log-probabilities left out)."""
    return SimpleNamespace(message=SimpleNamespace(content=text), finish_reason=finish_reason, token_ids=None,
                           logprobs=None)


def _request(env: Environment, start: str, target: str, data_dict: dict | None = None) -> Any:
    from swift.infer_engine.protocol import RolloutInferRequest

    messages = [{"role": "system", "content": fmt.SYSTEM_PROMPT},
                {"role": "user", "content": fmt.navigation_prompt(start, target)}]
    data = data_dict if data_dict is not None else {"start": start, "target": target, "env_dir": str(env.root)}
    return RolloutInferRequest(messages=messages, images=[str(env.model_image_path(start))], data_dict=data)


def _click_on(nav: Navigator, page: str, name: str) -> str:
    box = nav.bbox_norm(page, name)
    return fmt.click_text(name, page, (box[0] + box[2]) // 2, (box[1] + box[3]) // 2)


def _turn(scheduler: Any, request: Any, text: str, turn: int, finish_reason: str = "stop") -> tuple[dict, bool]:
    choice = _choice(text, finish_reason)
    request.messages.append({"role": "assistant", "content": text})  # what the rollout loop does first
    result = asyncio.run(scheduler.on_turn_end(request, choice, turn))
    return result, scheduler.check_finished(request, choice, turn)


def test_optimal_episode_moves_pages_writes_history_and_succeeds(base_env: Environment) -> None:
    nav = Navigator(base_env.structure)
    start, target = "page_0", "page_19"  # at least two clicks apart in Env-Base (seed 0)
    path = nav.shortest_path(start, target)
    assert len(path) >= 2
    scheduler = swift_plugin.GelabNavScheduler(max_turns=12)
    request = _request(base_env, start, target)
    history: list[fmt.HistoryStep] = []
    for turn, (page, name) in enumerate(path, start=1):
        result, finished = _turn(scheduler, request, _click_on(nav, page, name), turn)
        assert result["done"] is False and finished is False
        history.append(fmt.HistoryStep(name, page))
        step = scheduler.step(request, _choice(""), turn)
        assert step["infer_request"] is request
        # a fresh single-image prompt: the system prompt and one user turn, no earlier answers
        assert request.messages == [{"role": "system", "content": fmt.SYSTEM_PROMPT},
                                    {"role": "user", "content": fmt.navigation_prompt(start, target, history)}]
        assert request.images == [str(base_env.model_image_path(nav.edges[page][name]))]
    assert request.images == [str(base_env.model_image_path(target))]  # never more than one image
    result, finished = _turn(scheduler, request, fmt.complete_text(), len(path) + 1)
    assert result["done"] is True and finished is True
    infos = result["rollout_infos"]
    assert infos["success"] is True and infos["page"] == target and infos["misses"] == 0
    assert infos["images"] == request.images  # the episode sample's image: its last turn's page
    # every turn recorded for training: the prompt and the one image it was shown, and its own answer
    records = infos[swift_plugin.TURNS_KEY]
    pages = [start, *(nav.edges[page][name] for page, name in path)]
    assert [r["images"] for r in records] == [[str(base_env.model_image_path(p))] for p in pages]
    assert [r["messages"][1]["content"] for r in records] == [
        fmt.navigation_prompt(start, target, [fmt.HistoryStep(name, page) for page, name in path[:k]])
        for k in range(len(pages))]
    assert records[-1]["completion"] == fmt.complete_text() and [r["finish_reason"] for r in records] == ["stop"] * 3
    from gelab.train.rewards import episode_reward

    assert episode_reward(["x"], rollout_infos=[infos]) == [1.0]


def test_early_complete_ends_the_episode_without_success(base_env: Environment) -> None:
    scheduler = swift_plugin.GelabNavScheduler(max_turns=12)
    request = _request(base_env, "page_0", "page_19")
    result, finished = _turn(scheduler, request, fmt.complete_text(), 1)
    assert finished is True and result["done"] is True
    assert result["rollout_infos"]["success"] is False and result["rollout_infos"]["said_complete"] is True


def test_a_miss_changes_nothing_and_is_counted(base_env: Environment) -> None:
    scheduler = swift_plugin.GelabNavScheduler(max_turns=12)
    request = _request(base_env, "page_0", "page_19")
    miss = fmt.click_text("nothing_1", "page_0", 500, 990)  # bottom margin: no element there
    result, finished = _turn(scheduler, request, miss, 1)
    assert finished is False and result["rollout_infos"]["misses"] == 1 and result["rollout_infos"]["page"] == "page_0"
    scheduler.step(request, _choice(""), 1)
    assert request.messages[-1]["content"] == fmt.navigation_prompt("page_0", "page_19")  # history still Null
    result, _ = _turn(scheduler, request, "gibberish", 2)
    assert result["rollout_infos"]["misses"] == 1 and result["rollout_infos"]["invalid"] == 1


def test_cap_ends_the_episode_and_token_limit_does_not(base_env: Environment) -> None:
    nav = Navigator(base_env.structure)
    scheduler = swift_plugin.GelabNavScheduler(max_turns=3)
    request = _request(base_env, "page_0", "page_19")
    first = nav.shortest_path("page_0", "page_19")[0]
    # a reply cut at the length limit is a normal turn for gelab (the base scheduler would stop here)
    result, finished = _turn(scheduler, request, _click_on(nav, *first), 1, finish_reason="length")
    assert finished is False and result["done"] is False
    scheduler.step(request, _choice(""), 1)
    _, finished = _turn(scheduler, request, "Explain:click", 2, finish_reason="length")
    assert finished is False
    scheduler.step(request, _choice(""), 2)
    result, finished = _turn(scheduler, request, "still nothing", 3)
    assert finished is True and result["done"] is True and result["rollout_infos"]["success"] is False


def test_generations_of_one_prompt_do_not_share_state(base_env: Environment) -> None:
    nav = Navigator(base_env.structure)
    scheduler = swift_plugin.GelabNavScheduler(max_turns=12)
    shared = {"start": "page_0", "target": "page_19", "env_dir": str(base_env.root)}
    a, b = _request(base_env, "page_0", "page_19", shared), _request(base_env, "page_0", "page_19", shared)
    _turn(scheduler, a, _click_on(nav, *nav.shortest_path("page_0", "page_19")[0]), 1)
    result, _ = _turn(scheduler, b, fmt.complete_text(), 1)
    assert result["rollout_infos"]["page"] == "page_0"  # b did not inherit a's move
    assert "gelab_episode" not in shared


def test_rows_without_task_columns_fail_with_a_clear_error(base_env: Environment) -> None:
    scheduler = swift_plugin.GelabNavScheduler(max_turns=2)
    request = _request(base_env, "page_0", "page_19", {"start": "page_0"})
    with pytest.raises(KeyError, match="target"):
        asyncio.run(scheduler.on_turn_end(request, _choice(fmt.complete_text()), 1))


def test_plugin_registers_rewards_and_scheduler_under_stable_names() -> None:
    from swift.rewards import orms
    from swift.rollout.multi_turn import multi_turns

    assert multi_turns["gelab_nav"] is swift_plugin.GelabNavScheduler
    good = "Explain: this is target page.\tAction: complete"
    row = dict(action=["complete"], gt_name=[None], bbox_norm=[None])
    for name in ["gelab_type", "gelab_coord", "gelab_intent", "gelab_format"]:
        assert orms[name]()([good], **row) == [1.0], name
    assert orms["gelab_episode"]()([good], rollout_infos=[{"success": True}]) == [1.0]
