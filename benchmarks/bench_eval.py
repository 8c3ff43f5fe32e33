"""Evaluation speed: prints medians (seconds) and the batched/sequential ratio of the hf backend.

    python benchmarks/bench_eval.py [--env build/env/base] [--static build/data/static_ood.jsonl]
                                    [--model HF_FOLDER] [--repeats 5]

1. Oracle interactive evaluation, every task of the test subtree x 5 attempts, trajectory log
   included (target: <= 5 s).
2. Scoring a full static file of predictions (the samples' own solutions, every 7th replaced by
   garbage) in the project layout and in the released layout (target: <= 0.3 s).
3. hf backend, greedy, interactive episodes: batched (every live episode per round, in model calls of
   params.yaml's eval.batch_size, answers of eval.max_new_tokens) vs one episode at a time; checks
   that the trajectories are identical and prints the speed-up (target: >= 5x).
   Without --model a tiny random Qwen2.5-VL is built (the test suite's builder).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from gelab.env.envdir import load_environment
from gelab.env.navigation import Navigator
from gelab.eval.interactive import Attempt, interactive_metrics, run_episodes
from gelab.eval.policies import ModelPolicy, OraclePolicy
from gelab.eval.records import AppendLog
from gelab.eval.static import score_file
from gelab.eval.subsets import stratified
from gelab.io import read_jsonl
from gelab.params import EvalParams, load_section
from gelab.tasks.episode import Episode
from gelab.tasks.universe import task_universe


def median_time(fn, repeats: int) -> tuple[str, object]:
    """Median wall and CPU seconds of ``repeats`` calls (CPU time is robust to a busy shared machine)."""
    wall, cpu, result = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return f"median {statistics.median(wall):.3f} s wall, {statistics.median(cpu):.3f} s CPU", result


def bench_oracle(env_dir: str, subtree: str, repeats: int, tmp: Path) -> None:
    env = load_environment(env_dir)
    nav = Navigator(env.structure)
    tasks = task_universe(env.structure, subtree, nav)

    def once() -> dict:
        with AppendLog(tmp / "oracle.jsonl", resume=False) as log:
            eps = run_episodes(nav, tasks, OraclePolicy(nav), attempts=5, max_steps=12,
                               image_of=lambda p: str(env.model_image_path(p)), log=log)
        return interactive_metrics(eps, 5, 12)

    t, m = median_time(once, repeats)
    print(f"oracle interactive: {len(tasks)} tasks x 5 attempts, {m['steps']} steps: {t} "  # type: ignore[index]
          f"(strict pass@1 {m['strict']['pass@1']:.1f})")  # type: ignore[index]


def bench_static(static: str, repeats: int, tmp: Path) -> None:
    rows = read_jsonl(static)
    answers = ["garbage" if i % 7 == 0 else r["solution"] for i, r in enumerate(rows)]
    ours, released = tmp / "ours.jsonl", tmp / "released.jsonl"
    with open(ours, "w") as f:
        for r, a in zip(rows, answers):
            f.write(json.dumps({**{k: v for k, v in r.items() if k not in ("messages", "images")}, "prediction": a}) + "\n")
    with open(released, "w") as f:
        for i, (r, a) in enumerate(zip(rows, answers)):
            msgs = [m for m in r["messages"] if m["role"] != "system"]
            rec = {"idx": i, "path": r["path_length"], "task": f"From {r['start']} to {r['target']}",
                   "bbox_norm": r["bbox_norm"], "messages": msgs, "images": r["images"], "prediction": a}
            f.write(json.dumps(rec) + "\n")
    for name, path in (("project layout", ours), ("released layout", released)):
        t, m = median_time(lambda: score_file(path), repeats)
        print(f"static scoring, {name}: {m['steps']} predictions: {t} "  # type: ignore[index]
              f"(overall {m['overall']:.2f})")  # type: ignore[index]


def bench_hf(env_dir: str, subtree: str, model: str | None, tmp: Path, n_tasks: int, max_steps: int,
             batch_size: int, max_new_tokens: int, group: int) -> None:
    from gelab.eval.backends import Sampling
    from gelab.eval.backends.hf import HFBackend

    if model is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from evalkit import build_tiny_qwen

        model = str(build_tiny_qwen(tmp / "tiny"))
    env = load_environment(env_dir)
    nav = Navigator(env.structure)
    tasks = stratified(task_universe(env.structure, subtree, nav), n_tasks, lambda t: t.path_length, 0)
    image_of = lambda p: str(env.model_image_path(p))  # noqa: E731
    backend = HFBackend(model, Sampling(max_new_tokens=max_new_tokens), device="cpu")
    policy = ModelPolicy(backend)
    backend.generate(policy.requests([Attempt(Episode(tasks[0]), 0).observation(image_of)]))  # warm-up

    class Log:
        path, rows = Path("mem"), []

        def __init__(self) -> None:
            self.out: list[dict] = []

        def write(self, rows) -> None:
            self.out.extend(rows)

    # Batched: the harness's own path (`gelab eval interactive`): every live episode per round, in model
    # calls of `batch_size`. Sequential: the earlier reproduction, one step of one episode per call.
    # Interleaved by groups of `group` tasks, so that load from other processes hits both modes alike.
    batched_log, seq_log = Log(), Log()
    batched = sequential = batched_cpu = sequential_cpu = 0.0
    for lo in range(0, len(tasks), group):
        chunk = tasks[lo:lo + group]
        start, start_cpu = time.perf_counter(), time.process_time()
        run_episodes(nav, chunk, policy, attempts=1, max_steps=max_steps, image_of=image_of, log=batched_log,
                     batch_size=batch_size)
        batched += time.perf_counter() - start
        batched_cpu += time.process_time() - start_cpu
        start, start_cpu = time.perf_counter(), time.process_time()
        for task in chunk:
            run_episodes(nav, [task], policy, attempts=1, max_steps=max_steps, image_of=image_of, log=seq_log)
        sequential += time.perf_counter() - start
        sequential_cpu += time.process_time() - start_cpu
    key = lambda r: (r["episode"], r["step"])  # noqa: E731
    same = sorted(batched_log.out, key=key) == sorted(seq_log.out, key=key)
    print(f"hf greedy interactive, {len(tasks)} tasks x {max_steps} steps ({len(seq_log.out)} model answers, "
          f"batch size {batch_size}, max_new_tokens {max_new_tokens}): batched {batched:.1f} s wall "
          f"({batched_cpu:.1f} s CPU), one at a time {sequential:.1f} s wall ({sequential_cpu:.1f} s CPU), "
          f"speed-up {sequential / batched:.1f}x wall, identical trajectories: {same}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="build/env/base")
    ap.add_argument("--static", default="build/data/static_ood.jsonl")
    ap.add_argument("--subtree", default="page_5")
    ap.add_argument("--model", help="HF folder for the hf comparison (default: a tiny random Qwen2.5-VL)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--hf-tasks", type=int, default=64)
    ap.add_argument("--hf-steps", type=int, default=3)
    ap.add_argument("--hf-group", type=int, default=64, help="tasks per batched/sequential interleaving group")
    ap.add_argument("--params", default="params.yaml", help="batch size and max_new_tokens come from its eval section")
    ap.add_argument("--skip-hf", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bench_oracle(args.env, args.subtree, args.repeats, tmp)
        bench_static(args.static, args.repeats, tmp)
        if not args.skip_hf:
            ev = load_section(args.params, "eval", EvalParams)
            bench_hf(args.env, args.subtree, args.model, tmp, args.hf_tasks, args.hf_steps, ev.batch_size,
                     ev.max_new_tokens, args.hf_group)
    return 0


if __name__ == "__main__":
    sys.exit(main())
