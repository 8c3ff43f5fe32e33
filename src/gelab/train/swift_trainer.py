"""The GRPO trainer of gelab's MT-RL: every turn of an episode becomes its own training sample.

Stock ms-swift 4.6 trains one sample per rollout in colocate mode (the CPU engine and colocated
vLLM): the final conversation, i.e. only the last turn of an episode. :class:`GelabGRPOTrainer`
keeps ms-swift's rollout and loss and changes one step in between. After the rollout,
:func:`split_episodes` turns each episode into one sample per turn from the records the ``gelab_nav``
scheduler kept (:data:`TURNS_KEY` in ``rollout_infos``): the prompt the policy saw (system prompt
and one single-image user turn), that image, the answer's token ids and loss mask, the rollout
log-probabilities and the finish reason. Every turn keeps the episode's ``request_id``,
``prompt_id`` and final ``rollout_infos``, so it earns the episode's reward.

From there ms-swift's own request-aware path does the rest (``dynamic_num_samples``, the branch
its server mode uses when a scheduler splits a trajectory): rewards gathered per sample, advantages
by ``compute_advantages_dynamic`` (one entry per episode, grouped by ``prompt_id``: the
``num_generations`` episodes of a task, whatever their turn counts), the check that all samples of
one request share its reward, log-probabilities and loss in chunks of ``per_device_train_batch_size``
with the images encoded again per chunk. Weighting: every turn carries its episode's advantage
unscaled and the ``grpo`` loss averages each sample's tokens, then the samples (docs/training.md).

The trainer is registered by the plugin (``TrainerFactory.TRAINER_MAPPING['grpo']``) and acts only
for a scheduler that keeps turn records (``gelab_nav``); ST-RL runs stock GRPO. That path is marked
for removal in ms-swift, so the trainer refuses any ms-swift but :data:`SWIFT_SERIES` and the options
it cannot serve, and tests/test_every_turn.py drives the ms-swift functions it relies on.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict, deque
from typing import Any

import swift
from accelerate.utils import gather_object
from swift.rlhf_trainers import GRPOTrainer
from swift.rlhf_trainers.utils import get_even_process_data

SWIFT_SERIES = "4.6."  # the ms-swift releases whose request-aware GRPO branches this trainer was checked against
TURNS_KEY = "gelab_turns"  # rollout_infos: the scheduler's record of every turn of the episode
LOG_KEYS = ("episode", "turn")  # completions.jsonl columns added per sample (besides ms-swift's advantages)


class EveryTurnError(RuntimeError):
    """Every-turn MT-RL cannot run as configured; the message says why."""


def check_swift(version: str = swift.__version__) -> None:
    """Refuse an ms-swift whose request-aware GRPO path this trainer was not checked against."""
    if not version.startswith(SWIFT_SERIES):
        raise EveryTurnError(f"gelab MT-RL trains every turn through ms-swift {SWIFT_SERIES}x's request-aware GRPO "
                             f"path (dynamic_num_samples); ms-swift {version} is installed. Install ms-swift "
                             f"{SWIFT_SERIES}x (requirements.lock) or check the path again (tests/test_every_turn.py)")


def unsupported(trainer: Any) -> list[str]:
    """The options of ``trainer`` that every-turn samples cannot serve: padding-free batches, DAPO's dynamic
    sampling and KL in the reward (both assume one sample per request), asynchronous generation and a
    rollout server (neither runs through :meth:`GelabGRPOTrainer._rollout_samples` as tested)."""
    options = {"padding_free": trainer.template.padding_free, "dynamic_sample": trainer.dynamic_sample,
               "kl_in_reward": trainer.kl_in_reward, "async_generate": trainer.async_generate,
               "vllm_mode server": trainer.use_fast_infer and trainer.vllm_mode == "server"}
    return [name for name, value in options.items() if value]


def turn_samples(episode: Any) -> list[Any]:
    """One sample per turn of an episode sample (a ``GRPOSample`` after ``apply_rollout_output``)."""
    infos = dict(episode.rollout_infos or {})
    records = infos.pop(TURNS_KEY, None)
    if not records:
        raise EveryTurnError(f"episode {episode.request_id}: no turn records in rollout_infos[{TURNS_KEY!r}] "
                             "(the gelab_nav scheduler writes them)")
    if infos.get("num_turns", len(records)) != len(records):
        raise EveryTurnError(f"episode {episode.request_id}: {infos['num_turns']} turns played but "
                             f"{len(records)} recorded")
    infos.pop("images", None)
    out = []
    for turn, rec in enumerate(records, start=1):
        ids = list(rec["token_ids"])
        out.append(dataclasses.replace(
            episode,
            messages=[*(dict(m) for m in rec["messages"]), {"role": "assistant", "content": rec["completion"]}],
            images=list(rec["images"]),
            response_token_ids=[ids] if ids else [],  # no ids: ms-swift encodes the completion text
            response_loss_mask=[list(rec["loss_mask"])] if ids else [],
            rollout_logprobs=[list(rec["logprobs"])] if rec["logprobs"] else [],
            finish_reason=rec["finish_reason"],
            rollout_infos={**infos, "episode": episode.request_id, "turn": turn, "images": list(rec["images"])},
            extra=dict(episode.extra),
            encoded=None,
        ))
    return out


def split_episodes(episodes: list[Any]) -> list[Any]:
    """Every turn of every episode, in episode order (the turns of one episode stay together)."""
    return [t for e in episodes for t in turn_samples(e)]


class GelabGRPOTrainer(GRPOTrainer):
    """ms-swift's ``GRPOTrainer`` that trains every turn of an MT-RL episode (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        scheduler = self.multi_turn_scheduler
        self.every_turn = bool(getattr(scheduler, "records_turns", False))
        if not self.every_turn:
            return
        check_swift()
        refused = unsupported(self)
        if refused:
            raise EveryTurnError(f"gelab MT-RL (every turn a sample) does not support {', '.join(refused)}")
        scheduler.trainer_splits_turns = True  # the scheduler refuses to run under a trainer that does not

    def _rollout_samples(self, inputs: Any) -> list[Any]:
        if not self.every_turn:
            return super()._rollout_samples(inputs)
        self.dynamic_num_samples = False  # the rollout: one output per request, zipped 1:1 with the requests
        episodes = super()._rollout_samples(inputs)
        turns = gather_object(split_episodes(episodes))  # every rank's turns, in rank order
        local = get_even_process_data(self, turns)  # as ms-swift's server path spreads split trajectories
        self.dynamic_num_samples = True  # from here on: ms-swift's request-aware rewards, advantages, loss
        self._count(episodes, turns)
        return local

    def _count(self, episodes: list[Any], turns: list[Any]) -> None:
        """Per-step counts for logging.jsonl and fresh completion logs sized to this step's samples."""
        played = gather_object([int(e.rollout_infos.get("num_turns", 0)) for e in episodes])
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["episodes"].append(float(len(played)))
        self._metrics[mode]["turns"].append(float(sum(played)))
        self._metrics[mode]["samples"].append(float(len(turns)))
        n = len(turns)  # ms-swift's deques hold generation_batch_size entries: fewer than the turns
        for key, value in list(self._logs.items()):
            if isinstance(value, deque):
                self._logs[key] = deque(maxlen=n)
        self._logs["rewards"] = defaultdict(lambda: deque(maxlen=n))
        for key in ("num_turns", *LOG_KEYS):
            self._logs[key] = deque(maxlen=n)

    def _log_rollout(self, samples: list[Any]) -> None:
        super()._log_rollout(samples)
        if self.every_turn:
            for key in LOG_KEYS:
                self._logs[key].extend(self._gather_and_flatten([s.rollout_infos[key] for s in samples],
                                                                flatten_level=0))
