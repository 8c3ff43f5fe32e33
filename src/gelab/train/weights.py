"""The stage's ``final/`` folder: the last checkpoint's weights exactly as ms-swift saved them (one
``model.safetensors``, or shards with ``model.safetensors.index.json``) plus config, tokenizer and
processor files; DeepSpeed's ``zero_to_fp32`` only when those weights are missing or incomplete."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from gelab.io import atomic_directory

FINAL_FILES = ("config.json", "generation_config.json", "tokenizer.json",  # besides the weights
               "tokenizer_config.json", "processor_config.json", "preprocessor_config.json",
               "video_preprocessor_config.json", "chat_template.jinja", "chat_template.json",
               "special_tokens_map.json", "vocab.json", "merges.txt", "added_tokens.json")
WEIGHTS = "model.safetensors"  # save_pretrained's one file ...
WEIGHTS_INDEX = "model.safetensors.index.json"  # ... or its shards (ms-swift: --max_shard_size, 5GB)


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
