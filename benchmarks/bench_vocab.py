"""The tiny model before and after the small vocabulary, side by side in one run.

    python benchmarks/bench_vocab.py [--params params.yaml] [--repeats 3] [--threads 2]

Three random-init tiny models (seeded) from the same tokenizer, each at its own page size:

- **before**: the embedded default before the small vocabulary — 128 wide (MLP 256), Qwen2.5-VL's
  151,936 embedding rows, 448² pages (256 visual tokens);
- **vocabulary only**: the params file's ``model.tiny`` and ``model.max_pixels`` with 151,936 rows, so
  that the last column isolates what the rows alone cost;
- **after**: the params file's ``model.tiny`` (:func:`gelab.train.tiny_model.vocab_rows` rows) at its
  ``model.max_pixels``.

The rows past the tokenizer's are never produced by it but cost every step. For each model,
interleaved, medians of ``--repeats``:

1. **SFT step**: forward, backward and AdamW on 16 rows of ``build/data/sft.jsonl`` (loss on the
   answers) in plain PyTorch — what ms-swift's step spends in the model.
2. **sampled interactive round**: one :meth:`HFBackend.generate` call on 32 first-step requests of the
   interactive benchmark at ``eval`` sampling (temperature, top-k, top-p, ``max_new_tokens``).
3. **static evaluation of one file**: greedy predictions on every row of the ``eval.static_limit_tasks``
   subset of ``build/data/static_id.jsonl``, through :func:`gelab.eval.static_run.predict` in batches of
   ``eval.batch_size``.

Needs ``build/data`` and ``build/env/base`` (``dvc repro data``). Prints one table row per measure with
both figures and the speed-up.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from msgspec.structs import replace

QWEN_ROWS = 151936


def image_size_text(max_pixels: int) -> str:
    side = math.isqrt(max_pixels)
    return f"{side}²" if side * side == max_pixels else f"{max_pixels:,}-pixel"


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def build(params: Any, out: Path, rows: int | None, max_pixels: int) -> Path:
    """The tiny model at ``out``; with ``rows`` its embedding resized to that many rows (same seed)."""
    from gelab.train.tiny_model import build_tiny_model

    build_tiny_model(params, params.corpus, out, max_pixels)
    if rows is not None:
        import torch
        from transformers import Qwen2_5_VLForConditionalGeneration

        from gelab.train.tiny_model import tiny_config

        config = tiny_config(params)
        config.text_config.vocab_size = rows
        torch.manual_seed(params.seed)
        model = Qwen2_5_VLForConditionalGeneration(config).to(torch.float32)
        model.generation_config = Qwen2_5_VLForConditionalGeneration.from_pretrained(out).generation_config
        (out / "model.safetensors").unlink()
        model.save_pretrained(out)
    return out


def sft_batch(processor: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """16 SFT rows as one padded batch with labels on the answers only."""
    from PIL import Image

    texts, images, prompts = [], [], []
    for row in rows:
        messages = [{"role": m["role"], "content": m["content"].replace("<image>", "")} for m in row["messages"]]
        user = next(i for i, m in enumerate(messages) if m["role"] == "user")
        messages[user] = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": messages[user]["content"]}]}
        texts.append(processor.apply_chat_template(messages, tokenize=False))
        prompts.append(processor.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True))
        images.append(Image.open(row["images"][0]).convert("RGB"))
    processor.tokenizer.padding_side = "right"
    batch = processor(text=texts, images=images, return_tensors="pt", padding=True)
    prompt_lens = [len(p) for p in processor(text=prompts, images=images, padding=False)["input_ids"]]
    labels = batch["input_ids"].clone()
    for i, n in enumerate(prompt_lens):
        labels[i, :n] = -100
    labels[batch["attention_mask"] == 0] = -100
    batch["labels"] = labels
    return batch


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)

    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from gelab.env.envdir import load_environment
    from gelab.eval.backends import Request, Sampling
    from gelab.eval.backends.hf import HFBackend
    from gelab.eval.policies import ModelPolicy
    from gelab.eval.records import AppendLog
    from gelab.eval.static_run import predict, select_samples
    from gelab.io import read_jsonl
    from gelab.params import EvalParams, ModelParams, load_section
    from gelab import format as fmt
    from gelab.train.tiny_model import vocab_rows

    torch.set_num_threads(a.threads)
    model_p = load_section(a.params, "model", ModelParams)
    ev = load_section(a.params, "eval", EvalParams)
    env = load_environment("build/env/base")
    sft = read_jsonl("build/data/sft.jsonl")
    train_rows = [r for r in sft if r.get("images")][:16]
    static_rows = select_samples(read_jsonl("build/data/static_id.jsonl"), ev.static_limit_tasks, ev.seed)
    tasks = read_jsonl("build/data/tasks_test.jsonl")[:32]
    requests = [Request(fmt.SYSTEM_PROMPT, fmt.navigation_prompt(t["start"], t["target"]),
                        str(env.model_image_path(t["start"])), seed=i) for i, t in enumerate(tasks)]
    sampling = Sampling(ev.temperature, ev.top_p, ev.top_k, ev.max_new_tokens)

    tmp = Path(tempfile.mkdtemp(prefix="bench_vocab_"))
    before = replace(model_p.tiny, text_hidden=128, text_intermediate=256)
    models = {"before": (before, QWEN_ROWS, 448 * 448), "vocab": (model_p.tiny, QWEN_ROWS, model_p.max_pixels),
              "after": (model_p.tiny, None, model_p.max_pixels)}
    folders = {k: build(p, tmp / k, rows, pixels) for k, (p, rows, pixels) in models.items()}
    times: dict[str, dict[str, list[float]]] = {k: {"sft": [], "round": [], "static": []} for k in models}
    for _ in range(a.repeats + 1):  # the first pass warms up and is dropped
        for name, folder in folders.items():
            max_pixels = models[name][2]
            model = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder, dtype=torch.float32)
            model.train()
            processor = AutoProcessor.from_pretrained(folder)
            batch = sft_batch(processor, train_rows)
            opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)

            def step() -> None:
                loss = model(**batch).loss
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

            times[name]["sft"].append(timed(step))
            backend = HFBackend(folder, sampling, device="cpu", max_pixels=max_pixels)
            times[name]["round"].append(timed(lambda: backend.generate(requests)))
            greedy = ModelPolicy(HFBackend(folder, Sampling(0.0, 1.0, 0, ev.max_new_tokens), device="cpu",
                                           max_pixels=max_pixels))
            out = tmp / f"{name}_static.jsonl"
            with AppendLog(out, resume=False) as log:
                times[name]["static"].append(timed(lambda: predict(static_rows, greedy, log, batch_size=ev.batch_size)))
            out.unlink(missing_ok=True)
    t = model_p.tiny
    print(f"before: 4 layers x 128, {QWEN_ROWS:,} rows, 448² pages; after: {t.text_layers} layers x "
          f"{t.text_hidden}, {vocab_rows(t.vocab_learned):,} rows, {image_size_text(model_p.max_pixels)} pages; "
          f"{a.threads} threads; medians of {a.repeats}")
    labels = {"sft": "SFT step, 16 rows (s)", "round": f"sampled interactive round, {len(requests)} requests, "
              f"{ev.max_new_tokens} new tokens (s)", "static": f"static evaluation, {len(static_rows)} rows of "
              "static_id.jsonl (s)"}
    print("| what | before | after | speed-up | same model with 151,936 rows | speed-up from the rows alone |")
    print("|---|---:|---:|---:|---:|---:|")
    for key, label in labels.items():
        b, v, s_ = (statistics.median(times[k][key][1:]) for k in ("before", "vocab", "after"))
        print(f"| {label} | {b:.2f} | {s_:.2f} | {b / s_:.1f}× | {v:.2f} | {v / s_:.1f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
