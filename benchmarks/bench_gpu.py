"""GPU numbers of the paper profile on one GPU: SFT throughput and memory, a few RL steps, and the hf
backend's batched evaluation round, extrapolated to the full interactive benchmark.

    python benchmarks/bench_gpu.py [--out build/bench_gpu] [--layers 28] [--rl-layers 14]
                                   [--sft-steps 4] [--rl-steps 2] [--eval-requests 256]
                                   [--parts model,sft,st_rl,mt_rl,eval] [--device-budget-s 540]

Needs one CUDA GPU, PyTorch, transformers, ms-swift and DeepSpeed (small wheels; no vLLM, no
flash-attn, no network) and two folders the pipeline writes on any machine: the environment
(``build/env/base``: ``ui_structure.json``, ``icons.json``, ``model_images/``) and the tiny model's
tokenizer and processor (``build/models/tiny``; its weights are not read). Everything else is
made here, under ``--out``:

1. **model**: a random-init ``Qwen2_5_VLForConditionalGeneration`` with Qwen2.5-VL-7B-Instruct's shape
   (text 3,584 wide, 28 layers, 28 heads / 4 KV heads, MLP 18,944, untied 152,064-row embedding and
   output layer; ViT 32 blocks of 1,280, full attention in blocks 7/15/23/31), bf16, saved in 5 GB
   shards with the tiny tokenizer (Qwen's special tokens at their canonical ids). ``--layers`` keeps
   fewer text layers when the full model does not fit; every figure then states the layer count and
   the per-layer extrapolation to 28.
2. **sft**: the paper profile's own ``swift sft`` command (:func:`gelab.train.command.sft_command`
   with ``profiles/paper.yaml``), with the rehearsal's substitutions only: one process instead of 16
   GPUs, sdpa instead of flash-attention, no packing (packing needs flash-attention), ``--sft-steps``
   steps, nothing saved (``--save_strategy no``; 64 GB of disk hold no 7B ZeRO-3 checkpoint). Reports
   s/step, samples/s (per-device batch x accumulation / s per step, first step excluded) and peak GPU
   memory from ms-swift's log.
3. **st_rl**, **mt_rl**: the paper profile's ``swift rlhf`` commands (GRPO, 8 generations, temperature
   1.2, top-k 8, beta 0.04, MT-RL 12 turns with the gelab_nav scheduler) with the PyTorch engine
   instead of vLLM, one prompt per step (8 completions), ``--rl-steps`` steps, on a model of
   ``--rl-layers`` text layers: GRPO holds a frozen reference model beside the ZeRO-3 policy, which
   with the optimizer states of a full 7B does not fit one GPU. s/step and peak memory.
4. **eval**: the hf backend (:class:`gelab.eval.backends.hf.HFBackend`, bf16, sdpa) on the model of
   step 1, one batched round of ``--eval-requests`` first-step requests of the interactive
   benchmark (the 2,162 test tasks x 5 attempts = 10,810 episodes, start page and instruction, the
   paper profile's sampling). A random-init model never stops early, so every answer is
   ``eval.max_new_tokens`` long: an upper bound per answer. Extrapolated: seconds per answer x the
   answers of a full 5-attempt run, at the oracle's mean steps (shortest path + complete: a lower
   bound on the steps a model takes) and at the 12-step cap (upper bound), beside the earlier
   reproduction's 2 h 55 min for one greedy attempt (SPEC §8).

Writes ``OUT/results.json`` after every part (a part that fails, e.g. out of memory, is recorded
with its error and the next part runs) and prints a table for BENCHMARKS.md. Parts that would
start after ``--device-budget-s`` seconds are skipped and recorded as such, so one call stays inside
a fixed time on a lent machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from msgspec.structs import replace

from gelab.data.datasets import Source, mt_rl_rows, step_rows
from gelab.env.envdir import load_environment
from gelab.eval.backends import Request, Sampling
from gelab.io import atomic_write_json, jsonl_bytes
from gelab.params import EvalParams, TinyModelParams, load_section
from gelab.seeding import derived_rng
from gelab.tasks.universe import task_universe
from gelab.train.tiny_model import TEMPLATE
from gelab.train.command import rl_command, sft_command
from gelab.train.config import TrainParams
from gelab.train.launch import launch_env
from gelab.train.logs import read_log, step_rows as logged_steps

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "profiles" / "paper.yaml"
EARLIER_GREEDY_S = 2 * 3600 + 55 * 60  # the earlier reproduction: one greedy attempt of 10,810 episodes (SPEC §8)
EPISODES = 10_810  # 2,162 test tasks x 5 attempts

# Qwen2.5-VL-7B-Instruct's shape (its config.json); the tokenizer stays the tiny model's.
SEVEN_B = dict(text_hidden=3584, text_intermediate=18944, text_layers=28, text_heads=28, text_kv_heads=4,
               vision_hidden=1280, vision_intermediate=3420, vision_depth=32, vision_heads=16)
SEVEN_B_VOCAB = 152064
SEVEN_B_FULL_ATTENTION = [7, 15, 23, 31]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "processor_config.json")


def seven_b_config(layers: int) -> Any:
    """The 7B's configuration with ``layers`` text layers (random init; the tiny model's special ids)."""
    from gelab.train.tiny_model import tiny_config

    config = tiny_config(TinyModelParams(**{**SEVEN_B, "text_layers": layers}))
    config.tie_word_embeddings = False
    config.text_config.tie_word_embeddings = False
    config.text_config.vocab_size = SEVEN_B_VOCAB
    config.vision_config.fullatt_block_indexes = SEVEN_B_FULL_ATTENTION
    return config


def build_model(out: Path, layers: int, tokenizer: Path) -> dict[str, Any]:
    """A random-init 7B-shaped model in bf16, made on the GPU, saved in 5 GB shards with the tokenizer."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    if (out / "config.json").exists():
        return json.loads((out / "gelab_bench_model.json").read_text())
    start = time.perf_counter()
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Qwen2_5_VLForConditionalGeneration._from_config(seven_b_config(layers), dtype=torch.bfloat16)
    params = sum(p.numel() for p in model.parameters())
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, max_shard_size="5GB")
    for name in TOKENIZER_FILES:
        if (tokenizer / name).exists():
            shutil.copy2(tokenizer / name, tmp / name)
    info = {"text_layers": layers, "parameters": params, "build_s": round(time.perf_counter() - start, 1)}
    (tmp / "gelab_bench_model.json").write_text(json.dumps(info))
    del model
    torch.cuda.empty_cache()
    tmp.rename(out)
    return info


def paper_params(init: str, dataset: str) -> TrainParams:
    """profiles/paper.yaml with the rehearsal's substitutions for one GPU (see the module docstring)."""
    tp = TrainParams.load(PAPER)
    launch = replace(tp.launch, nnodes=1, node_rank=0, master_addr="127.0.0.1", nproc_per_node=1,
                     attn_impl="sdpa", dataset_num_proc=4)
    model = replace(tp.model, base=init, template=TEMPLATE)  # the tiny tokenizer's image id, not 151655
    return replace(tp, launch=launch, model=model, sft=replace(tp.sft, dataset=dataset, packing=False))


def run_swift(command: list[str], tp: TrainParams, run_dir: Path, timeout_s: float) -> dict[str, Any]:
    """Run one ms-swift command; per-step seconds and peak memory from its logging.jsonl."""
    env = launch_env(tp.launch, tp.model.max_pixels)
    env["NNODES"], env["NPROC_PER_NODE"] = "1", "1"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    start = time.perf_counter()
    with open(run_dir / "stdout.log", "wb") as log:
        proc = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s, cwd=REPO)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (run_dir / "stdout.log").read_bytes()[-3000:].decode(errors="replace")
        raise RuntimeError(f"exit {proc.returncode}: ...{tail}")
    log = read_log(run_dir / "run")
    steps = logged_steps(log)
    memory = [float(e["memory(GiB)"]) for e in log if "memory(GiB)" in e]
    speed = [e["train_speed(s/it)"] for e in steps if "train_speed(s/it)" in e]
    return {"wall_s": round(wall, 1), "steps": len(steps),
            "s_per_step": speed[-1] if speed else None,  # ms-swift's mean over the run's steps
            "peak_memory_gib": max(memory) if memory else None}


def sft_part(a: argparse.Namespace, out: Path, model: Path, source: Source) -> dict[str, Any]:
    tasks = task_universe(source.nav.structure, "page_1", source.nav)
    derived_rng(0, "bench_gpu", "sft").shuffle(tasks)
    rows = list(step_rows(source, tasks[:400], derived_rng(0, "bench_gpu", "rows")))
    data = out / "data" / "sft.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_bytes(jsonl_bytes(rows))
    tp = paper_params(str(model), str(data))
    sft = replace(tp.sft, max_steps=a.sft_steps, logging_steps=1, extra_args=[*tp.sft.extra_args, "--save_strategy", "no"])
    tp = replace(tp, sft=sft)
    command = sft_command(tp, str(model), str(data), str(out / "sft" / "run"))
    if a.dry_run:
        return {"command": command}
    result = run_swift(command, tp, out / "sft", a.part_timeout_s)
    per_step_samples = sft.per_device_batch * sft.grad_accum
    result.update(per_device_batch=sft.per_device_batch, grad_accum=sft.grad_accum, packing=False, attn="sdpa",
                  samples_per_s=round(per_step_samples / result["s_per_step"], 2) if result["s_per_step"] else None)
    return result


def rl_part(a: argparse.Namespace, out: Path, model: Path, source: Source, stage: str) -> dict[str, Any]:
    tasks = task_universe(source.nav.structure, "page_3" if stage == "st_rl" else "page_4", source.nav)
    derived_rng(0, "bench_gpu", stage).shuffle(tasks)
    rng = derived_rng(0, "bench_gpu", stage, "rows")
    rows = (list(step_rows(source, tasks[:8], rng, with_answer=False)) if stage == "st_rl"
            else list(mt_rl_rows(source, tasks[:8])))
    data = out / "data" / f"{stage}.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_bytes(jsonl_bytes(rows))
    tp = paper_params(str(model), str(data))
    p = tp.stage(stage)
    p = replace(p, dataset=str(data), max_samples=0, max_path_length=0, use_vllm=False, max_steps=a.rl_steps,
                per_device_batch=p.num_generations, grad_accum=1, logging_steps=1,
                extra_args=[*p.extra_args, "--save_strategy", "no"])
    tp = replace(tp, **{stage: p})
    command = rl_command(tp, stage, str(model), str(data), str(out / stage / "run"))
    if a.dry_run:
        return {"command": command}
    result = run_swift(command, tp, out / stage, a.part_timeout_s)
    result.update(num_generations=p.num_generations, max_turns=p.max_turns, engine="pytorch",
                  max_completion_length=p.max_completion_length)
    return result


def eval_part(a: argparse.Namespace, model: Path, source: Source, env: Any) -> dict[str, Any]:
    import torch

    from gelab import format as fmt
    from gelab.eval.backends.hf import HFBackend

    ep = load_section(PAPER, "eval", EvalParams)
    sampling = Sampling(ep.temperature, ep.top_p, ep.top_k, ep.max_new_tokens, ep.repetition_penalty)
    tp = TrainParams.load(PAPER)
    backend = HFBackend(model, sampling, device="cuda", dtype="bfloat16", max_pixels=tp.model.max_pixels)
    tasks = task_universe(source.nav.structure, "page_5", source.nav)
    requests = []
    for i in range(a.eval_requests):
        t = tasks[(i // 5) % len(tasks)]
        requests.append(Request(fmt.SYSTEM_PROMPT, fmt.instruction_text(t.start, t.target, "Null"),
                                str(env.model_image_path(t.start)), i))
    backend.generate(requests[:8])  # warm-up (kernels, caches)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    answers = backend.generate(requests)
    torch.cuda.synchronize()
    round_s = time.perf_counter() - start
    per_answer = round_s / len(requests)
    mean_optimal = statistics.fmean(t.path_length + 1 for t in tasks)  # clicks + complete
    return {"requests": len(requests), "round_s": round(round_s, 2), "s_per_answer": round(per_answer, 4),
            "max_new_tokens": ep.max_new_tokens, "answer_tokens_mean": statistics.fmean(
                len(backend.processor.tokenizer(x)["input_ids"]) for x in answers),
            "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1),
            "full_run_s_at_oracle_steps": round(per_answer * EPISODES * mean_optimal),
            "full_run_s_at_12_steps": round(per_answer * EPISODES * ep.max_steps),
            "oracle_mean_steps": round(mean_optimal, 2), "earlier_greedy_attempt_s": EARLIER_GREEDY_S}


def table(results: dict[str, Any]) -> str:
    lines = ["| part | figure |", "|---|---|"]
    for part, r in results["parts"].items():
        if "error" in r or "skipped" in r:
            lines.append(f"| {part} | {r.get('error', r.get('skipped'))[:200]} |")
            continue
        shown = ", ".join(f"{k} {v}" for k, v in r.items() if k not in ("wall_s",))
        lines.append(f"| {part} | {shown} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="build/bench_gpu", type=Path)
    ap.add_argument("--env", default="build/env/base", type=Path, help="environment folder")
    ap.add_argument("--tokenizer", default="build/models/tiny", type=Path, help="tiny model folder (tokenizer)")
    ap.add_argument("--layers", type=int, default=28, help="text layers of the SFT/eval model (7B: 28)")
    ap.add_argument("--rl-layers", type=int, default=14, help="text layers of the RL model (policy + reference)")
    ap.add_argument("--sft-steps", type=int, default=4)
    ap.add_argument("--rl-steps", type=int, default=2)
    ap.add_argument("--eval-requests", type=int, default=256)
    ap.add_argument("--parts", default="sft,st_rl,mt_rl,eval")
    ap.add_argument("--part-timeout-s", type=float, default=240.0)
    ap.add_argument("--device-budget-s", type=float, default=540.0)
    ap.add_argument("--dry-run", action="store_true", help="write the data and print each part's command; run nothing")
    a = ap.parse_args(argv)
    import torch

    if not a.dry_run and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device (this benchmark measures the paper profile on a GPU)", file=sys.stderr)
        return 2
    start = time.perf_counter()
    a.out.mkdir(parents=True, exist_ok=True)
    env = load_environment(a.env)
    source = Source.of(env, a.env)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    results: dict[str, Any] = {"gpu": gpu, "torch": torch.__version__,
                               "date": time.strftime("%Y-%m-%d"), "parts": {}}
    models: dict[int, Path] = {}

    def model_of(layers: int) -> Path:
        if a.dry_run:
            return a.out / f"model_{layers}l"
        if layers not in models:
            path = a.out / f"model_{layers}l"
            results["parts"][f"model_{layers}l"] = build_model(path, layers, a.tokenizer)
            models[layers] = path
        return models[layers]

    jobs = {"sft": lambda: sft_part(a, a.out, model_of(a.layers), source),
            "st_rl": lambda: rl_part(a, a.out, model_of(a.rl_layers), source, "st_rl"),
            "mt_rl": lambda: rl_part(a, a.out, model_of(a.rl_layers), source, "mt_rl"),
            "eval": lambda: {"requests": a.eval_requests} if a.dry_run else eval_part(a, model_of(a.layers), source, env)}
    for part in a.parts.split(","):
        if time.perf_counter() - start > a.device_budget_s:
            results["parts"][part] = {"skipped": f"past --device-budget-s {a.device_budget_s:.0f}"}
            continue
        t0 = time.perf_counter()
        try:
            results["parts"][part] = jobs[part]()
        except Exception as exc:  # noqa: BLE001 - a part's failure (out of memory, say) is a result too
            results["parts"][part] = {"error": f"{type(exc).__name__}: {exc}"[-1500:],
                                      "trace": traceback.format_exc()[-1500:]}
        results["parts"][part]["part_s"] = round(time.perf_counter() - t0, 1)
        atomic_write_json(a.out / "results.json", results)
        print(f"[{time.perf_counter() - start:6.0f} s] {part}: {json.dumps(results['parts'][part])[:400]}", flush=True)
    results["total_s"] = round(time.perf_counter() - start, 1)
    atomic_write_json(a.out / "results.json", results)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
