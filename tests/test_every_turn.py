"""MT-RL trains every turn: each turn of an episode is a training sample carrying its episode's advantage.

A scripted policy (no model) plays a group of episodes of known lengths through ms-swift's own
multi-turn loop (``run_multi_turn``) with the ``gelab_nav`` scheduler; the outputs go through
ms-swift's ``apply_rollout_output``, gelab's split (:mod:`gelab.train.swift_trainer`), ms-swift's
``encode_sample`` with the tiny model's template and ms-swift's request-aware ``_compute_advantages``.
Everything but the split is ms-swift 4.6's code, so an upgrade that changes it fails here.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

import pytest

from gelab import format as fmt
from gelab.env.envdir import Environment
from gelab.env.navigation import Navigator
from gelab.eval.interactive import run_episodes
from gelab.eval.policies import Observation
from gelab.params import TinyModelParams
from gelab.tasks.universe import Task

swift_plugin = pytest.importorskip("gelab.train.swift_plugin")
from gelab.train import swift_trainer  # noqa: E402  (after the plugin: ms-swift is installed)

START, TARGET = "page_0", "page_19"  # two clicks apart in Env-Base (seed 0)
CAP = 4  # --max_turns of the scripted run


def _click_on(nav: Navigator, page: str, name: str) -> str:
    box = nav.bbox_norm(page, name)
    return fmt.click_text(name, page, (box[0] + box[2]) // 2, (box[1] + box[3]) // 2)


def scripts(nav: Navigator) -> dict[str, list[str]]:
    """Two groups of four episodes: task A (1, 2, 3 turns and a capped one; one success) and task B
    (all fail, lengths 1..4). Keys are ``GROUP:NAME``."""
    (p0, first), (p1, second) = nav.shortest_path(START, TARGET)
    miss = fmt.click_text("nothing_1", p0, 500, 995)  # bottom margin: no element
    return {
        "A:early": [fmt.complete_text()],
        "A:short": [_click_on(nav, p0, first), fmt.complete_text()],
        "A:success": [_click_on(nav, p0, first), _click_on(nav, p1, second), fmt.complete_text()],
        "A:capped": [miss, "garbage", miss, miss],
        "B:early": [fmt.complete_text()],
        "B:short": [_click_on(nav, p0, first), fmt.complete_text()],
        "B:miss": [miss, miss, fmt.complete_text()],
        "B:capped": ["garbage"] * CAP,
    }


# --- ms-swift's pieces, driven without a model -----------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """ms-swift's template of the tiny model (gelab_qwen2_5_vl) on a small freshly built tokenizer."""
    from swift.model import get_model_processor
    from swift.template import get_template

    import gelab.train.swift_template  # noqa: F401  registers the template
    from gelab.train.tiny_model import TEMPLATE, build_tiny_model

    corpus = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    texts = [fmt.SYSTEM_PROMPT, fmt.navigation_prompt(START, TARGET), fmt.complete_text(),
             fmt.click_text("Flowers_and_plants_153", "page_0", 123, 456)]
    corpus.write_text("".join(json.dumps({"messages": [{"role": "user", "content": t}]}) + "\n" for t in texts))
    model_dir = tmp_path_factory.mktemp("tiny") / "model"
    build_tiny_model(TinyModelParams(vocab_learned=400), [corpus], model_dir)
    _, processor = get_model_processor(str(model_dir), model_type="qwen2_5_vl", load_model=False,
                                       download_model=False)
    return get_template(processor, template_type=TEMPLATE, max_pixels=50176)


class ScriptedEngine:
    """The rollout function: answers each request from its episode's script, as an engine would (token
    ids of the text and the end token), and records every prompt and image it was given."""

    def __init__(self, tokenizer: Any, scripted: dict[str, list[str]]) -> None:
        self.tokenizer, self.scripted = tokenizer, scripted
        self.seen: dict[str, list[tuple[list[dict], list[str]]]] = defaultdict(list)
        self.ids: dict[str, list[list[int]]] = defaultdict(list)

    def __call__(self, requests: list[Any], config: Any = None) -> list[Any]:
        import copy

        from swift.infer_engine.protocol import (
            ChatCompletionResponse,
            ChatCompletionResponseChoice,
            ChatMessage,
            RolloutOutput,
            UsageInfo,
        )

        outputs = []
        for req in requests:
            turn = len(self.seen[req.uuid])
            self.seen[req.uuid].append((copy.deepcopy(req.messages), list(req.images)))
            text = self.scripted[req.uuid][turn]
            ids = self.tokenizer.encode(text, add_special_tokens=False) + [self.tokenizer.convert_tokens_to_ids(
                "<|im_end|>")]
            self.ids[req.uuid].append(ids)
            choice = ChatCompletionResponseChoice(index=0, message=ChatMessage(role="assistant", content=text),
                                                  finish_reason="stop", token_ids=ids)
            outputs.append(RolloutOutput(response=ChatCompletionResponse(
                model="scripted", choices=[choice], usage=UsageInfo(0, len(ids), len(ids)))))
        return outputs


def play(env: Environment, template: Any) -> tuple[list[Any], ScriptedEngine, dict[str, list[str]]]:
    """The scripted episodes through ms-swift's multi-turn loop; returns the episode samples as ms-swift
    builds them after a rollout (``apply_rollout_output``), the engine and the scripts."""
    from swift.infer_engine import RequestConfig
    from swift.infer_engine.protocol import RolloutInferRequest
    from swift.rl_core.data import GRPOSample
    from swift.rollout.agent_loop import run_multi_turn

    scripted = scripts(Navigator(env.structure))
    scheduler = swift_plugin.GelabNavScheduler(max_turns=CAP, tokenizer=template.tokenizer, template=template)
    engine = ScriptedEngine(template.tokenizer, scripted)
    row = {"start": START, "target": TARGET, "env_dir": str(env.root)}
    first = [{"role": "system", "content": fmt.SYSTEM_PROMPT},
             {"role": "user", "content": fmt.navigation_prompt(START, TARGET)}]
    samples = [GRPOSample(messages=[dict(m) for m in first], images=[str(env.model_image_path(START))], extra=dict(row),
                          request_id=key, prompt_id=key.split(":")[0]) for key in scripted]
    requests = [RolloutInferRequest(messages=[dict(m) for m in s.messages], images=list(s.images),
                                    data_dict=dict(row), uuid=s.request_id) for s in samples]
    outputs = run_multi_turn(requests, engine(requests), scheduler, engine, RequestConfig(), max_turns=CAP)
    for sample, output in zip(samples, outputs):
        sample.apply_rollout_output(rollout_output=output)
    return samples, engine, scripted


class Shown:
    """A scripted policy for the evaluation harness that records what it is shown."""

    name = "scripted"

    def __init__(self, outputs: list[str]) -> None:
        self.outputs, self.shown = outputs, []

    def act(self, observations: Sequence[Observation]) -> list[str]:
        self.shown.extend(observations)
        return [self.outputs[o.step] for o in observations]


def harness_prompts(env: Environment, outputs: list[str]) -> list[tuple[str, str]]:
    """(prompt text, image) of every turn the interactive harness shows a policy answering ``outputs``."""
    nav = Navigator(env.structure)
    policy = Shown(outputs)
    run_episodes(nav, [Task(START, TARGET, "", 2)], policy, attempts=1, max_steps=CAP,  # type: ignore[arg-type]
                 image_of=lambda page: str(env.model_image_path(page)))
    return [(o.prompt, o.image) for o in policy.shown]


class AdvantageHost:
    """The attributes ms-swift 4.6's ``GRPOTrainer._compute_advantages`` reads, for a single process."""

    def __init__(self, num_generations: int = 4) -> None:
        import torch
        from swift.rlhf_trainers import GRPOTrainer

        self.dynamic_num_samples, self.kl_in_reward, self.beta = True, False, 0.04
        self.advantage_estimator, self.scale_rewards = "grpo", "group"
        self.num_generations = self.num_generations_eval = num_generations
        self.reward_func_names, self.reward_weights = ["GelabEpisode"], torch.ones(1)
        self.model, self.accelerator = SimpleNamespace(training=True), SimpleNamespace(device=torch.device("cpu"))
        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
        self._logs = {"rewards": defaultdict(list)}
        self._get_last_indices = GRPOTrainer._get_last_indices.__get__(self)
        self._compute = GRPOTrainer._compute_advantages

    def advantages(self, samples: list[Any]) -> list[float]:
        """ms-swift's rewards (the plugin's episode reward on each sample) and its advantages."""
        import torch

        rewards = swift_plugin.GelabEpisode()([s.messages[-1]["content"] for s in samples],
                                              rollout_infos=[s.rollout_infos for s in samples])
        return self._compute(self, samples, torch.tensor(rewards).unsqueeze(1), []).tolist()


# --- the tests ---------------------------------------------------------------------------------------


def test_every_turn_is_a_sample_with_the_harness_prompt_one_image_and_its_own_answer(
        base_env: Environment, template: Any) -> None:
    episodes, engine, scripted = play(base_env, template)
    turns = swift_trainer.split_episodes(episodes)
    lengths = {key: len(out) for key, out in scripted.items()}
    assert [(t.request_id, t.rollout_infos["turn"]) for t in turns] == [
        (key, k) for key, n in lengths.items() for k in range(1, n + 1)]  # 1, 2, 3 turns and the cap, in order
    assert lengths["A:capped"] == lengths["B:capped"] == CAP
    template.set_mode("train")
    for t in turns:
        key, k = t.request_id, t.rollout_infos["turn"]
        prompt, image = harness_prompts(base_env, scripted[key])[k - 1]
        system, user = t.messages[:2]
        assert len(t.messages) == 3 and system == {"role": "system", "content": fmt.SYSTEM_PROMPT}
        assert user["content"] == fmt.IMAGE_PLACEHOLDER + prompt  # byte-identical to the harness's prompt
        assert t.images == [image] and t.rollout_infos["images"] == [image]  # one image: that turn's page
        assert (t.messages[:2], t.images) == tuple(engine.seen[key][k - 1])  # what the engine was given
        assert t.messages[2] == {"role": "assistant", "content": scripted[key][k - 1]}
        assert t.prompt_id == key.split(":")[0] and t.rollout_infos["episode"] == key
        assert swift_trainer.TURNS_KEY not in t.rollout_infos
        # encoded for training: the prompt tokens are what the engine encoded, labels are this answer only
        from swift.rlhf_trainers.utils import encode_sample

        enc = encode_sample(t, template)
        labels, ids = enc["labels"], enc["input_ids"]
        answer_at = next(i for i, v in enumerate(labels) if v != -100)
        assert [v for v in labels if v != -100] == engine.ids[key][k - 1] == ids[answer_at:]
        template.set_mode("transformers")
        try:
            seen = template.encode({"messages": engine.seen[key][k - 1][0], "images": engine.seen[key][k - 1][1]})
        finally:
            template.set_mode("train")
        assert ids[:answer_at] == seen["input_ids"]
        assert ids.count(template.image_token_id) == seen["input_ids"].count(template.image_token_id) > 0


def test_turns_carry_their_episodes_advantage_from_per_episode_group_statistics(
        base_env: Environment, template: Any) -> None:
    episodes, _, scripted = play(base_env, template)
    turns = swift_trainer.split_episodes(episodes)
    advantages = AdvantageHost().advantages(turns)
    per_episode: dict[str, set[float]] = defaultdict(set)
    for t, a in zip(turns, advantages):
        per_episode[t.request_id].add(round(a, 6))
    assert all(len(v) == 1 for v in per_episode.values())  # equal within an episode
    adv = {key: next(iter(v)) for key, v in per_episode.items()}
    # group A: one success in four episodes -> (1 - 0.25) / 0.5 and (0 - 0.25) / 0.5, whatever the turn counts
    assert adv == pytest.approx({"A:early": -0.5, "A:short": -0.5, "A:success": 1.5, "A:capped": -0.5,
                                 "B:early": 0.0, "B:short": 0.0, "B:miss": 0.0, "B:capped": 0.0}, abs=1e-3)
    assert sum(adv[k] for k in adv if k.startswith("A:")) == pytest.approx(0.0, abs=1e-3)  # per episode
    # per-turn weighting: a turn is a sample of the grpo loss's mean; the capped episode has 4 of them
    assert sum(1 for t in turns if t.request_id == "A:capped") == CAP


def _hand_made_episode(request_id: str, prompt_id: str, turns: int, success: bool) -> Any:
    from swift.rl_core.data import GRPOSample

    records = [{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": f"<image>turn {k}"}],
                "images": [f"page_{k}.png"], "completion": f"answer {k}", "token_ids": [10 + k, 2],
                "loss_mask": [1, 1], "logprobs": [-0.5, -0.1], "finish_reason": "length" if k == 2 else "stop"}
               for k in range(1, turns + 1)]
    infos = {"success": success, "page": "page_9", "turns": turns, "num_turns": turns, "images": ["last.png"],
             swift_trainer.TURNS_KEY: records}
    return GRPOSample(messages=[*records[-1]["messages"], {"role": "assistant", "content": "answer"}],
                      images=["last.png"], request_id=request_id, prompt_id=prompt_id, extra={"target": "page_9"},
                      response_token_ids=[[1], [2], [3]][:turns], rollout_infos=infos, finish_reason="stop")


def test_split_of_a_hand_made_episode() -> None:
    turns = swift_trainer.turn_samples(_hand_made_episode("r1", "p", 3, True))
    assert len(turns) == 3
    second = turns[1]
    assert second.messages[-1] == {"role": "assistant", "content": "answer 2"}
    assert second.messages[1]["content"] == "<image>turn 2" and second.images == ["page_2.png"]
    assert second.response_token_ids == [[12, 2]] and second.response_loss_mask == [[1, 1]]
    assert second.rollout_logprobs == [[-0.5, -0.1]] and second.finish_reason == "length"
    assert (second.request_id, second.prompt_id, second.extra) == ("r1", "p", {"target": "page_9"})
    assert second.rollout_infos == {"success": True, "page": "page_9", "turns": 3, "num_turns": 3,
                                    "episode": "r1", "turn": 2, "images": ["page_2.png"]}
    lost = _hand_made_episode("r2", "p", 2, False)
    lost.rollout_infos["num_turns"] = 3
    with pytest.raises(swift_trainer.EveryTurnError, match="3 turns played but 2 recorded"):
        swift_trainer.turn_samples(lost)
    lost.rollout_infos.pop(swift_trainer.TURNS_KEY)
    with pytest.raises(swift_trainer.EveryTurnError, match="no turn records"):
        swift_trainer.turn_samples(lost)


def test_scripted_group_advantages_per_episode_not_per_turn() -> None:
    """Turns [3, 1, 2, 3], success [1, 0, 0, 1]: +-0.866 on every turn (the group counts episodes)."""
    episodes = [_hand_made_episode(f"r{i}", "task", n, s) for i, (n, s) in enumerate(zip([3, 1, 2, 3],
                                                                                     [1, 0, 0, 1]))]
    turns = swift_trainer.split_episodes(episodes)
    advantages = AdvantageHost().advantages(turns)
    assert [round(a, 3) for a in advantages] == [0.866] * 3 + [-0.866] + [-0.866] * 2 + [0.866] * 3
    same = [_hand_made_episode(f"s{i}", "other", n, False) for i, n in enumerate([3, 1, 2, 3])]
    assert AdvantageHost().advantages(swift_trainer.split_episodes(same)) == [0.0] * 9


def test_samples_of_one_request_must_share_its_reward() -> None:
    """ms-swift's fail-fast check that the split relies on (the episode's final infos on every turn)."""
    turns = swift_trainer.split_episodes([_hand_made_episode("r", "p", 2, True),
                                          _hand_made_episode("q", "p", 1, False)])
    turns[0].rollout_infos = {**turns[0].rollout_infos, "success": False}
    with pytest.raises(ValueError, match="Inconsistent rewards"):
        AdvantageHost(num_generations=2).advantages(turns)


def test_rollout_hook_splits_between_ms_swifts_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rollout runs as one sample per request; what follows runs in ms-swift's request-aware mode."""
    from collections import deque

    from swift.rlhf_trainers import GRPOTrainer

    episodes = [_hand_made_episode("r1", "p", 3, True), _hand_made_episode("r2", "p", 1, False)]
    modes = []

    def stock_rollout(self: Any, inputs: Any) -> list[Any]:
        modes.append(self.dynamic_num_samples)
        return episodes

    monkeypatch.setattr(GRPOTrainer, "_rollout_samples", stock_rollout)
    trainer = object.__new__(swift_trainer.GelabGRPOTrainer)
    trainer.every_turn, trainer.dynamic_num_samples = True, True
    trainer.model, trainer.accelerator = SimpleNamespace(training=True), SimpleNamespace(num_processes=1,
                                                                                           process_index=0)
    trainer._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
    trainer._logs = {"prompt": deque(maxlen=2), "completion": deque(maxlen=2), "advantages": deque(maxlen=2),
                     "rewards": defaultdict(lambda: deque(maxlen=2))}
    samples = trainer._rollout_samples([{}, {}])
    assert modes == [False] and trainer.dynamic_num_samples is True
    assert [(s.request_id, s.rollout_infos["turn"]) for s in samples] == [("r1", 1), ("r1", 2), ("r1", 3),
                                                                            ("r2", 1)]
    assert {k: v for k, v in trainer._metrics["train"].items()} == {"episodes": [2.0], "turns": [4.0],
                                                                      "samples": [4.0]}
    assert all(trainer._logs[k].maxlen == 4 for k in ("prompt", "completion", "advantages", "episode", "turn"))
    assert trainer._logs["rewards"]["GelabEpisode"].maxlen == 4


def test_trainer_is_registered_and_refuses_what_it_cannot_serve() -> None:
    from swift.trainers.trainer_factory import TrainerFactory

    assert TrainerFactory.get_trainer_cls(SimpleNamespace(rlhf_type="grpo")) is swift_trainer.GelabGRPOTrainer
    swift_trainer.check_swift()  # the installed ms-swift is the series the trainer was checked against
    with pytest.raises(swift_trainer.EveryTurnError, match="ms-swift 4.7.0 is installed"):
        swift_trainer.check_swift("4.7.0")
    ok = SimpleNamespace(template=SimpleNamespace(padding_free=False), dynamic_sample=False, kl_in_reward=False,
                         async_generate=False, use_fast_infer=True, vllm_mode="colocate")
    assert swift_trainer.unsupported(ok) == []
    bad = SimpleNamespace(template=SimpleNamespace(padding_free=True), dynamic_sample=True, kl_in_reward=True,
                          async_generate=True, use_fast_infer=True, vllm_mode="server")
    assert swift_trainer.unsupported(bad) == ["padding_free", "dynamic_sample", "kl_in_reward", "async_generate",
                                              "vllm_mode server"]


def test_the_scheduler_refuses_a_trainer_that_would_train_the_last_turn_only(base_env: Environment) -> None:
    import asyncio

    scheduler = swift_plugin.GelabNavScheduler(max_turns=3)
    with pytest.raises(RuntimeError, match="only each episode's last turn would be trained"):
        asyncio.run(scheduler.on_trajectory_start([]))
    scheduler.trainer_splits_turns = True  # what GelabGRPOTrainer sets
    asyncio.run(scheduler.on_trajectory_start([]))


def test_pinned_ms_swift_is_the_series_the_trainer_was_checked_against() -> None:
    lock = (Path(__file__).resolve().parents[1] / "requirements.lock").read_text()
    assert f"ms_swift=={swift_trainer.SWIFT_SERIES}" in lock


def test_training_summary_reports_episodes_turns_and_samples_per_step() -> None:
    from gelab.train.logs import step_rows, summarize

    log = [{"global_step/max_steps": f"{k}/2", "loss": 0.1, "reward": 0.25 * k, "num_turns": 2.5 + k / 4,
            "episodes": 32.0, "turns": 80.0 + 8 * k, "samples": 80.0 + 8 * k} for k in (1, 2)]
    rows = step_rows(log)
    assert [(r["episodes"], r["turns"], r["samples"], r["num_turns"]) for r in rows] == [(32.0, 88.0, 88.0, 2.75),
                                                                                      (32.0, 96.0, 96.0, 3.0)]
    summary = summarize("mt_rl", rows, log, 10.0, 8)
    assert summary["episodes"] == {"first": 32.0, "final_mean": 32.0}
    assert summary["samples"] == summary["turns"] == {"first": 88.0, "final_mean": 96.0}
    assert summary["num_turns"] == {"first": 2.75, "final_mean": 3.0}
