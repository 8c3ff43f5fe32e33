"""Training stages through stock ms-swift: command lines from params, launch, resume, consolidate, metrics.

Every stage (``sft``, ``st_rl``, ``mt_rl``) writes one folder ``OUT`` (a DVC output)::

    OUT/command.sh        the exact ms-swift command line and its environment (re-runnable)
    OUT/params.json       the resolved params of the run
    OUT/train.jsonl       the training rows actually used (a seeded subset when max_samples > 0)
    OUT/run/              ms-swift's output_dir: checkpoint-N/ with ZeRO-3 shards (global_stepN/)
                          and the weights ms-swift saved, logging.jsonl -- resume state, kept on
                          disk but never cached by DVC
    OUT/final/            the weights of the last checkpoint as ms-swift saved them (one
                          model.safetensors, or its shards and model.safetensors.index.json, in the
                          training dtype), config, tokenizer, processor -- what the next stage and
                          the evaluation load, and the stage's cached DVC output

Resume: if ``OUT/run`` holds checkpoints written by the same command line (fingerprint), the run
continues from the last one (``--resume_from_checkpoint``); otherwise it starts fresh. However often a
run was interrupted, the step log keeps one row per logged step, from the attempt whose weights the
final checkpoint holds (:func:`timeline`), and the summary's wall time and throughput cover every
attempt (``run/gelab_attempts.json``, kept up to date while ms-swift runs, so a killed attempt counts
too). Ctrl-C, SIGTERM or SIGHUP of gelab stops ms-swift and every process under it (torchrun, the
ranks: SIGTERM, then SIGKILL after :data:`STOP_GRACE_S`); the next run resumes as after a kill.

Machine paths: ms-swift writes the absolute path of the clone into ``args.json``, ``logging.jsonl``,
``trainer_state.json`` and ``completions.jsonl``; after every attempt the text files of ``OUT`` have
that prefix replaced by paths relative to the repository root (the stage's working folder), and
``training_args.bin`` (a pickle of the arguments ``args.json`` already holds, read by nothing) is
removed, so no DVC output carries a machine path (:func:`strip_machine_paths`).

Launch: always through ms-swift's torchrun path (``NPROC_PER_NODE``/``NNODES``/``NODE_RANK``/
``MASTER_ADDR``/``MASTER_PORT`` from ``launch`` params, overridden by the environment), so one CPU
process and 2 nodes × 8 GPUs run the same code. Hub look-ups are switched off (offline flags); the
model and data are local paths. W&B / TensorBoard only when ``launch.report_to`` asks (the W&B key
comes from ``WANDB_API_KEY`` in the environment, never from a file).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from gelab.errors import GelabError, InputError, quote
from gelab.interrupts import Terminated
from gelab.io import (
    atomic_directory,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    jsonl_bytes,
    read_jsonl,
)
from gelab.params import (
    LaunchParams,
    ModelParams,
    ParamsError,
    RlParams,
    SftParams,
    as_dict,
    load_section,
    visual_tokens,
)
from gelab.train.tiny_model import QWEN_IMAGE_PAD_ID, TEMPLATE

STAGES = ("sft", "st_rl", "mt_rl")
LAUNCH_ENV = ("NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "NPROC_PER_NODE")
OFFLINE_ENV = {  # never wait on model hubs: everything is a local path
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "USE_HF": "1",
    "MODELSCOPE_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "DISABLE_TELEMETRY": "1",
}
FINAL_FILES = ("config.json", "generation_config.json", "tokenizer.json",  # besides the weights
               "tokenizer_config.json", "processor_config.json", "preprocessor_config.json",
               "video_preprocessor_config.json", "chat_template.jinja", "chat_template.json",
               "special_tokens_map.json", "vocab.json", "merges.txt", "added_tokens.json")
WEIGHTS = "model.safetensors"  # save_pretrained's one file ...
WEIGHTS_INDEX = "model.safetensors.index.json"  # ... or its shards (ms-swift: --max_shard_size, 5GB)
PLUGIN = Path(__file__).with_name("swift_plugin.py")
CPU_RANKS_PLUGIN = Path(__file__).with_name("swift_cpu_ranks.py")
TEMPLATE_PLUGIN = Path(__file__).with_name("swift_template.py")  # registers tiny_model.TEMPLATE
STOCK_QWEN_VL_TEMPLATES = ("qwen2_vl", "qwen2_5_vl")  # ms-swift finds their images by id 151655


class TrainError(GelabError):
    """A training stage cannot run or failed; the message says what to fix."""


class TrainParams(msgspec.Struct, frozen=True, kw_only=True):
    """The training sections of a params file."""

    model: ModelParams
    launch: LaunchParams
    sft: SftParams
    st_rl: RlParams
    mt_rl: RlParams

    @classmethod
    def load(cls, path: str | Path) -> "TrainParams":
        tp = cls(model=load_section(path, "model", ModelParams), launch=load_section(path, "launch", LaunchParams),
                 sft=load_section(path, "sft", SftParams), st_rl=load_section(path, "st_rl", RlParams),
                 mt_rl=load_section(path, "mt_rl", RlParams))
        tp.check(path)
        return tp

    def check(self, path: str | Path) -> None:
        """Rules across sections: an RL prompt's image and answer fit ``max_length`` (vLLM's context)."""
        image = visual_tokens(self.model.max_pixels)
        for stage in ("st_rl", "mt_rl"):
            p = self.stage(stage)
            if p.max_length < image + p.max_completion_length:
                raise ParamsError(f"{path}: {stage}.max_length: {p.max_length} tokens cannot hold one image "
                                  f"({image} tokens at model.max_pixels {self.model.max_pixels}) and the answer "
                                  f"({p.max_completion_length}, max_completion_length)")

    def stage(self, name: str) -> SftParams | RlParams:
        if name not in STAGES:
            raise InputError(f"unknown stage {quote(name)} (known: {', '.join(STAGES)})")
        return getattr(self, name)


# --- command lines ------------------------------------------------------------------------------


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _common_args(launch: LaunchParams, model: ModelParams, p: SftParams | RlParams, init: str, dataset: str,
                 run_dir: str) -> list[str]:
    gpu = launch.device == "cuda"
    args = [
        "--model", init, "--model_type", model.model_type, "--template", model.template,
        *(["--custom_register_path", os.path.relpath(TEMPLATE_PLUGIN)] if model.template == TEMPLATE else []),
        "--tuner_type", "full", "--torch_dtype", launch.torch_dtype, "--attn_impl", launch.attn_impl,
        "--deepspeed", launch.deepspeed, "--freeze_vit", _flag(p.freeze_vit if isinstance(p, SftParams) else True),
        "--dataset", dataset, "--split_dataset_ratio", "0", "--dataset_num_proc", str(launch.dataset_num_proc),
        "--max_length", str(p.max_length), "--output_dir", run_dir, "--add_version", "false",
        "--learning_rate", repr(p.learning_rate), "--per_device_train_batch_size", str(p.per_device_batch),
        "--gradient_accumulation_steps", str(p.grad_accum), "--num_train_epochs", repr(p.epochs),
        "--max_steps", str(p.max_steps), "--save_steps", str(p.save_steps),
        "--save_total_limit", str(p.save_total_limit), "--logging_steps", str(p.logging_steps),
        "--seed", str(p.seed), "--data_seed", str(p.seed), "--report_to", launch.report_to,
        "--dataloader_num_workers", str(launch.dataloader_num_workers),
        "--check_model", "false",  # no hub look-up for "is the local model the latest"
    ]
    if gpu:
        args += ["--bf16", _flag(launch.torch_dtype == "bfloat16"), "--fp16", "false"]
    else:
        args += ["--bf16", "false", "--fp16", "false"]
    return args


def cpu_ranks_args(launch: LaunchParams, world_size: int) -> tuple[list[str], list[str]]:
    """(flags, plugins) for ZeRO-3 over several CPU processes; nothing for GPUs or one process.

    transformers needs ``--use_cpu true`` to count CPU ranks (otherwise it sees one), gloo is the CPU
    collective backend, and :mod:`gelab.train.swift_cpu_ranks` makes DeepSpeed see the same group.
    """
    if launch.device != "cpu" or world_size <= 1:
        return [], []
    return ["--use_cpu", "true", "--ddp_backend", "gloo"], [os.path.relpath(CPU_RANKS_PLUGIN)]


def sft_command(tp: TrainParams, init: str, dataset: str, run_dir: str, world_size: int = 1) -> list[str]:
    """``swift sft`` for the SFT stage (paper Table 7)."""
    p = tp.sft
    flags, plugins = cpu_ranks_args(tp.launch, world_size)
    args = ["swift", "sft", *_common_args(tp.launch, tp.model, p, init, dataset, run_dir),
            "--lr_scheduler_type", p.lr_scheduler_type, "--warmup_ratio", repr(p.warmup_ratio),
            "--packing", _flag(p.packing), *flags]
    if plugins:
        args += ["--external_plugins", *plugins]
    if p.packing:
        args += ["--padding_free", "true"]
    return args + list(p.extra_args)


def vllm_args(p: RlParams, images_per_prompt: int) -> list[str]:
    """Colocated vLLM sized from the data instead of vLLM's defaults (a 128k context and 999 images per
    prompt to profile memory for): the stage's ``max_length`` (prompt + answer; checked to hold an
    image and the answer, :meth:`TrainParams.check`) and the most images one prompt of the data has.
    MT-RL's prompts stay at one image: each turn is a fresh single-image prompt (gelab_nav)."""
    args = ["--use_vllm", "true", "--vllm_mode", p.vllm_mode]
    if p.vllm_mode == "colocate":
        args += ["--vllm_gpu_memory_utilization", repr(p.vllm_gpu_memory_utilization), "--sleep_level", "1",
                 "--vllm_max_model_len", str(p.max_length),
                 "--vllm_limit_mm_per_prompt", json.dumps({"image": images_per_prompt})]
    return args


def images_per_prompt(rows: list[dict[str, Any]]) -> int:
    """The most images one row of a dataset carries (at least 1)."""
    return max([1, *(len(r.get("images") or []) for r in rows)])


def rl_command(tp: TrainParams, stage: str, init: str, dataset: str, run_dir: str,
               plugin: str | None = None, world_size: int = 1, images: int = 1) -> list[str]:
    """``swift rlhf --rlhf_type grpo`` for ST-RL (four rewards) or MT-RL (episode reward + scheduler)."""
    p = tp.stage(stage)
    assert isinstance(p, RlParams)
    plugin = plugin or os.path.relpath(PLUGIN)
    flags, plugins = cpu_ranks_args(tp.launch, world_size)
    args = ["swift", "rlhf", "--rlhf_type", "grpo", *_common_args(tp.launch, tp.model, p, init, dataset, run_dir),
            *flags, "--external_plugins", plugin, *plugins, "--reward_funcs", *p.rewards,
            "--num_generations", str(p.num_generations), "--temperature", repr(p.temperature),
            "--top_p", repr(p.top_p), "--top_k", str(p.top_k), "--beta", repr(p.beta),
            "--max_completion_length", str(p.max_completion_length), "--loss_scale", p.loss_scale,
            "--lr_scheduler_type", p.lr_scheduler_type, "--warmup_ratio", repr(p.warmup_ratio),
            "--log_completions", "true"]  # <run>/completions.jsonl: what each trained sample held
    if p.max_turns > 1:
        args += ["--multi_turn_scheduler", "gelab_nav", "--max_turns", str(p.max_turns)]
    if p.use_vllm:
        args += vllm_args(p, images)
    else:
        args += ["--use_vllm", "false"]
    return args + list(p.extra_args)


def stage_command(tp: TrainParams, stage: str, init: str, dataset: str, run_dir: str, world_size: int = 1,
                  images: int = 1) -> list[str]:
    if stage == "sft":
        return sft_command(tp, init, dataset, run_dir, world_size=world_size)
    return rl_command(tp, stage, init, dataset, run_dir, world_size=world_size, images=images)


def world_size(env: dict[str, str]) -> int:
    """Ranks of a launch: NNODES x NPROC_PER_NODE (as :func:`launch_env` resolved them)."""
    try:
        return int(env["NNODES"]) * int(env["NPROC_PER_NODE"])
    except (KeyError, ValueError) as exc:
        raise TrainError(f"launch: NNODES and NPROC_PER_NODE must be whole numbers ({exc})") from None


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch_env(launch: LaunchParams, max_pixels: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """The subprocess environment: launch topology (environment wins over params), offline flags."""
    base = dict(os.environ if base is None else base)
    env = dict(base)
    topology = {"NNODES": launch.nnodes, "NODE_RANK": launch.node_rank, "MASTER_ADDR": launch.master_addr,
                "MASTER_PORT": launch.master_port, "NPROC_PER_NODE": launch.nproc_per_node}
    for key, value in topology.items():
        env[key] = base.get(key, str(value))
    if env["NNODES"] != "1" and not env["MASTER_ADDR"]:
        raise TrainError("launch.master_addr: several nodes need node 0's address: set MASTER_ADDR on every node "
                         "(or launch.master_addr)")
    if env["NNODES"] == "1":
        if not env["MASTER_ADDR"]:  # the paper profile's "" on one node (e.g. one 8-GPU machine)
            env["MASTER_ADDR"] = "127.0.0.1"
        if "MASTER_PORT" not in base:
            env["MASTER_PORT"] = str(free_port())  # one node: any free port, so runs side by side never collide
    env.update(OFFLINE_ENV)
    env["MAX_PIXELS"] = str(max_pixels)  # model.max_pixels: qwen_vl_utils' resize cap (448² -> 256 visual tokens)
    env.update(launch.extra_env)
    if launch.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    src = str(Path(__file__).resolve().parents[2])  # the plugin imports gelab in every rank
    env["PYTHONPATH"] = os.pathsep.join([src, *([base["PYTHONPATH"]] if base.get("PYTHONPATH") else [])])
    return env


def env_for_log(env: dict[str, str]) -> dict[str, str]:
    """The variables a run depends on (never secrets): what ``command.sh`` exports."""
    keys = [*LAUNCH_ENV, *OFFLINE_ENV, "MAX_PIXELS", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS"]
    return {k: env[k] for k in keys if k in env}


# --- data, resume, consolidation ----------------------------------------------------------------


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


def checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    found = [d for d in run_dir.glob("checkpoint-*") if (d / "trainer_state.json").exists()]
    return sorted(found, key=lambda d: int(d.name.split("-")[1]))


def folder_digest(folder: str | Path) -> str:
    """SHA-256 over a model folder's file names and contents (the 7B base takes about a minute)."""
    h = hashlib.sha256()
    root = Path(folder)
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(f.relative_to(root).as_posix().encode() + b"\0")
        with open(f, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 24), b""):
                h.update(block)
    return h.hexdigest()


def code_digest(package: Path = Path(__file__).resolve().parents[1]) -> str:
    """SHA-256 over the gelab package's Python files (names and contents): the reward plugin, the
    scheduler, the trainer and the template that ms-swift loads, and everything they import."""
    h = hashlib.sha256()
    for f in sorted(package.rglob("*.py")):
        h.update(f.relative_to(package).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def fingerprint(command: list[str], rows: bytes, init_digest: str, code: str = "") -> str:
    """What a run is: its command line, its training rows, the weights it starts from and the gelab
    code ms-swift runs with it (:func:`code_digest`).

    A checkpoint is resumed, and a finished run reused, only under the same fingerprint, so a changed
    base model (or SFT checkpoint), or a changed plugin, scheduler or trainer, starts the stage over
    even when the command line names the same folders.
    """
    return hashlib.sha256(("\0".join(command) + "\0" + init_digest + "\0" + code + "\0").encode() + rows).hexdigest()


def saved_weights(checkpoint: Path) -> list[str] | None:
    """The weight files ms-swift saved into ``checkpoint``, or None when they are missing or incomplete.

    One ``model.safetensors``, or ``model.safetensors.index.json`` with every shard its ``weight_map``
    names (a large model is saved in shards of ``--max_shard_size``).
    """
    index = checkpoint / WEIGHTS_INDEX
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError, AttributeError):
            return None
        if shards and all((checkpoint / s).is_file() for s in shards):
            return [WEIGHTS_INDEX, *shards]
        return None
    return [WEIGHTS] if (checkpoint / WEIGHTS).is_file() else None


def consolidate(checkpoint: Path, final: Path) -> str:
    """Copy ``checkpoint``'s weights and configs to ``final``; returns how the weights were obtained.

    ms-swift gathers the ZeRO-3 partitions when it saves a checkpoint and writes the weights in the
    training dtype (bf16 in the paper profile), sharded when large; those files are copied as they
    are ("copied"). Only when they are missing is DeepSpeed's ``zero_to_fp32`` run on the ZeRO shards
    ("zero_to_fp32", float32, twice the size in bf16 training).
    """
    weights = saved_weights(checkpoint)
    with atomic_directory(final) as tmp:
        for name in (*FINAL_FILES, *(weights or ())):
            if (checkpoint / name).exists():
                shutil.copy2(checkpoint / name, tmp / name)
        if weights is None:
            from deepspeed.utils.zero_to_fp32 import (
                convert_zero_checkpoint_to_fp32_state_dict,
            )

            convert_zero_checkpoint_to_fp32_state_dict(str(checkpoint), str(tmp), safe_serialization=True)
        for f in tmp.iterdir():
            f.chmod(0o644)
    return "copied" if weights is not None else "zero_to_fp32"


def _num(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def read_log(run_dir: Path) -> list[dict[str, Any]]:
    """ms-swift's ``logging.jsonl`` with numbers as numbers."""
    path = run_dir / "logging.jsonl"
    return [{k: _num(v) for k, v in row.items()} for row in read_jsonl(path)] if path.exists() else []


STEP_COLUMNS = ("step", "loss", "learning_rate", "grad_norm", "train_speed(s/it)", "reward", "reward_std",
                "frac_reward_zero_std", "token_acc", "kl", "completions/mean_length")
TURN_COLUMNS = ("num_turns", "episodes", "turns", "samples")  # MT-RL per step: mean turns, then counts


def step_rows(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-step metrics for plots: loss, lr, throughput and every reward term ms-swift logged."""
    rows = []
    for entry in log:
        step = _step(entry)
        if step is None:
            continue
        row: dict[str, Any] = {"step": step}
        for key, value in entry.items():
            if key in STEP_COLUMNS or key.startswith("rewards/") and key.endswith("/mean") or key in TURN_COLUMNS:
                if isinstance(value, (int, float)):
                    row[key] = value
        rows.append(row)
    return rows


def _global_step(entry: dict[str, Any]) -> int | None:
    """The optimizer step of a ``logging.jsonl`` entry (``"global_step/max_steps": "N/M"``), if it has one."""
    done = str(entry.get("global_step/max_steps", "")).split("/")[0]
    return int(done) if done.isdigit() else None


def _step(entry: dict[str, Any]) -> int | None:
    """The step of a per-step entry (not the final ``train_runtime`` entry)."""
    return None if "train_runtime" in entry else _global_step(entry)


def _seconds(text: Any) -> float | None:
    """ms-swift's ``elapsed_time`` (``"1h 2m 3s"``, ``"59s"``, ``"1d 2h 3m 4s"``) in seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    if not isinstance(text, str):
        return None
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    total = 0.0
    for part in text.split():
        try:
            total += float(part[:-1]) * units[part[-1]]
        except (KeyError, ValueError, IndexError):
            return None
    return total


def attempts_of(log: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``logging.jsonl`` cut into the ms-swift runs that appended to it: a new run starts after a final
    entry (``train_runtime`` or the end-of-run record) or where the step count goes back."""
    runs: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    last = -1
    for entry in log:
        step = _step(entry)
        if step is not None and step <= last and current:
            runs.append(current)
            current = []
        current.append(entry)
        if step is not None:
            last = step
        if "train_runtime" in entry or "last_model_checkpoint" in entry:
            last = -1
            if "last_model_checkpoint" in entry:
                runs.append(current)
                current = []
    if current:
        runs.append(current)
    return [r for r in runs if r]


def timeline(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The step entries of the run that produced the final weights: when a resumed attempt logs a step
    again, the earlier attempt's entries from that step on are dropped (they belonged to a run that
    was rolled back to its last checkpoint), so each step appears once."""
    kept: list[dict[str, Any]] = []
    for entry in log:
        step = _step(entry)
        if step is None:
            continue
        while kept and _step(kept[-1]) >= step:  # type: ignore[operator]
            kept.pop()
        kept.append(entry)
    return kept


def train_time(log: list[dict[str, Any]]) -> float:
    """Seconds ms-swift spent training, summed over every attempt: an attempt's ``train_runtime`` when it
    ended, else the last ``elapsed_time`` it logged (a killed attempt)."""
    total = 0.0
    for run in attempts_of(log):
        final = [e["train_runtime"] for e in run if isinstance(e.get("train_runtime"), (int, float))]
        if final:
            total += final[-1]
        else:
            elapsed = [t for e in run if _step(e) is not None and (t := _seconds(e.get("elapsed_time"))) is not None]
            total += elapsed[-1] if elapsed else 0.0
    return total


def steps_csv(rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def summarize(stage: str, rows: list[dict[str, Any]], log: list[dict[str, Any]], wall_s: float,
              n_rows: int) -> dict[str, Any]:
    """The small summary reports read: first/final loss, reward terms, steps, wall time."""
    losses = [r["loss"] for r in rows if "loss" in r]
    summary: dict[str, Any] = {"stage": stage, "steps": rows[-1]["step"] if rows else 0, "train_rows": n_rows,
                               "wall_time_s": round(wall_s, 1)}
    if losses:
        summary.update(first_loss=losses[0], final_loss=losses[-1],
                       loss_ratio=losses[-1] / losses[0] if losses[0] > 0 else None)  # RL losses start near 0
    tail = rows[-max(1, len(rows) // 4):]  # the last quarter of the run
    for key in sorted({k for r in rows for k in r if k.startswith("rewards/") or k in ("reward", *TURN_COLUMNS)}):
        first = [r[key] for r in rows if key in r]
        last = [r[key] for r in tail if key in r]
        if first and last:
            summary[key.replace("/mean", "")] = {"first": first[0], "final_mean": sum(last) / len(last)}
    final = [e for e in log if "train_runtime" in e]
    if final:
        done = _global_step(final[-1])
        if done is not None:  # the steps trained, also when the last ones fell between logging_steps
            summary["steps"] = max(summary["steps"], done)
        summary["train_runtime_s"] = final[-1]["train_runtime"]
        summary["train_samples_per_second"] = final[-1].get("train_samples_per_second")
    return summary


def resumed_totals(log: list[dict[str, Any]], run_dir: Path, steps: list[dict[str, Any]],
                   samples_per_step: int) -> dict[str, Any]:
    """Summary fields that cover every attempt of a run: attempts, training time and throughput
    (samples of the final run's steps per second of training, replayed steps' time included)."""
    runtime = train_time(log)
    out: dict[str, Any] = {"attempts": max(1, len(read_attempts(run_dir))), "train_runtime_s": round(runtime, 4)}
    if steps and runtime > 0:
        out["train_samples_per_second"] = round(steps[-1]["step"] * samples_per_step / runtime, 3)
    return out


# --- the stage ----------------------------------------------------------------------------------


FINISHED = "gelab_finished.json"  # written when ms-swift ends a run successfully
ATTEMPTS = "gelab_attempts.json"  # every launch of ms-swift in this run and its wall time so far
HEARTBEAT_S = 10.0  # how often the running attempt's wall time is written (a killed attempt loses at most this)
STOP_GRACE_S = 30.0  # after SIGTERM, how long ms-swift and its ranks may take to end before SIGKILL
TEXT_SUFFIXES = (".json", ".jsonl", ".txt", ".csv", ".yaml", ".yml", ".sh", ".md", ".log")


def read_attempts(run_dir: Path) -> list[dict[str, Any]]:
    try:
        return list(json.loads((run_dir / ATTEMPTS).read_text())["attempts"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def run_attempt(command: list[str], env: dict[str, str], run_dir: Path, resumed_from: str | None,
                record: bool = True) -> tuple[int, float]:
    """Run ms-swift once; returns (exit status, wall seconds). With ``record``, the attempt is appended
    to ``run/gelab_attempts.json`` and its wall time rewritten every :data:`HEARTBEAT_S` seconds."""
    attempts = read_attempts(run_dir) if record else []
    for a in attempts:
        if a.get("status") == "running":
            a["status"] = "killed"  # an attempt that never recorded its end
    entry: dict[str, Any] = {"resumed_from": resumed_from, "wall_time_s": 0.0, "status": "running"}
    attempts.append(entry)
    start = time.perf_counter()

    def save() -> None:
        entry["wall_time_s"] = round(time.perf_counter() - start, 1)
        if record:
            atomic_write_json(run_dir / ATTEMPTS, {"attempts": attempts})

    save()
    proc = subprocess.Popen(command, env=env)
    try:
        while True:
            try:
                code = proc.wait(timeout=HEARTBEAT_S)
                break
            except subprocess.TimeoutExpired:
                save()
    except BaseException as exc:  # Ctrl-C, SIGTERM (gelab.interrupts) or an error of gelab's own
        stop_tree(proc)
        entry["status"] = "terminated" if isinstance(exc, Terminated) else "interrupted"
        save()
        raise
    entry["status"] = f"exit {code}"
    save()
    return code, time.perf_counter() - start


def stop_tree(proc: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
    """Stop ``proc`` and every process under it (ms-swift, torchrun, the ranks): SIGTERM to each, then
    SIGKILL to those still running after ``grace_s`` seconds."""
    import psutil

    try:
        below = psutil.Process(proc.pid).children(recursive=True)  # before the parents die and orphan them
    except psutil.Error:
        below = []
    for p in below:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    if proc.poll() is None:
        proc.terminate()
    deadline = time.monotonic() + grace_s
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

    def running(p: psutil.Process) -> bool:  # an orphan's zombie, waiting for init to reap it, has ended
        try:
            return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    while (alive := [p for p in below if running(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()


def total_wall(run_dir: Path) -> float:
    """Wall seconds of every ms-swift attempt of this run (killed ones to within :data:`HEARTBEAT_S`)."""
    return sum(float(a.get("wall_time_s") or 0.0) for a in read_attempts(run_dir))


def machine_roots(root: Path | None = None) -> list[str]:
    """The absolute spellings of the repository root (the stage's working folder), longest first."""
    base = Path.cwd() if root is None else Path(root)
    spellings = {str(base.absolute()), str(base.resolve()), os.path.realpath(base)}
    if root is None and os.environ.get("PWD") and Path(os.environ["PWD"]).resolve() == base.resolve():
        spellings.add(os.environ["PWD"])
    return sorted((s.rstrip("/") for s in spellings if s.rstrip("/")), key=len, reverse=True)


def strip_machine_paths(folder: Path, root: Path | None = None) -> list[Path]:
    """Rewrite every text file under ``folder`` so that no absolute path into the repository root remains
    (``ROOT/x`` -> ``x``, ``ROOT`` -> ``.``), and drop ms-swift's ``training_args.bin``; returns the files
    changed. Files are replaced atomically; ones that do not mention the root are left untouched."""
    changed: list[Path] = []
    roots = machine_roots(root)
    if not roots or not folder.exists():
        return changed
    spellings = dict.fromkeys([*roots, *(json.dumps(r)[1:-1] for r in roots)])  # as written, as JSON escapes it
    # ROOT/x -> x and a bare ROOT -> ., but never ROOT2/x (another folder that merely starts the same)
    pattern = re.compile(b"(?:" + b"|".join(re.escape(r.encode()) for r in spellings) + rb")(/|(?![\w.-]))")
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        if path.name == "training_args.bin":
            path.unlink()
            changed.append(path)
            continue
        if path.suffix not in TEXT_SUFFIXES:
            continue
        data = path.read_bytes()
        new = pattern.sub(lambda m: b"" if m.group(1) else b".", data)
        if new != data:
            atomic_write_bytes(path, new)
            changed.append(path)
    return changed


def finished_run(run_dir: Path, stamp: str, done: list[Path]) -> dict[str, Any] | None:
    """The record of this run's successful end, if its last checkpoint is still the newest one."""
    path = run_dir / FINISHED
    if not path.exists() or not done:
        return None
    record = json.loads(path.read_text())
    if record.get("fingerprint") != stamp or record.get("checkpoint") != done[-1].name:
        return None
    return record


GPU_LOCK_INSTALL = ("pip install -r requirements-gpu.lock (the paper profile's GPU lock; `nix develop` and "
                    "`make setup-gpu` install it)")
FLASH_ATTN_INSTALL = ("make flash-attn (builds the flash-attn of requirements-gpu-flash-attn.txt against the "
                      "installed torch: pip install --no-build-isolation --no-deps -r requirements-gpu-flash-attn.txt, "
                      "with nvcc from CUDA_HOME; REPRODUCE.md §1)")


def _unusable(module: str, load: bool) -> str | None:
    """Why ``module`` cannot be used (not installed, or, with ``load``, fails to import); None if it can."""
    import importlib
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: blocked by a None entry in sys.modules
        found = False
    if not found:
        return "is not installed"
    if load:
        try:
            importlib.import_module(module)
        except (ImportError, OSError) as exc:  # e.g. built against another torch: undefined symbols
            return f"is installed but does not load ({exc})"
    return None


def check_gpu_packages(tp: TrainParams, stage: str) -> None:
    """Before anything runs: the GPU packages this stage's params ask for are installed and load.

    ``launch.attn_impl: flash_attn`` needs flash-attn (imported, so a build against another torch is
    caught here, not by the first forward pass); ``use_vllm`` (RL rollouts) needs vLLM.
    """
    problems = []
    if tp.launch.attn_impl == "flash_attn":
        why = _unusable("flash_attn", load=True)
        if why:
            problems.append(f"launch.attn_impl is flash_attn but the flash-attn package {why}: {FLASH_ATTN_INSTALL}")
    p = tp.stage(stage)
    if isinstance(p, RlParams) and p.use_vllm:
        why = _unusable("vllm", load=False)
        if why:
            problems.append(f"{stage}.use_vllm is true but the vllm package {why}: {GPU_LOCK_INSTALL}")
    if problems:
        raise TrainError(f"{stage}: " + "; ".join(problems))


def check_init(path: str, field: str) -> None:
    """Clear error when the starting weights are missing."""
    if (Path(path) / "config.json").exists():
        return
    hint = ("put the Qwen2.5-VL-7B-Instruct weights there (config.json, *.safetensors, tokenizer and "
            "preprocessor files) and track them with `dvc add data/Qwen2.5-VL-7B-Instruct` (updates data.dvc)"
            if "Qwen2.5-VL" in path else "run the stage that produces it first (dvc repro)")
    raise TrainError(f"{field}: {path} has no config.json: {hint}")


def check_template(init: str, template: str) -> None:
    """Refuse a stock Qwen2-VL template for a model whose image token is not Qwen's 151655: ms-swift
    would expand no image and train on text alone, silently."""
    if template not in STOCK_QWEN_VL_TEMPLATES:
        return
    config = json.loads((Path(init) / "config.json").read_text(encoding="utf-8"))
    image_id = config.get("image_token_id", QWEN_IMAGE_PAD_ID)
    if image_id != QWEN_IMAGE_PAD_ID:
        raise TrainError(f"model.template: {template} finds images by id {QWEN_IMAGE_PAD_ID}, but {init}/config.json "
                         f"has image_token_id {image_id}; use template {TEMPLATE}")


def run_stage(tp: TrainParams, stage: str, init: str, out: str | Path, metrics_dir: str | Path,
              params_file: str = "params.yaml") -> dict[str, Any]:
    """Run one training stage end to end (resuming when possible); returns the summary."""
    p = tp.stage(stage)
    out, metrics_dir = Path(out), Path(metrics_dir)
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
    rows = subset_rows(rows, p.max_samples, p.seed)
    rows_bytes = jsonl_bytes(rows)
    run_dir = out / "run"
    env = launch_env(tp.launch, tp.model.max_pixels)
    command = stage_command(tp, stage, init, str(out / "train.jsonl"), str(run_dir), world_size(env),
                            images=images_per_prompt(rows))
    stamp = fingerprint(command, rows_bytes, folder_digest(init), code_digest())

    primary = env["NODE_RANK"] == "0"  # on a shared filesystem only node 0 cleans up and post-processes
    out.mkdir(parents=True, exist_ok=True)
    previous = (run_dir / "gelab_fingerprint").read_text().strip() if (run_dir / "gelab_fingerprint").exists() else None
    done = checkpoints(run_dir)
    if previous != stamp and run_dir.exists():
        if not primary:
            raise TrainError(f"{stage}: {run_dir} belongs to another run; start node 0 (NODE_RANK=0) first")
        shutil.rmtree(run_dir)  # a different run: never resume across command lines, data or weights
        done = []
    run_dir.mkdir(parents=True, exist_ok=True)
    finished = finished_run(run_dir, stamp, done)
    if finished is not None:  # this very run already ended: never train past its last step
        print(f"gelab train {stage}: {done[-1]} already finished this run; not training again", flush=True)
        wall = float(finished["wall_time_s"])
        if not primary:
            return {"stage": stage, "node_rank": int(env["NODE_RANK"]), "wall_time_s": wall}
    else:
        atomic_write_text(run_dir / "gelab_fingerprint", stamp + "\n")  # the same on every node
        atomic_write_bytes(out / "train.jsonl", rows_bytes)  # every node's ms-swift reads it
        full = command + (["--resume_from_checkpoint", str(done[-1])] if done else [])
        if primary:  # the run record (a DVC output): node 0's, whatever order the nodes start in
            atomic_write_json(out / "params.json", {"stage": stage, "init": init, "params_file": params_file,
                                                    "model": as_dict(tp.model), "launch": as_dict(tp.launch),
                                                    stage: as_dict(p)})
            exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env_for_log(env).items())
            atomic_write_text(out / "command.sh", "#!/usr/bin/env bash\n" + exports + shlex.join(full) + "\n")
        if done:
            print(f"gelab train {stage}: resuming from {done[-1]}", flush=True)

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
            return {"stage": stage, "node_rank": int(env["NODE_RANK"]), "wall_time_s": round(wall, 1)}
        wall = total_wall(run_dir)
        done = checkpoints(run_dir)
        if not done:
            raise TrainError(f"{stage}: ms-swift wrote no checkpoint under {run_dir} (check save_steps/max_steps)")
        atomic_write_json(run_dir / FINISHED, {"fingerprint": stamp, "checkpoint": done[-1].name,
                                               "wall_time_s": round(wall, 1)})
    how = consolidate(done[-1], out / "final")
    print(f"gelab train {stage}: {out / 'final'} <- {done[-1].name} ({how})", flush=True)

    log = read_log(run_dir)
    steps = step_rows(timeline(log))
    summary = summarize(stage, steps, log, wall, len(rows))
    summary.update(resumed_totals(log, run_dir, steps, p.per_device_batch * p.grad_accum * world_size(env)))
    summary["checkpoint"] = done[-1].name
    metrics_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(metrics_dir / f"{stage}.json", summary)
    atomic_write_text(metrics_dir / f"{stage}_steps.csv", steps_csv(steps))
    return summary
