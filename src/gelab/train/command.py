"""The ms-swift command lines of the training stages, built from params only (no I/O beyond reading
rows): ``swift sft`` for SFT, ``swift rlhf --rlhf_type grpo`` with the gelab plugin for ST-RL and
MT-RL, the template plugin for the tiny model, the CPU-ranks plugin for several CPU processes and the
colocated vLLM sized from the data (docs/training.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gelab.params import LaunchParams, ModelParams, RlParams, SftParams
from gelab.train.config import TrainParams
from gelab.train.tiny_model import TEMPLATE

PLUGIN = Path(__file__).with_name("swift_plugin.py")
CPU_RANKS_PLUGIN = Path(__file__).with_name("swift_cpu_ranks.py")
TEMPLATE_PLUGIN = Path(__file__).with_name("swift_template.py")  # registers tiny_model.TEMPLATE
STOCK_QWEN_VL_TEMPLATES = ("qwen2_vl", "qwen2_5_vl")  # ms-swift finds their images by id 151655


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
