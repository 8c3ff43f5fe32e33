"""Sampling cost of the hf backend: one decoding step of the sampler, and a sampled vs greedy round.

    python benchmarks/bench_sampler.py [--model build/models/tiny] [--static build/data/static_ood.jsonl]
                                       [--batch 32] [--repeats 5]

1. The sampler alone: one decoding step of ``RowSampler`` on (batch × vocabulary) float32 logits,
   temperature 1 and no cut (params.yaml's interactive settings).
2. One batched round of the hf backend (``HFBackend.generate`` on ``--batch`` requests from the
   static file, answers of up to params.yaml's ``eval.max_new_tokens``), greedy and sampled
   (``eval.temperature``, ``top_p``, ``top_k``), interleaved; prints both and the ratio
   sampled / greedy (target: <= 1.5) and the tokens generated per round, so that rounds of
   different lengths are not compared as equals.

The model is the pipeline's tiny model (``gelab train model --params params.yaml --out DIR``).
Medians of wall and CPU seconds; CPU time is the steadier figure on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

from gelab import format as fmt
from gelab.eval.backends import Request, Sampling
from gelab.io import read_jsonl
from gelab.params import EvalParams, load_section


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    start, start_cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - start, time.process_time() - start_cpu, result


def medians(samples: list[tuple[float, float]]) -> str:
    wall, cpu = zip(*samples)
    return f"{statistics.median(wall):.3f} s wall, {statistics.median(cpu):.3f} s CPU"


def bench_step(batch: int, vocab: int, repeats: int) -> None:
    import torch

    from gelab.eval.backends.hf import RowSampler

    logits = torch.randn(batch, vocab, generator=torch.Generator().manual_seed(0)) * 4
    ids = torch.zeros(batch, 1, dtype=torch.long)
    sampler = RowSampler(range(batch), Sampling(temperature=1.0))
    sampler(ids, logits.clone())  # warm-up
    runs = []
    for _ in range(repeats):
        scores = logits.clone()
        wall, cpu, _ = timed(lambda: sampler(ids, scores))
        runs.append((wall, cpu))
    print(f"sampler step, {batch} rows x {vocab} logits: median {medians(runs)}")


def bench_round(model: str, static: str, batch: int, repeats: int, ev: EvalParams) -> None:
    from gelab.eval.backends.hf import HFBackend

    rows = [r for r in read_jsonl(static)][:: 7][:batch]  # spread over tasks, steps and pages
    requests = [Request(fmt.SYSTEM_PROMPT, next(m["content"] for m in r["messages"] if m["role"] == "user")
                        .replace("<image>", ""), r["images"][0], seed=1000 + i) for i, r in enumerate(rows)]
    greedy = HFBackend(model, Sampling(max_new_tokens=ev.max_new_tokens), device="cpu", max_pixels=ev.max_pixels)
    sampled = HFBackend(model, Sampling(ev.temperature, ev.top_p, ev.top_k, ev.max_new_tokens), device="cpu",
                        max_pixels=ev.max_pixels)
    lengths: dict[str, list[int]] = {"greedy": [], "sampled": []}
    for name, backend in (("greedy", greedy), ("sampled", sampled)):
        inner = backend.model.generate

        def recording(*args: Any, _inner: Any = inner, _name: str = name, **kwargs: Any) -> Any:
            out = _inner(*args, **kwargs)
            lengths[_name].append(out.shape[1] - kwargs["input_ids"].shape[1])
            return out

        backend.model.generate = recording  # type: ignore[method-assign]
        backend.generate(requests)  # warm-up (and the image cache)
    times: dict[str, list[tuple[float, float]]] = {"greedy": [], "sampled": []}
    for _ in range(repeats):  # interleaved, so that load from other processes hits both alike
        for name, backend in (("greedy", greedy), ("sampled", sampled)):
            wall, cpu, _ = timed(lambda: backend.generate(requests))
            times[name].append((wall, cpu))
    for name in times:
        print(f"{name} round, {batch} requests, {lengths[name][-1]} new tokens: median {medians(times[name])}")
    ratio_wall = statistics.median(w for w, _ in times["sampled"]) / statistics.median(w for w, _ in times["greedy"])
    ratio_cpu = statistics.median(c for _, c in times["sampled"]) / statistics.median(c for _, c in times["greedy"])
    print(f"sampled / greedy: {ratio_wall:.2f} wall, {ratio_cpu:.2f} CPU (target <= 1.5)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="build/models/tiny", help="HF folder (default: the pipeline's tiny model)")
    ap.add_argument("--static", default="build/data/static_ood.jsonl", help="requests come from this static file")
    ap.add_argument("--params", default="params.yaml", help="sampling and max_new_tokens from its eval section")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=151665, help="logits per row for the step benchmark")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    if not Path(args.model).is_dir():
        print(f"{args.model}: no model folder; build it with `gelab train model --params params.yaml --out "
              f"{args.model}`", file=sys.stderr)
        return 2
    ev = load_section(args.params, "eval", EvalParams)
    bench_step(args.batch, args.vocab, args.repeats)
    bench_round(args.model, args.static, args.batch, args.repeats, ev)
    return 0


if __name__ == "__main__":
    sys.exit(main())
