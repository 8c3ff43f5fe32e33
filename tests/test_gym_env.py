"""The Gymnasium environment: checker, SPEC §5 semantics, determinism."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from gelab import format as fmt
from gelab.env.envdir import Environment
from gelab.env.navigation import Navigator
from gelab.tasks.gym_env import ENV_ID, GuiNavEnv


@pytest.fixture
def env(base_env: Environment) -> gym.Env:
    return gym.make(ENV_ID, env_dir=str(base_env.root), subtree="page_5")


def _click(nav: Navigator, page: str, name: str) -> dict:
    b = nav.bbox_norm(page, name)
    return {"kind": 0, "point": np.array([(b[0] + b[2]) // 2, (b[1] + b[3]) // 2])}


@pytest.mark.parametrize("obs_mode", ["image", "text"])
def test_passes_the_gymnasium_checker(base_env: Environment, obs_mode: str) -> None:
    check_env(GuiNavEnv(base_env.root, subtree="page_5", obs_mode=obs_mode), skip_render_check=True)


def test_oracle_episode_succeeds_with_the_training_history(env: gym.Env, base_env: Environment) -> None:
    nav = Navigator(base_env.structure)
    obs, info = env.reset(seed=0, options={"start": "page_230", "target": "page_5"})
    assert obs["text"] == "Instruction: from page_230 to page_5. History: Null"
    assert obs["image"].shape == (448, 448, 3)
    history = []
    for page, action in nav.shortest_path("page_230", "page_5"):
        assert info["page"] == page and action in info["optimal_actions"]
        obs, reward, terminated, truncated, info = env.step(_click(nav, page, action))
        history.append(fmt.HistoryStep(action, page))
        assert obs["text"] == fmt.navigation_prompt("page_230", "page_5", history, image_placeholder=False)
        assert reward == 0.0 and not terminated
    assert info["reached"] and not info["success"]
    obs, reward, terminated, truncated, info = env.step({"kind": 1, "point": np.array([0, 0])})
    assert (reward, terminated, info["success"]) == (1.0, True, True)


def test_miss_changes_nothing_and_is_counted(env: gym.Env) -> None:
    obs, info = env.reset(seed=0, options={"start": "page_5", "target": "page_0"})
    obs2, reward, terminated, truncated, info2 = env.step({"kind": 0, "point": np.array([500, 5])})  # empty strip
    assert obs2["text"] == obs["text"] and np.array_equal(obs2["image"], obs["image"])
    assert info2["page"] == "page_5" and info2["misses"] == 1 and info2["hit"] is None and not terminated
    obs3, _, _, _, info3 = env.step("no action here")  # unparseable text: invalid, with an error, not an exception
    assert info3["misses"] == 1 and info3["invalid"] == 1 and obs3["text"] == obs["text"]
    assert info3["last_action_error"] == "no 'Action: click(...)' or 'Action: complete' found"


def test_early_complete_ends_with_zero(env: gym.Env) -> None:
    env.reset(seed=0, options={"start": "page_5", "target": "page_0"})
    _, reward, terminated, _, info = env.step(fmt.complete_text())
    assert (reward, terminated, info["success"], info["reached"]) == (0.0, True, False, False)


def test_model_text_moves_like_a_structured_click(env: gym.Env, base_env: Environment) -> None:
    nav = Navigator(base_env.structure)
    env.reset(seed=0, options={"start": "page_5", "target": "page_0"})
    b = nav.bbox_norm("page_5", "back")
    _, _, _, _, info = env.step(fmt.click_text("whatever_1", "page_5", b[0], b[3]))  # inclusive corner
    assert info["page"] == "page_0" and info["hit"] == "back" and info["reached"]


def test_step_cap_truncates(env: gym.Env) -> None:
    env.reset(seed=0, options={"start": "page_5", "target": "page_0"})
    for i in range(12):
        _, _, terminated, truncated, _ = env.step({"kind": 0, "point": np.array([500, 5])})
        assert not terminated and truncated == (i == 11)


def test_same_seed_same_rollout(base_env: Environment) -> None:
    def rollout(seed: int) -> list:
        env = gym.make(ENV_ID, env_dir=str(base_env.root), subtree="page_5")
        env.action_space.seed(seed)
        obs, info = env.reset(seed=seed)
        out = [obs["text"]]
        for _ in range(12):
            obs, r, term, trunc, info = env.step(env.action_space.sample())
            out.append((obs["text"], r, term, trunc, info["page"], info["misses"]))
            if term or trunc:
                break
        return out

    assert rollout(7) == rollout(7)
    assert len({str(rollout(seed)) for seed in range(7, 11)}) > 1  # the seed does matter


def test_bad_options_are_rejected(env: gym.Env) -> None:
    with pytest.raises(ValueError, match="page_999"):
        env.reset(options={"start": "page_999", "target": "page_0"})
