"""``final/`` holds the weights ms-swift saved, sharded or not, in their dtype; ZeRO conversion is a fallback.

ms-swift saves a checkpoint with ``save_pretrained(max_shard_size=--max_shard_size)`` (5GB by
default), so the 7B model of the paper profile arrives as ``model-0000k-of-0000n.safetensors`` plus
``model.safetensors.index.json`` in bf16. These tests build such checkpoint folders with transformers
directly (the tiny architecture, no training) and consolidate them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gelab.params import TinyModelParams
from gelab.train import weights
from gelab.train.weights import WEIGHTS_INDEX, consolidate, saved_weights


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from gelab.train.tiny_model import tiny_config

    torch.manual_seed(0)
    return Qwen2_5_VLForConditionalGeneration(tiny_config(TinyModelParams())).to(torch.bfloat16)


def checkpoint(root: Path, model, **save: object) -> Path:  # type: ignore[no-untyped-def]
    """A checkpoint folder as ms-swift leaves it: weights, config, trainer state and the ZeRO shards."""
    ckpt = root / "run" / "checkpoint-2"
    model.save_pretrained(ckpt, **save)
    (ckpt / "trainer_state.json").write_text("{}")
    (ckpt / "global_step2").mkdir()
    (ckpt / "global_step2" / "zero_pp_rank_0_mp_rank_00_model_states.pt").write_bytes(b"zero")
    (ckpt / "latest").write_text("global_step2")
    return ckpt


@pytest.fixture()
def no_zero_conversion(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and refuse) any call of DeepSpeed's zero_to_fp32 converter."""
    from deepspeed.utils import zero_to_fp32

    calls: list[str] = []

    def convert(checkpoint_dir: str, output_dir: str, **kwargs: object) -> None:
        calls.append(checkpoint_dir)
        raise AssertionError("zero_to_fp32 must not run when ms-swift saved the weights")

    monkeypatch.setattr(zero_to_fp32, "convert_zero_checkpoint_to_fp32_state_dict", convert)
    return calls


def test_sharded_checkpoint_is_copied_with_its_index_in_its_dtype(tmp_path: Path, model, no_zero_conversion) -> None:
    import torch
    from safetensors import safe_open
    from transformers import Qwen2_5_VLForConditionalGeneration

    ckpt = checkpoint(tmp_path, model, max_shard_size="100KB")
    index = json.loads((ckpt / WEIGHTS_INDEX).read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) >= 2 and not (ckpt / "model.safetensors").exists()  # really sharded

    assert consolidate(ckpt, tmp_path / "final") == "copied"
    final = tmp_path / "final"
    assert sorted(p.name for p in final.iterdir()) == sorted([WEIGHTS_INDEX, *shards, "config.json",
                                                               "generation_config.json"])
    for name in (WEIGHTS_INDEX, *shards):  # byte for byte what ms-swift wrote
        assert (final / name).read_bytes() == (ckpt / name).read_bytes()
    with safe_open(str(final / shards[0]), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}  # not widened to fp32
    loaded = Qwen2_5_VLForConditionalGeneration.from_pretrained(final, dtype=torch.bfloat16)
    original = model.state_dict()
    assert all(torch.equal(t, original[k]) for k, t in loaded.state_dict().items())
    assert no_zero_conversion == []


def test_single_file_checkpoint_is_copied(tmp_path: Path, model, no_zero_conversion) -> None:
    ckpt = checkpoint(tmp_path, model)
    assert saved_weights(ckpt) == ["model.safetensors"]
    assert consolidate(ckpt, tmp_path / "final") == "copied"
    assert (tmp_path / "final" / "model.safetensors").read_bytes() == (ckpt / "model.safetensors").read_bytes()
    assert not (tmp_path / "final" / "global_step2").exists()  # the ZeRO shards stay in run/


def test_missing_or_incomplete_weights_fall_back_to_zero_to_fp32(tmp_path: Path, model,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from deepspeed.utils import zero_to_fp32

    ckpt = checkpoint(tmp_path, model, max_shard_size="100KB")
    shards = sorted(set(json.loads((ckpt / WEIGHTS_INDEX).read_text())["weight_map"].values()))
    (ckpt / shards[-1]).unlink()  # a save cut short: the index names a shard that is not there
    assert saved_weights(ckpt) is None

    calls = []

    def convert(checkpoint_dir: str, output_dir: str, **kwargs: object) -> None:
        calls.append((checkpoint_dir, kwargs))
        (Path(output_dir) / "model.safetensors").write_bytes(b"fp32 weights")

    monkeypatch.setattr(zero_to_fp32, "convert_zero_checkpoint_to_fp32_state_dict", convert)
    assert consolidate(ckpt, tmp_path / "final") == "zero_to_fp32"
    assert calls == [(str(ckpt), {"safe_serialization": True})]
    names = sorted(p.name for p in (tmp_path / "final").iterdir())
    assert names == ["config.json", "generation_config.json", "model.safetensors"]  # no partial shard set


def test_consolidating_again_replaces_final_whole(tmp_path: Path, model, no_zero_conversion) -> None:
    final = tmp_path / "final"
    consolidate(checkpoint(tmp_path / "a", model), final)  # one file
    consolidate(checkpoint(tmp_path / "b", model, max_shard_size="100KB"), final)  # then shards
    assert not (final / "model.safetensors").exists() and (final / WEIGHTS_INDEX).exists()
    assert weights.saved_weights(final) is not None
