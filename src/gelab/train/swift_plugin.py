"""The ms-swift external plugin of gelab: reward adapters and the multi-turn navigation scheduler.

Use it with stock ms-swift, inside or outside the pipeline::

    swift rlhf --rlhf_type grpo --external_plugins src/gelab/train/swift_plugin.py \\
        --reward_funcs gelab_type gelab_coord gelab_intent gelab_format ...          # ST-RL
    swift rlhf --rlhf_type grpo --external_plugins src/gelab/train/swift_plugin.py \\
        --reward_funcs gelab_episode --multi_turn_scheduler gelab_nav --max_turns 12  # MT-RL

The scoring logic lives in :mod:`gelab.train.rewards` and the turn rule in the episode engine
(:mod:`gelab.tasks.episode`); this file only adapts them to ms-swift's interfaces.

MT-RL turns are evaluation turns. Each turn the policy is shown a **fresh single-image prompt**: the
system prompt and one user turn holding the current page image and the instruction with the textual
history, exactly what the interactive benchmark shows the same policy in the same state (the engine
writes both). After each answer the engine plays the turn; unless the episode ended, :meth:`step`
replaces the conversation with the next turn's prompt and image, so no conversation ever holds more
than one image or earlier answers. The episode ends on ``complete`` (anywhere) or after
``--max_turns`` turns; a reply cut at the token limit is an invalid output, not the end.

Which turns are trained: the **last turn** of each episode, carrying the episode's terminal reward
(its GRPO advantage comes from the group of generations of the same task), as in the release. In
ms-swift 4.6's colocate mode one rollout is one training sample: the sample is the final
conversation (system, last user turn, last answer) with the image put in ``rollout_infos["images"]``,
which ms-swift uses in place of the dataset row's image. Training every turn as its own sample needs
a scheduler that splits a trajectory, which ms-swift supports only with an external rollout server
and logs as deprecated (``dynamic_num_samples``). docs/training.md records the decision.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # loaded by path through --external_plugins
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from swift.rewards import ORM, orms  # noqa: E402
from swift.rollout.multi_turn import MultiTurnScheduler, multi_turns  # noqa: E402

from gelab import format as fmt  # noqa: E402
from gelab.env.envdir import Environment, load_environment  # noqa: E402
from gelab.env.navigation import Navigator  # noqa: E402
from gelab.tasks.episode import Episode  # noqa: E402
from gelab.tasks.universe import Task  # noqa: E402
from gelab.train import rewards  # noqa: E402

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
        self._envs: dict[str, tuple[Environment, Navigator]] = {}

    def _env(self, env_dir: str) -> tuple[Environment, Navigator]:
        if env_dir not in self._envs:
            env = load_environment(env_dir)
            self._envs[env_dir] = (env, Navigator(env.structure))
        return self._envs[env_dir]

    def _episode(self, infer_request: Any) -> Episode:
        data = infer_request.data_dict
        missing = [k for k in ("start", "target", "env_dir") if k not in data]
        if missing:
            raise KeyError(f"gelab_nav: dataset row lacks column(s) {missing} (MT-RL rows of gelab data build)")
        if EPISODE_KEY in data:
            return Episode.from_json(data[EPISODE_KEY])
        task = Task(data["start"], data["target"], data.get("subtree", ""), int(data.get("path_length", 0)))
        return Episode(task, max_steps=self.max_turns)

    @staticmethod
    def _store(infer_request: Any, episode: Episode) -> None:
        # a private copy: generations of one prompt must never share state
        infer_request.data_dict = {**infer_request.data_dict, EPISODE_KEY: episode.to_json()}

    async def on_turn_end(self, infer_request: Any, response_choice: Any, current_turn: int) -> dict[str, Any]:
        episode = self._episode(infer_request)
        _, nav = self._env(infer_request.data_dict["env_dir"])
        episode.act(response_choice.message.content, nav)
        self._store(infer_request, episode)
        # "images" replaces the sample's images for training: the one page image of this turn's prompt
        return {"done": episode.done, "rollout_infos": {**episode.infos(), "images": list(infer_request.images)}}

    def check_finished(self, infer_request: Any, response_choice: Any, current_turn: int) -> bool:
        """The engine decides (complete said, or the cap); never the token limit."""
        return self._episode(infer_request).done

    def step(self, infer_request: Any, response_choice: Any, current_turn: int) -> dict[str, Any]:
        """The next turn: a fresh conversation of the system prompt and one single-image user turn."""
        episode = self._episode(infer_request)
        env, _ = self._env(infer_request.data_dict["env_dir"])
        system = [m for m in infer_request.messages[:1] if m.get("role") == "system"]
        infer_request.messages[:] = [*system, {"role": "user", "content": fmt.IMAGE_PLACEHOLDER + episode.prompt()}]
        infer_request.images[:] = [str(env.model_image_path(episode.page))]
        return {"infer_request": infer_request, "rollout_infos": episode.infos()}


orms.update({
    "gelab_type": GelabType,
    "gelab_coord": GelabCoord,
    "gelab_intent": GelabIntent,
    "gelab_format": GelabFormat,
    "gelab_episode": GelabEpisode,
})
multi_turns["gelab_nav"] = GelabNavScheduler
