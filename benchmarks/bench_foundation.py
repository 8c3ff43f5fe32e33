"""Foundation benchmarks: Env-Base generation with rendering, building every dataset, env steps/s.

Prints medians over repeated runs. Usage: python benchmarks/bench_foundation.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def bench_generate(root: Path, repeats: int) -> tuple[float, Path]:
    from gelab.env.envdir import RenderSettings, write_environment
    from gelab.env.generate import generate
    from gelab.params import EnvParams

    params = EnvParams()
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        structure, art = generate(params)
        write_environment(root / f"base{i}", structure, art, RenderSettings(params.model_image_size),
                          workers=params.render_workers, progress=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times), root / "base0"


def bench_datasets(base: Path, root: Path, repeats: int) -> float:
    from gelab.data.datasets import Source, build_all
    from gelab.env.envdir import load_environment, write_environment
    from gelab.env.variants import KINDS, make_variant
    from gelab.params import DataParams, EnvParams

    env = load_environment(base)
    variants = {}
    for kind in KINDS:
        structure, art = make_variant(kind, env.structure, env.art, 1, EnvParams())
        variants[kind] = Source.of(write_environment(root / kind, structure, art, env.settings, workers=2,
                                                     progress=False))
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        build_all(DataParams(), Source.of(env), variants, root / f"data{i}", progress=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_steps(base: Path, obs_mode: str, repeats: int, steps: int = 200_000) -> float:
    """Structured actions along oracle episodes (clicks that move, then complete), raw env."""
    from gelab.env.navigation import Navigator
    from gelab.tasks.gym_env import GuiNavEnv

    env = GuiNavEnv(base, subtree="page_5", obs_mode=obs_mode)
    nav = Navigator(env.environment.structure)
    episodes = []
    for task in env.tasks:
        actions = []
        for page, name in nav.shortest_path(task.start, task.target):
            b = nav.bbox_norm(page, name)
            actions.append({"kind": 0, "point": np.array([b[0], b[1]])})
        actions.append({"kind": 1, "point": np.array([0, 0])})
        episodes.append((task, actions))
    rates = []
    for _ in range(repeats):
        done, elapsed, i = 0, 0.0, 0
        while done < steps:
            task, actions = episodes[i % len(episodes)]
            i += 1
            env.reset(options={"start": task.start, "target": task.target})
            start = time.perf_counter()
            for a in actions:
                env.step(a)
            elapsed += time.perf_counter() - start
            done += len(actions)
        rates.append(done / elapsed)
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        gen, base = bench_generate(root, args.repeats)
        print(f"Env-Base generation + rendering (231 full + 231 model images): median {gen:.2f} s")
        data = bench_datasets(base, root, args.repeats)
        print(f"all datasets (SFT, ST-RL, MT-RL, static ID/OOD + 4 OOD variants, tasks): median {data:.2f} s")
        for mode in ("image", "text"):
            rate = bench_steps(base, mode, args.repeats)
            print(f"env.step, structured actions, obs_mode={mode}: median {rate:,.0f} steps/s")


if __name__ == "__main__":
    main()
