"""The ms-swift external plugin of gelab: reward adapters and the multi-turn navigation scheduler.

Use it with stock ms-swift, inside or outside the pipeline::

    swift rlhf --rlhf_type grpo --external_plugins src/gelab/swift_plugin.py \\
        --reward_funcs gelab_type gelab_coord gelab_intent gelab_format ...          # ST-RL
    swift rlhf --rlhf_type grpo --external_plugins src/gelab/swift_plugin.py \\
        --reward_funcs gelab_episode --multi_turn_scheduler gelab_nav --max_turns 12  # MT-RL

The scoring logic lives in :mod:`gelab.rewards` and the turn logic in :mod:`gelab.episode`; this file
only adapts them to ms-swift's interfaces.

MT-RL conversation and loss (the decision this scheduler makes): a rollout is one conversation. The
first user turn is the dataset prompt (start page image + ``History: Null``). After each assistant
turn the episode advances; unless it ended, a new user turn is appended that carries the current
page image and the instruction with the history written by the format module. **Every assistant
turn carries loss** (each is a decision of the episode and shares its terminal reward); the user
turns written by the environment carry none. The page images of the later turns reach the trainer
through ``rollout_infos["images"]`` (ms-swift replaces the sample's images with them), so the
encoded conversation has exactly one image per ``<image>`` tag. The scheduler owns termination: the episode ends when
the agent says ``complete`` (anywhere) or after ``max_turns`` turns; a reply cut at the token limit
is just an unparseable action (a miss), not the end of the episode.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # loaded by path through --external_plugins
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from swift.rewards import ORM, orms  # noqa: E402
from swift.rollout.multi_turn import MultiTurnScheduler, multi_turns  # noqa: E402

from gelab import rewards  # noqa: E402
from gelab.envdir import load_environment  # noqa: E402
from gelab.episode import Episode  # noqa: E402
from gelab.navigation import Navigator  # noqa: E402

EPISODE_KEY = "gelab_episode"  # where a request carries its episode state (data_dict)


class GelabType(ORM):
    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float]:
        return rewards.type_reward(completions, **kwargs)


class GelabCoord(ORM):
    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float]:
        return rewards.coord_reward(completions, **kwargs)


class GelabIntent(ORM):
    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float]:
        return rewards.intent_reward(completions, **kwargs)


class GelabFormat(ORM):
    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float]:
        return rewards.format_reward(completions, **kwargs)


class GelabEpisode(ORM):
    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float]:
        return rewards.episode_reward(completions, **kwargs)


class GelabNavScheduler(MultiTurnScheduler):
    """Drives a gelab environment turn by turn (rows need ``start``, ``target``, ``env_dir``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.max_turns or self.max_turns < 1:
            raise ValueError(f"gelab_nav needs --max_turns >= 1, got {self.max_turns!r}")
        self._envs: dict[str, tuple[Any, Navigator]] = {}

    def _env(self, env_dir: str) -> tuple[Any, Navigator]:
        if env_dir not in self._envs:
            env = load_environment(env_dir)
            self._envs[env_dir] = (env, Navigator(env.structure))
        return self._envs[env_dir]

    @staticmethod
    def _episode(infer_request: Any) -> Episode:
        data = infer_request.data_dict
        missing = [k for k in ("start", "target", "env_dir") if k not in data]
        if missing:
            raise KeyError(f"gelab_nav: dataset row lacks column(s) {missing} (MT-RL rows of gelab data build)")
        if EPISODE_KEY not in data:
            return Episode.begin(data["start"], data["target"])
        return Episode.from_json(data[EPISODE_KEY])

    @staticmethod
    def _store(infer_request: Any, episode: Episode) -> None:
        # a private copy: generations of one prompt must never share state
        infer_request.data_dict = {**infer_request.data_dict, EPISODE_KEY: episode.to_json()}

    async def on_turn_end(self, infer_request: Any, response_choice: Any, current_turn: int) -> dict[str, Any]:
        episode = self._episode(infer_request)
        _, nav = self._env(infer_request.data_dict["env_dir"])
        episode.act(response_choice.message.content, nav)
        self._store(infer_request, episode)
        done = episode.done or current_turn >= self.max_turns
        # "images" replaces the sample's images for training: one page image per user turn so far
        return {"done": done, "rollout_infos": {**episode.infos(), "images": list(infer_request.images)}}

    def check_finished(self, infer_request: Any, response_choice: Any, current_turn: int) -> bool:
        """Complete said, or the cap reached; never the token limit (owned here, not by the base)."""
        data = infer_request.data_dict
        said_complete = bool(data.get(EPISODE_KEY, {}).get("said_complete"))
        return said_complete or current_turn >= self.max_turns

    def step(self, infer_request: Any, response_choice: Any, current_turn: int) -> dict[str, Any]:
        episode = self._episode(infer_request)
        env, _ = self._env(infer_request.data_dict["env_dir"])
        infer_request.messages.append({"role": "user", "content": episode.prompt()})
        infer_request.images.append(str(env.model_image_path(episode.page)))
        return {"infer_request": infer_request, "rollout_infos": episode.infos()}


orms.update({
    "gelab_type": GelabType,
    "gelab_coord": GelabCoord,
    "gelab_intent": GelabIntent,
    "gelab_format": GelabFormat,
    "gelab_episode": GelabEpisode,
})
multi_turns["gelab_nav"] = GelabNavScheduler
