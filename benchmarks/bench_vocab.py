"""The tiny model's output layer: Qwen's 151,936 embedding rows against the small vocabulary's, side by side.

    python benchmarks/bench_vocab.py [--params params.yaml] [--repeats 3] [--threads 2]

Builds the embedded default's tiny model (``model.tiny`` of the params file, seeded, random init) twice
from the same tokenizer: once with the small vocabulary's rows (:func:`gelab.train.tiny_model.vocab_rows`)
and once with Qwen2.5-VL's 151,936 rows (the layout before the small vocabulary: the extra rows are
never produced by the tokenizer but cost every step). Then, for each, interleaved, medians of
``--repeats``:

1. **SFT step**: forward, backward and AdamW on 16 rows of ``build/data/sft.jsonl`` (448² pages, loss on
   the answers) in plain PyTorch — what ms-swift's step spends in the model.
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
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

QWEN_ROWS = 151936


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
    from gelab.eval.static_run import predict, select_samples
    from gelab.io import read_jsonl
    from gelab.params import EvalParams, ModelParams, load_section
    from gelab.train.tiny_model import vocab_rows
    from gelab import format as fmt

    torch.set_num_threads(a.threads)
    model_p = load_section(a.params, "model", ModelParams)
    ev = load_section(a.params, "eval", EvalParams)
    env = load_environment("build/env/base")
    sft = read_jsonl("build/data/sft.jsonl")
    train_rows = [r for r in sft if r.get("images")][:16]
    static_rows = select_samples(read_jsonl("build/data/static_id.jsonl"), ev.static_limit_tasks, ev.seed)
    tasks = read_jsonl("build/data/test_tasks.jsonl")[:32] if Path("build/data/test_tasks.jsonl").exists() else []
    requests = [Request(fmt.SYSTEM_PROMPT, fmt.navigation_prompt(t["start"], t["target"]),
                        str(env.model_image_path(t["start"])), seed=i) for i, t in enumerate(tasks)]
    sampling = Sampling(ev.temperature, ev.top_p, ev.top_k, ev.max_new_tokens)

    tmp = Path(tempfile.mkdtemp(prefix="bench_vocab_"))
    layouts = {"small": None, "qwen": QWEN_ROWS}
    folders = {k: build(model_p.tiny, tmp / k, rows, model_p.max_pixels) for k, rows in layouts.items()}
    times: dict[str, dict[str, list[float]]] = {k: {"sft": [], "round": [], "static": []} for k in layouts}
    for _ in range(a.repeats + 1):  # the first pass warms up and is dropped
        for name, folder in folders.items():
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
            backend = HFBackend(folder, sampling, device="cpu", max_pixels=model_p.max_pixels)
            times[name]["round"].append(timed(lambda: backend.generate(requests)))
            greedy = ModelPolicy(HFBackend(folder, Sampling(0.0, 1.0, 0, ev.max_new_tokens), device="cpu",
                                           max_pixels=model_p.max_pixels))
            out = tmp / f"{name}_static.jsonl"
            times[name]["static"].append(timed(lambda: predict(static_rows, greedy, out, batch_size=ev.batch_size,
                                                               resume=False)))
            out.unlink(missing_ok=True)
    small_rows = vocab_rows(model_p.tiny.vocab_learned)
    print(f"tiny model {model_p.tiny.text_layers} layers x {model_p.tiny.text_hidden}; rows {QWEN_ROWS:,} "
          f"(before) vs {small_rows:,} (after); {a.threads} threads; medians of {a.repeats}")
    labels = {"sft": "SFT step, 16 rows, 448² pages (s)", "round": f"sampled interactive round, {len(requests)} "
              f"requests, {ev.max_new_tokens} new tokens (s)", "static": f"static evaluation, {len(static_rows)} rows "
              "of static_id.jsonl (s)"}
    print("| what | before (151,936 rows) | after | speed-up |\n|---|---:|---:|---:|")
    for key, label in labels.items():
        before = statistics.median(times["qwen"][key][1:])
        after = statistics.median(times["small"][key][1:])
        print(f"| {label} | {before:.2f} | {after:.2f} | {before / after:.1f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
