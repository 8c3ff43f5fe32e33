"""Model backends on a tiny random Qwen2.5-VL: hf batching and sampling, the openai backend on a
real loopback server (``swift deploy``), and the CLI end to end with a model policy."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from evalkit import (
    TEST_SUBTREE,
    build_tiny_qwen,
    navigator,
    static_rows,
    tasks,
    write_env_folder,
)

from gelab import format as fmt
from gelab.errors import GelabError
from gelab.eval.backends import Request, Sampling
from gelab.eval.interactive import interactive_metrics, run_episodes
from gelab.eval.policies import ModelPolicy
from gelab.eval.records import read_log
from gelab.train.tiny_model import TEMPLATE
from gelab.train.command import TEMPLATE_PLUGIN

SRC = Path(__file__).resolve().parents[1] / "src"
SMALL_IMAGES = 112 * 112  # 16 visual tokens: keeps CPU tests fast (the paper profile uses 448²)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def env_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_env_folder(tmp_path_factory.mktemp("env") / "base", images=True)


def requests(env_dir: Path, n: int = 4) -> list[Request]:
    pages = ["page_0", "page_5", "page_18", "page_19", "page_40", "page_41"][:n]
    return [Request(fmt.SYSTEM_PROMPT, fmt.instruction_text(p, "page_0", "Null" if i % 2 else
                                                            "step1: click home icon on page_7."),
                    str(env_dir / "model_images" / f"{p}.png"), seed=1000 + i) for i, p in enumerate(pages)]


def test_cached_image_preprocessing_equals_the_processor(tiny_model: Path, env_dir: Path) -> None:
    import torch
    from transformers import AutoProcessor

    from gelab.eval.backends.hf import HFBackend

    backend = HFBackend(tiny_model, Sampling(max_new_tokens=4), device="cpu", max_pixels=SMALL_IMAGES)
    plain = AutoProcessor.from_pretrained(tiny_model)
    plain.tokenizer.padding_side = "left"
    reqs = requests(env_dir)
    for _ in range(2):  # the second round is served from the cache
        cached = backend._inputs(reqs + reqs[:2])
        backend.processor, kept = plain, backend.processor
        fresh = backend._inputs(reqs + reqs[:2])
        backend.processor = kept
        assert cached.keys() == fresh.keys()
        for key in fresh:
            assert torch.equal(cached[key], fresh[key]), key
    assert len(backend.processor.image_processor._cache) == len(reqs)


def test_hf_batched_greedy_equals_one_at_a_time(tiny_model: Path, env_dir: Path) -> None:
    from gelab.eval.backends.hf import HFBackend

    backend = HFBackend(tiny_model, Sampling(max_new_tokens=12), device="cpu", max_pixels=SMALL_IMAGES)
    reqs = requests(env_dir)
    batched = backend.generate(reqs)
    assert batched == [backend.generate([r])[0] for r in reqs]
    assert len(set(batched)) > 1  # different prompts and images give different answers


def test_hf_sampling_is_per_request_not_per_batch(tiny_model: Path, env_dir: Path) -> None:
    from gelab.eval.backends.hf import HFBackend

    backend = HFBackend(tiny_model, Sampling(temperature=1.0, top_k=50, max_new_tokens=12), device="cpu",
                        max_pixels=SMALL_IMAGES)
    reqs = requests(env_dir)
    together = backend.generate(reqs)
    assert backend.generate(reqs[1:3]) == together[1:3]  # other rows of the batch do not matter
    reseeded = [Request(r.system, r.user, r.image, r.seed + 1) for r in reqs]
    assert backend.generate(reseeded) != together  # the seed does


def test_hf_sampling_goes_through_the_row_sampler_and_greedy_does_not(
        tiny_model: Path, env_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gelab.eval.backends import hf

    reqs = requests(env_dir, 3)
    greedy = hf.HFBackend(tiny_model, Sampling(max_new_tokens=4), device="cpu", max_pixels=SMALL_IMAGES)
    top1 = hf.HFBackend(tiny_model, Sampling(temperature=0.7, top_k=1, max_new_tokens=4), device="cpu",
                        max_pixels=SMALL_IMAGES)
    expected = greedy.generate(reqs)
    assert top1.generate(reqs) == expected  # top-k 1 draws the arg-max whatever the seed: the forcing works
    calls = []

    class Counting(hf.RowSampler):
        def __call__(self, input_ids, scores):
            calls.append(scores.shape)
            return super().__call__(input_ids, scores)

    monkeypatch.setattr(hf, "RowSampler", Counting)
    assert greedy.generate(reqs) == expected and not calls  # greedy: plain arg-max, no sampler
    top1.generate(reqs)
    assert len(calls) >= 1 and calls[0][0] == len(reqs)  # one batched call per step, all rows at once


def test_hf_policy_in_the_interactive_harness(tiny_model: Path, env_dir: Path) -> None:
    from gelab.eval.backends.hf import HFBackend

    backend = HFBackend(tiny_model, Sampling(temperature=1.0, max_new_tokens=8), device="cpu",
                        max_pixels=SMALL_IMAGES)
    rows: list[dict] = []

    class Log:  # an in-memory stand-in for AppendLog
        path, rows = Path("mem"), []

        def write(self, new) -> None:
            rows.extend(new)

    task_list = tasks()[:3]
    eps = run_episodes(navigator(), task_list, ModelPolicy(backend, seed=5), attempts=2, max_steps=2,
                       image_of=lambda p: str(env_dir / "model_images" / f"{p}.png"), log=Log(), batch_size=4)
    m = interactive_metrics(eps, 2, 2)
    assert m["episodes"] == 6 and len(rows) == m["steps"] == sum(e.episode.steps for e in eps)
    assert all(isinstance(r["output"], str) and r["prompt"].startswith("Instruction: from ") for r in rows)
    by_episode = {}
    for r in rows:
        by_episode.setdefault(r["task"], {})[r["attempt"]] = r["output"]
    assert any(v[0] != v[1] for v in by_episode.values())  # sampled attempts differ


class RecordingVLLM:
    """A stand-in for the ``vllm`` module (GPU-only, not installable here) that records what the
    backend hands to ``LLM(...)``, ``SamplingParams(...)`` and ``LLM.generate``."""

    def __init__(self) -> None:
        import types

        self.module = types.ModuleType("vllm")
        self.llm_options: dict = {}
        self.calls: list[tuple[list, list]] = []
        recorder = self

        class SamplingParams:
            def __init__(self, **kwargs) -> None:
                self.kwargs = kwargs

        class LLM:
            def __init__(self, **kwargs) -> None:
                recorder.llm_options = kwargs

            def generate(self, prompts, params, use_tqdm=True):
                recorder.calls.append((prompts, params))
                return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f"answer {i}")])
                        for i in range(len(prompts))]

        self.module.LLM, self.module.SamplingParams = LLM, SamplingParams


def test_vllm_backend_builds_one_image_prompts_and_per_request_sampling(
        tiny_model: Path, env_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from gelab.eval.backends.hf import HFBackend
    from gelab.eval.backends.vllm import VLLMBackend

    fake = RecordingVLLM()
    monkeypatch.setitem(sys.modules, "vllm", fake.module)
    reqs = requests(env_dir)
    sampled = VLLMBackend(tiny_model, Sampling(temperature=1.2, top_k=0, top_p=0.9, max_new_tokens=20))
    assert sampled.generate([]) == [] and not fake.calls
    assert sampled.generate(reqs) == [f"answer {i}" for i in range(len(reqs))]
    assert fake.llm_options["model"] == str(tiny_model)
    assert fake.llm_options["limit_mm_per_prompt"] == {"image": 1}
    # SPEC §1: 256 visual tokens, spelt as transformers' processors take it now (min/max_pixels are deprecated)
    assert fake.llm_options["mm_processor_kwargs"] == {"size": {"shortest_edge": 56 * 56, "longest_edge": 448 * 448}}
    assert fake.llm_options["generation_config"] == "vllm"  # never the checkpoint's generation_config.json
    (prompts, params), = fake.calls
    hf_texts = HFBackend(tiny_model, device="cpu").processor.apply_chat_template(
        [[{"role": "system", "content": r.system},
          {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": r.user}]}] for r in reqs],
        add_generation_prompt=True, tokenize=False)
    for r, prompt, hf_text in zip(reqs, prompts, hf_texts):
        assert prompt["prompt"] == hf_text  # the same conversation the hf backend and training use
        assert prompt["prompt"].count("<|vision_start|><|image_pad|><|vision_end|>") == 1
        assert r.user in prompt["prompt"] and fmt.SYSTEM_PROMPT in prompt["prompt"]
        with Image.open(r.image) as img:
            assert prompt["multi_modal_data"]["image"].tobytes() == img.convert("RGB").tobytes()
    assert [p.kwargs["seed"] for p in params] == [r.seed for r in reqs]  # each request its own stream
    assert all(p.kwargs["temperature"] == 1.2 and p.kwargs["top_p"] == 0.9 and p.kwargs["top_k"] == -1
               and p.kwargs["max_tokens"] == 20 for p in params)
    greedy = VLLMBackend(tiny_model, Sampling(max_new_tokens=7), max_pixels=112 * 112)
    greedy.generate(reqs[:2])
    assert fake.llm_options["mm_processor_kwargs"]["size"]["longest_edge"] == 112 * 112
    assert all(p.kwargs["temperature"] == 0.0 and p.kwargs["max_tokens"] == 7 and "seed" not in p.kwargs
               for p in fake.calls[-1][1])


@pytest.mark.parametrize("sampling", [
    Sampling(temperature=1.2, top_p=0.9, top_k=8, max_new_tokens=6, repetition_penalty=1.3),
    Sampling(max_new_tokens=5, repetition_penalty=1.1),  # greedy
], ids=["sampled", "greedy"])
def test_hf_and_vllm_receive_the_same_explicit_sampling_parameters(
        tiny_model: Path, env_dir: Path, monkeypatch: pytest.MonkeyPatch, sampling: Sampling) -> None:
    from gelab.eval.backends.hf import HFBackend, RowSampler
    from gelab.eval.backends.vllm import VLLMBackend

    fake = RecordingVLLM()
    monkeypatch.setitem(sys.modules, "vllm", fake.module)
    reqs = requests(env_dir, 2)
    hf = HFBackend(tiny_model, sampling, device="cpu", max_pixels=SMALL_IMAGES)
    seen: dict = {}
    inner = hf.model.generate

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.update(kwargs)
        return inner(*args, **kwargs)

    monkeypatch.setattr(hf.model, "generate", spy)
    hf.generate(reqs)
    config = seen["generation_config"]
    row = next((p for p in seen.get("logits_processor") or [] if isinstance(p, RowSampler)), None)
    assert config.do_sample is False and (row is None) == sampling.greedy  # sampled rows draw through RowSampler
    drawn = row.sampling if row else Sampling(0.0, 1.0, 0)
    hf_params = {"temperature": drawn.temperature, "top_p": drawn.top_p, "top_k": drawn.top_k,
                 "repetition_penalty": config.repetition_penalty, "max_new_tokens": config.max_new_tokens}
    VLLMBackend(tiny_model, sampling).generate(reqs)
    v = fake.calls[-1][1][0].kwargs
    vllm_params = {"temperature": v["temperature"], "top_p": v["top_p"], "top_k": max(v["top_k"], 0),
                   "repetition_penalty": v["repetition_penalty"], "max_new_tokens": v["max_tokens"]}
    assert hf_params == vllm_params == sampling.explicit()
    assert (v["presence_penalty"], v["frequency_penalty"], v["min_p"]) == (0.0, 0.0, 0.0)


def test_a_checkpoints_generation_config_never_changes_hf_decoding(tiny_model: Path, env_dir: Path,
                                                                   tmp_path: Path) -> None:
    """Qwen2.5-VL-7B-Instruct ships repetition_penalty 1.05 (and top_k, top_p ...): the hf backend takes
    only the stop and pad ids from a checkpoint's generation_config, every other setting from params."""
    import shutil

    from gelab.eval.backends.hf import HFBackend

    reqs = requests(env_dir)
    plain_backend = HFBackend(tiny_model, Sampling(max_new_tokens=12), device="cpu", max_pixels=SMALL_IMAGES)
    plain = plain_backend.generate(reqs)
    tok = plain_backend.processor.tokenizer
    stops = tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])  # an empty answer stopped at once
    first = [i for text in plain for i in (tok.encode(text)[:1] or stops)]
    copy = tmp_path / "model"
    shutil.copytree(tiny_model, copy)
    config = json.loads((copy / "generation_config.json").read_text())
    # each of these would change these answers if it were inherited (the first suppresses their first tokens)
    config.update(suppress_tokens=sorted(set(first)), repetition_penalty=5.0, no_repeat_ngram_size=1,
                  min_new_tokens=12)
    (copy / "generation_config.json").write_text(json.dumps(config))
    assert HFBackend(copy, Sampling(max_new_tokens=12), device="cpu", max_pixels=SMALL_IMAGES).generate(reqs) == plain


def test_vllm_backend_without_vllm_says_how_to_install(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gelab.eval.backends.vllm import VLLMBackend

    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm raises ImportError
    with pytest.raises(GelabError, match=r"needs the vllm package .*pip install -r requirements-gpu\.lock"):
        VLLMBackend(tiny_model)  # a one-line CLI error naming the package and the command


@pytest.mark.slow
def test_cli_static_and_interactive_with_the_hf_backend(tiny_model: Path, env_dir: Path, tmp_path: Path, run_cli) -> None:
    samples = tmp_path / "static_ood.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in static_rows(image_root=str(env_dir))))
    common = ["--policy", "hf", "--model", str(tiny_model), "--device", "cpu", "--max-pixels", str(SMALL_IMAGES),
              "--max-new-tokens", "8", "--limit-tasks", "7", "--batch-size", "16"]
    out = tmp_path / "m.json"
    run_cli("eval", "static", "--samples", samples, "--predictions", tmp_path / "p.jsonl", "--out", out, *common,
            check=True)
    m = json.loads(out.read_text())
    assert m["tasks"] == 7 and sorted(m["per_path"]) == [str(n) for n in range(1, 8)]
    assert m["steps"] == sum(int(n) + 1 for n in m["per_path"])  # one task per length, L+1 steps each
    out = tmp_path / "i.json"
    run_cli("eval", "interactive", "--env", env_dir, "--subtree", TEST_SUBTREE, "--attempts", 2, "--max-steps", 2,
            "--out", out, *common, check=True)
    m = json.loads(out.read_text())
    assert m["k"] == 2 and m["tasks"] == 7
    assert set(m["strict"]) == {"pass@1", "pass@1_ci95", "pass@1_n", "pass@k", "pass@k_ci95", "pass@k_n", "per_path"}
    rows, _ = read_log(tmp_path / "i.trajectories.jsonl")
    assert len(rows) == m["steps"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def swift_server(tiny_model: Path, tmp_path: Path):
    swift = Path(sys.executable).with_name("swift")
    if not swift.exists():
        pytest.skip("ms-swift's swift command is not installed")
    port = _free_port()
    log = open(tmp_path / "deploy.log", "wb")
    proc = subprocess.Popen([str(swift), "deploy", "--model", str(tiny_model), "--model_type", "qwen2_5_vl",
                             "--template", TEMPLATE, "--custom_register_path",
                             str(TEMPLATE_PLUGIN), "--infer_backend", "transformers", "--host", "127.0.0.1",
                             "--port", str(port), "--served_model_name", "tiny", "--max_new_tokens", "16"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + 300
        while True:
            try:
                with urllib.request.urlopen(url + "/models", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("swift deploy did not come up:\n"
                                   + (tmp_path / "deploy.log").read_text(errors="replace")[-3000:])
            time.sleep(1)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers: the group this test started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.mark.slow
def test_openai_backend_against_swift_deploy(swift_server: str, env_dir: Path) -> None:
    from gelab.eval.backends.openai import OpenAIBackend

    greedy = OpenAIBackend(swift_server, "tiny", Sampling(max_new_tokens=8), concurrency=4)
    reqs = requests(env_dir)
    answers = greedy.generate(reqs)
    assert len(answers) == 4 and all(isinstance(a, str) and a for a in answers)
    assert greedy.generate(reqs[:1]) == answers[:1]  # greedy: the same request, the same answer
    sampled = OpenAIBackend(swift_server, "tiny", Sampling(temperature=1.0, max_new_tokens=8), concurrency=4)
    task_list = tasks()[:2]
    eps = run_episodes(navigator(), task_list, ModelPolicy(sampled, seed=1), attempts=2, max_steps=2,
                       image_of=lambda p: str(env_dir / "model_images" / f"{p}.png"))
    m = interactive_metrics(eps, 2, 2)
    assert m["episodes"] == 4 and m["steps"] == sum(e.episode.steps for e in eps) > 0
    bad = OpenAIBackend(swift_server, "no-such-model", Sampling(max_new_tokens=4))
    with pytest.raises(GelabError, match=r"POST .* failed after 1 try .*: HTTP 4\d\d"):  # a 4xx is not retried
        bad.generate(reqs[:1])
