"""A training stage end to end, as the method reads: check the inputs -> build the ms-swift command
-> run it (resumable) -> take the final weights -> write the metrics.

Every stage (``sft``, ``st_rl``, ``mt_rl``) writes one folder ``OUT`` (a DVC output)::

    OUT/command.sh        the exact ms-swift command line and its environment (re-runnable)
    OUT/params.json       the resolved params of the run
    OUT/train.jsonl       the training rows actually used (a seeded subset when max_samples > 0)
    OUT/run/              ms-swift's output_dir: checkpoint-N/ with ZeRO-3 shards (global_stepN/)
                          and the weights ms-swift saved, logging.jsonl -- resume state, kept on
                          disk but never cached by DVC
    OUT/final/            the weights of the last checkpoint as ms-swift saved them -- what the next
                          stage and the evaluation load, and the stage's cached DVC output

The rooms: :mod:`gelab.train.config` (params, stages, errors), :mod:`gelab.train.checks` (inputs),
:mod:`gelab.train.command` (command lines), :mod:`gelab.train.launch` (environment, attempts,
stopping), :mod:`gelab.train.resume` (fingerprint, checkpoints, machine paths),
:mod:`gelab.train.weights` (``final/``), :mod:`gelab.train.logs` (step rows, summary). This module
owns the stage's input rows (curriculum, seeded subset) and the order of the steps.
"""

from __future__ import annotations

import os
import random
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from gelab.errors import InputError, quote
from gelab.io import atomic_write_bytes, atomic_write_json, atomic_write_text, jsonl_bytes, read_jsonl
from gelab.params import RlParams, as_dict
from gelab.train.checks import check_gpu_packages, check_init, check_template
from gelab.train.command import images_per_prompt, stage_command
from gelab.train.config import TrainError, TrainParams
from gelab.train.launch import env_for_log, launch_env, run_attempt, total_wall, world_size
from gelab.train.logs import read_log, resumed_totals, step_rows, steps_csv, summarize, timeline
from gelab.train.resume import (FINISHED, checkpoints, code_digest, fingerprint, finished_run, folder_digest,
                                strip_machine_paths)
from gelab.train.weights import consolidate


def curriculum_rows(rows: list[dict[str, Any]], max_path_length: int) -> list[dict[str, Any]]:
    """The rows whose task has a shortest path of at most ``max_path_length`` clicks (0: every row).

    MT-RL uses it to draw only tasks that fit its turn cap (a task of L clicks needs L + 1 turns);
    without it, a short cap leaves most tasks unsolvable and every GRPO group with zero reward.
    """
    if max_path_length <= 0:
        return rows
    missing = next((r.get("id", i) for i, r in enumerate(rows, 1) if not isinstance(r.get("path_length"), int)), None)
    if missing is not None:
        raise InputError(f"row {quote(missing)}: no whole-number path_length (max_path_length needs the task's length)")
    return [r for r in rows if r["path_length"] <= max_path_length]


def subset_rows(rows: list[dict[str, Any]], max_samples: int, seed: int) -> list[dict[str, Any]]:
    """All rows, or ``max_samples`` of them drawn by a seeded shuffle (file order kept)."""
    if max_samples <= 0 or max_samples >= len(rows):
        return rows
    picked = sorted(random.Random(seed).sample(range(len(rows)), max_samples))
    return [rows[i] for i in picked]


def run_stage(tp: TrainParams, stage: str, init: str, out: str | Path, metrics_dir: str | Path,
              params_file: str = "params.yaml") -> dict[str, Any]:
    """Run one training stage end to end (resuming when possible); returns the summary."""
    out, run_dir = Path(out), Path(out) / "run"
    rows = stage_rows(tp, stage, init, params_file)
    env = launch_env(tp.launch, tp.model.max_pixels)
    command = stage_command(tp, stage, init, str(out / "train.jsonl"), str(run_dir), world_size(env),
                            images=images_per_prompt(rows))
    stamp = fingerprint(command, jsonl_bytes(rows), folder_digest(init), code_digest())
    primary = env["NODE_RANK"] == "0"  # on a shared filesystem only node 0 cleans up and post-processes
    done = _claim_run_dir(stage, out, run_dir, stamp, primary)
    finished = finished_run(run_dir, stamp, done)
    if finished is not None:  # this very run already ended: never train past its last step
        print(f"gelab train {stage}: {done[-1]} already finished this run; not training again", flush=True)
        wall = float(finished["wall_time_s"])
    else:
        full = _write_run_record(tp, stage, init, out, rows, command, env, stamp, done, primary, params_file)
        wall, done = _train(stage, out, full, env, stamp, done, primary)
    if not primary:
        return {"stage": stage, "node_rank": int(env["NODE_RANK"]), "wall_time_s": round(wall, 1)}
    how = consolidate(done[-1], out / "final")
    print(f"gelab train {stage}: {out / 'final'} <- {done[-1].name} ({how})", flush=True)
    return _write_metrics(tp, stage, run_dir, wall, len(rows), world_size(env), done[-1].name, Path(metrics_dir))


def stage_rows(tp: TrainParams, stage: str, init: str, params_file: str) -> list[dict[str, Any]]:
    """Check the stage's inputs (packages, starting weights, template, dataset) and return its rows."""
    p = tp.stage(stage)
    check_gpu_packages(tp, stage)
    check_init(init, "model.base" if stage == "sft" else f"{stage} init")
    check_template(init, tp.model.template)
    if not Path(p.dataset).exists():
        raise TrainError(f"{params_file}: {stage}.dataset: {p.dataset} does not exist (run `dvc repro data`)")
    rows = read_jsonl(p.dataset)
    if isinstance(p, RlParams):
        rows = curriculum_rows(rows, p.max_path_length)
        if not rows:
            raise TrainError(f"{params_file}: {stage}.max_path_length: no row of {p.dataset} has a task of at most "
                             f"{p.max_path_length} clicks")
    return subset_rows(rows, p.max_samples, p.seed)


def _claim_run_dir(stage: str, out: Path, run_dir: Path, stamp: str, primary: bool) -> list[Path]:
    """The run folder of this fingerprint and its complete checkpoints; another run's folder is removed."""
    out.mkdir(parents=True, exist_ok=True)
    stamp_file = run_dir / "gelab_fingerprint"
    previous = stamp_file.read_text().strip() if stamp_file.exists() else None
    done = checkpoints(run_dir)
    if previous != stamp and run_dir.exists():
        if not primary:
            raise TrainError(f"{stage}: {run_dir} belongs to another run; start node 0 (NODE_RANK=0) first")
        shutil.rmtree(run_dir)  # a different run: never resume across command lines, data or weights
        done = []
    run_dir.mkdir(parents=True, exist_ok=True)
    return done


def _write_run_record(tp: TrainParams, stage: str, init: str, out: Path, rows: list[dict[str, Any]],
                      command: list[str], env: dict[str, str], stamp: str, done: list[Path], primary: bool,
                      params_file: str) -> list[str]:
    """Write the fingerprint, the rows and (node 0) the run record; returns the command to launch."""
    atomic_write_text(out / "run" / "gelab_fingerprint", stamp + "\n")  # the same on every node
    atomic_write_bytes(out / "train.jsonl", jsonl_bytes(rows))  # every node's ms-swift reads it
    full = command + (["--resume_from_checkpoint", str(done[-1])] if done else [])
    if primary:  # the run record (a DVC output): node 0's, whatever order the nodes start in
        atomic_write_json(out / "params.json", {"stage": stage, "init": init, "params_file": params_file,
                                                "model": as_dict(tp.model), "launch": as_dict(tp.launch),
                                                stage: as_dict(tp.stage(stage))})
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env_for_log(env).items())
        atomic_write_text(out / "command.sh", "#!/usr/bin/env bash\n" + exports + shlex.join(full) + "\n")
    if done:
        print(f"gelab train {stage}: resuming from {done[-1]}", flush=True)
    return full


def _train(stage: str, out: Path, full: list[str], env: dict[str, str], stamp: str, done: list[Path],
           primary: bool) -> tuple[float, list[Path]]:
    """Run ms-swift once (machine paths stripped before and after); returns the wall time (node 0: of every
    attempt) and the run's checkpoints."""
    run_dir = out / "run"
    swift = shutil.which("swift", path=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]))
    if swift is None:
        raise TrainError("the `swift` command (ms-swift) is not installed in this environment")
    if primary:
        strip_machine_paths(out)  # what a killed attempt left
    try:
        returncode, wall = run_attempt([swift, *full[1:]], env, run_dir, done[-1].name if done else None,
                                       record=primary)
    finally:
        if primary:
            strip_machine_paths(out)
    if returncode != 0:
        raise TrainError(f"{stage}: ms-swift exited with status {returncode} (command in {out}/command.sh)")
    if not primary:
        return wall, done
    wall, done = total_wall(run_dir), checkpoints(run_dir)
    if not done:
        raise TrainError(f"{stage}: ms-swift wrote no checkpoint under {run_dir} (check save_steps/max_steps)")
    atomic_write_json(run_dir / FINISHED, {"fingerprint": stamp, "checkpoint": done[-1].name,
                                           "wall_time_s": round(wall, 1)})
    return wall, done


def _write_metrics(tp: TrainParams, stage: str, run_dir: Path, wall: float, n_rows: int, world: int,
                   checkpoint: str, metrics_dir: Path) -> dict[str, Any]:
    """``METRICS/<stage>.json`` (the summary, returned) and ``METRICS/<stage>_steps.csv``."""
    p = tp.stage(stage)
    log = read_log(run_dir)
    steps = step_rows(timeline(log))
    summary = summarize(stage, steps, log, wall, n_rows)
    summary.update(resumed_totals(log, run_dir, steps, p.per_device_batch * p.grad_accum * world))
    summary["checkpoint"] = checkpoint
    metrics_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(metrics_dir / f"{stage}.json", summary)
    atomic_write_text(metrics_dir / f"{stage}_steps.csv", steps_csv(steps))
    return summary
