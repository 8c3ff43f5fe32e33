"""Shared helpers of the evaluation tests: Env-Base built in memory (no rendering) and its rows."""

from __future__ import annotations

import functools
import random
from pathlib import Path
from typing import Any

from gelab.datasets import Source, step_rows
from gelab.envdir import Environment, RenderSettings
from gelab.generate import generate
from gelab.navigation import Navigator
from gelab.params import EnvParams
from gelab.structure import EnvStructure
from gelab.tasks import Task, task_universe

TEST_SUBTREE = "page_5"


@functools.lru_cache(maxsize=None)
def env_base() -> tuple[EnvStructure, dict[str, str]]:
    return generate(EnvParams())


@functools.lru_cache(maxsize=None)
def navigator() -> Navigator:
    return Navigator(env_base()[0])


def tasks(subtree: str = TEST_SUBTREE) -> list[Task]:
    return task_universe(env_base()[0], subtree, navigator())


def static_rows(subtree: str = TEST_SUBTREE, task_list: list[Task] | None = None,
                image_root: str = "env") -> list[dict[str, Any]]:
    """The static-evaluation rows of a subtree (as the data stage writes them), images not rendered."""
    structure, art = env_base()
    src = Source(Environment(Path(image_root), structure, art, RenderSettings()), navigator(), image_root)
    return list(step_rows(src, task_list if task_list is not None else tasks(subtree), random.Random(0)))


def prediction_row(sample: dict[str, Any], prediction: object) -> dict[str, Any]:
    """A project-layout prediction row: the sample's scoring columns plus ``prediction``."""
    row = {k: v for k, v in sample.items() if k not in ("messages", "images")}
    row["prediction"] = prediction
    return row


def release_row(sample: dict[str, Any], prediction: object, idx: int) -> dict[str, Any]:
    """The same step in the released evaluation layout (user + ground-truth assistant, no system)."""
    user = next(m["content"] for m in sample["messages"] if m["role"] == "user")
    truth = next(m["content"] for m in sample["messages"] if m["role"] == "assistant")
    row: dict[str, Any] = {"idx": idx, "path": sample["path_length"],
                           "task": f"From {sample['start']} to {sample['target']}",
                           "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": truth}],
                           "images": sample["images"], "prediction": prediction}
    if sample["bbox_norm"] is not None:
        row["bbox_norm"] = sample["bbox_norm"]
    return row


# --- a tiny random Qwen2.5-VL (for the hf backend tests) ---------------------------------------

QWEN_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                       "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                       "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
QWEN_FIRST_SPECIAL_ID = 151643  # <|endoftext|>; <|image_pad|> = 151655 as in Qwen2.5-VL

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_qwen(out: Path, seed: int = 0) -> Path:
    """A random Qwen2.5-VL small enough for CPU tests, saved as an HF folder (model + processor).

    Byte-level tokenizer (one token per byte) with Qwen's special tokens at their canonical ids;
    hidden size 64, 2 text layers, 1 vision block.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration,
                              Qwen2_5_VLProcessor)
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    for i in range(len(vocab), QWEN_FIRST_SPECIAL_ID):
        vocab[f"<|unused_{i}|>"] = i  # fillers: never produced by the byte-level pre-tokenizer
    for i, tok in enumerate(QWEN_SPECIAL_TOKENS):
        vocab[tok] = QWEN_FIRST_SPECIAL_ID + i
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(QWEN_SPECIAL_TOKENS)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        padding_side="left", chat_template=CHAT_TEMPLATE)
    image_processor = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=448 * 448)
    processor = Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                    video_processor=Qwen2VLVideoProcessor(), chat_template=CHAT_TEMPLATE)
    ids = {name: QWEN_FIRST_SPECIAL_ID + QWEN_SPECIAL_TOKENS.index(tok) for name, tok in
           [("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>")]}
    config = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=QWEN_FIRST_SPECIAL_ID + len(QWEN_SPECIAL_TOKENS), hidden_size=64,
                         intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                                        "mrope_section": [2, 3, 3]},
                         initializer_range=0.5, eos_token_id=ids and QWEN_FIRST_SPECIAL_ID + 2,
                         pad_token_id=QWEN_FIRST_SPECIAL_ID),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                           fullatt_block_indexes=[0], window_size=112, patch_size=14, spatial_merge_size=2,
                           temporal_patch_size=2),
        **ids)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = QWEN_FIRST_SPECIAL_ID + 2
    model.generation_config.pad_token_id = QWEN_FIRST_SPECIAL_ID
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def write_env_folder(out: Path, images: bool = False, size: int = 448) -> Path:
    """Env-Base as a folder with its structure and art file; page images (``images``) are stand-ins:
    coloured boxes where the elements are, not the rendered icons (enough for model-backend tests)."""
    import json

    from PIL import Image, ImageDraw

    structure, art = env_base()
    out.mkdir(parents=True, exist_ok=True)
    (out / "ui_structure.json").write_text(structure.dumps(), encoding="utf-8")
    (out / "icons.json").write_text(json.dumps({"model_image_size": size, "title_box": [389, 60, 789, 260],
                                                "art": art}), encoding="utf-8")
    if images:
        (out / "model_images").mkdir(exist_ok=True)
        w, h = structure.canvas
        for n, page in enumerate(structure.pages.values()):
            img = Image.new("RGB", (size, size), "white")
            draw = ImageDraw.Draw(img)
            for k, e in enumerate(page.elements):
                x1, y1, x2, y2 = (e.bbox[0] * size // w, e.bbox[1] * size // h, e.bbox[2] * size // w,
                                  e.bbox[3] * size // h)
                draw.rectangle((x1, y1, x2, y2), fill=((37 * n + 71 * k) % 256, (91 * k) % 256, (53 * n) % 256))
            img.save(out / "model_images" / page.image)
    return out
