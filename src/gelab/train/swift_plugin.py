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

Which turns are trained: **every turn**, each as its own sample carrying the episode's terminal
reward (its GRPO advantage comes from the group of episodes of the same task). The scheduler keeps
a record of every turn (:meth:`GelabNavScheduler.on_turn_end`: the prompt and image it was shown, the
answer's token ids and loss mask, log-probabilities, finish reason) and hands the list over in
``rollout_infos["gelab_turns"]``; :class:`gelab.train.swift_trainer.GelabGRPOTrainer`, which this
plugin registers as ms-swift's GRPO trainer, splits each episode into those samples. Under any
other trainer only the last turn would be trained, so the scheduler refuses to start an episode
there (:meth:`GelabNavScheduler.on_trajectory_start`). docs/training.md records the design.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # loaded by path through --external_plugins
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from swift.rewards import ORM, orms  # noqa: E402
from swift.rollout.agent_loop import extract_logprobs_from_choice  # noqa: E402
from swift.rollout.multi_turn import MultiTurnScheduler, multi_turns  # noqa: E402
from swift.trainers.trainer_factory import TrainerFactory  # noqa: E402

from gelab import format as fmt  # noqa: E402
from gelab.env.envdir import Environment, load_environment  # noqa: E402
from gelab.env.navigation import Navigator  # noqa: E402
from gelab.tasks.episode import Episode  # noqa: E402
from gelab.tasks.universe import Task  # noqa: E402
from gelab.train import rewards, swift_trainer  # noqa: E402
from gelab.train.swift_trainer import TURNS_KEY  # noqa: E402

EPISODE_KEY = "gelab_episode"  # where a request carries its episode state (data_dict)
STOCK_GRPO_TRAINER = "swift.rlhf_trainers.GRPOTrainer"  # ms-swift 4.6's TrainerFactory entry for grpo
GELAB_GRPO_TRAINER = f"{swift_trainer.__name__}.{swift_trainer.GelabGRPOTrainer.__name__}"


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
    """Drives a gelab environment turn by turn (rows need ``start``, ``target``, ``env_dir``) and records
    every turn for :class:`~gelab.train.swift_trainer.GelabGRPOTrainer`."""

    records_turns = True  # the trainer splits episodes into turns only for a scheduler that records them
    trainer_splits_turns = False  # set by that trainer; without it only the last turn would be trained

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
    def _store(infer_request: Any, episode: Episode, turns: list[dict[str, Any]]) -> None:
        # a private copy: generations of one prompt must never share state
        infer_request.data_dict = {**infer_request.data_dict, EPISODE_KEY: episode.to_json(), TURNS_KEY: turns}

    def _record(self, infer_request: Any, response_choice: Any) -> dict[str, Any]:
        """What training needs of this turn: the prompt and image it was shown and its own answer."""
        *prompt, answer = infer_request.messages
        if answer.get("role") != "assistant":
            raise ValueError(f"gelab_nav: the turn's answer is not the last message ({answer.get('role')!r})")
        ids, mask = self.get_response_token_data(infer_request, response_choice)
        return {"messages": copy.deepcopy(prompt), "images": list(infer_request.images),
                "completion": response_choice.message.content, "token_ids": ids, "loss_mask": mask,
                "logprobs": extract_logprobs_from_choice(response_choice),
                "finish_reason": response_choice.finish_reason}

    async def on_trajectory_start(self, requests: list[Any]) -> None:
        if not self.trainer_splits_turns:
            raise RuntimeError(f"gelab_nav: the GRPO trainer is not {GELAB_GRPO_TRAINER} (registered by this "
                               "plugin), so only each episode's last turn would be trained; ms-swift's colocate "
                               "mode with this plugin in --external_plugins is the supported launch")

    async def on_turn_end(self, infer_request: Any, response_choice: Any, current_turn: int) -> dict[str, Any]:
        episode = self._episode(infer_request)
        _, nav = self._env(infer_request.data_dict["env_dir"])
        turns = [*infer_request.data_dict.get(TURNS_KEY, []), self._record(infer_request, response_choice)]
        episode.act(response_choice.message.content, nav)
        self._store(infer_request, episode, turns)
        infos = {**episode.infos(), "images": list(infer_request.images), TURNS_KEY: turns}
        return {"done": episode.done, "rollout_infos": infos}

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

_registered = TrainerFactory.TRAINER_MAPPING.get("grpo")
if _registered not in (STOCK_GRPO_TRAINER, GELAB_GRPO_TRAINER):
    raise RuntimeError(f"gelab plugin: ms-swift's GRPO trainer entry is {_registered!r}, not {STOCK_GRPO_TRAINER!r}; "
                       "the every-turn MT-RL trainer was written against the latter (gelab.train.swift_trainer)")
TrainerFactory.TRAINER_MAPPING["grpo"] = GELAB_GRPO_TRAINER
