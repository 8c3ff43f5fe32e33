"""The GPU benchmark script (benchmarks/bench_gpu.py) without a GPU: the model's shape and each part's command."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from conftest import REPO


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", REPO / "benchmarks" / "bench_gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_model_has_the_7b_shape(bench) -> None:
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration._from_config(bench.seven_b_config(28), dtype=torch.bfloat16)
    assert sum(p.numel() for p in model.parameters()) == 8_292_166_656  # Qwen2.5-VL-7B-Instruct's count
    assert model.lm_head.weight.shape == (152_064, 3584)
    assert model.config.text_config.rope_parameters["mrope_section"] == [16, 24, 24]
    with torch.device("meta"):
        half = Qwen2_5_VLForConditionalGeneration._from_config(bench.seven_b_config(14), dtype=torch.bfloat16)
    assert len(half.model.language_model.layers) == 14


def test_each_part_runs_the_paper_command_with_the_listed_substitutions_only(bench, base_env, tmp_path: Path,
                                                                           capsys) -> None:
    out = tmp_path / "bench"
    assert bench.main(["--dry-run", "--out", str(out), "--env", str(base_env.root)]) == 0
    parts = json.loads((out / "results.json").read_text())["parts"]

    def arg(cmd: list[str], flag: str) -> str:
        return cmd[cmd.index(flag) + 1]

    sft = parts["sft"]["command"]
    assert sft[:2] == ["swift", "sft"]
    assert (arg(sft, "--torch_dtype"), arg(sft, "--deepspeed"), arg(sft, "--bf16")) == ("bfloat16", "zero3", "true")
    assert (arg(sft, "--attn_impl"), arg(sft, "--packing")) == ("sdpa", "false")  # the two substitutions
    assert (arg(sft, "--learning_rate"), arg(sft, "--per_device_train_batch_size")) == ("1e-05", "2")
    assert (arg(sft, "--gradient_accumulation_steps"), arg(sft, "--save_strategy")) == ("2", "no")
    for stage, turns in (("st_rl", None), ("mt_rl", "12")):
        cmd = parts[stage]["command"]
        assert (arg(cmd, "--num_generations"), arg(cmd, "--temperature"), arg(cmd, "--top_k")) == ("8", "1.2", "8")
        assert (arg(cmd, "--beta"), arg(cmd, "--use_vllm"), arg(cmd, "--per_device_train_batch_size")) == (
            "0.04", "false", "8")  # PyTorch engine, one prompt of 8 completions per step
        assert arg(cmd, "--lr_scheduler_type") == "cosine"
        assert (arg(cmd, "--max_turns") if "--max_turns" in cmd else None) == turns
    rows = [json.loads(x) for x in (out / "data" / "mt_rl.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(r["messages"][-1]["role"] == "user" for r in rows)
    assert "| sft |" in capsys.readouterr().out
