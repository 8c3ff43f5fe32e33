"""The embedded default model: a tiny random-init Qwen2.5-VL built from a seed, with no download.

What gets written to the output folder (loadable by transformers, and by ms-swift with
``--model_type qwen2_5_vl --template gelab_qwen2_5_vl``, the template of :mod:`gelab.train.swift_template`):

- ``model.safetensors`` + ``config.json``: ``Qwen2_5_VLForConditionalGeneration`` with random weights
  drawn from ``torch.manual_seed(seed)``.
- ``tokenizer.json`` + ``tokenizer_config.json``: a byte-level BPE trained on the project's own corpus
  (the dataset texts) with Qwen2.5-VL's pre-tokenizer. Its ``vocab_learned`` entries (ids
  ``0 .. vocab_learned-1``) are followed directly by Qwen2.5-VL's 22 special tokens (same strings, same
  order), then by filler entries that no merge produces up to a multiple of 64 rows. With 1,024
  learned entries the model has 1,088 embedding rows instead of Qwen's 151,936: the output layer no
  longer dominates every training step and every decoded token (BENCHMARKS.md). The config's image,
  video and vision start/end ids are the tokenizer's; ms-swift's stock ``qwen2_5_vl`` template expands
  images by Qwen's fixed id 151655 and would drop them, so the model is used with
  ``gelab_qwen2_5_vl``, which takes the ids from the tokenizer.
- ``preprocessor_config.json`` etc.: a ``Qwen2_5_VLProcessor`` (patch 14, merge 2, so a 448 × 448 page
  becomes 256 visual tokens) and a Qwen-style chat template.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator

from gelab.errors import InputError
from gelab.io import atomic_directory, atomic_write_json, file_digest, read_jsonl
from gelab.params import TinyModelParams, as_dict, image_size

# Qwen2.5-VL's added tokens, in their id order (as in the released tokenizer, where they start at 151643).
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>",
    "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
)
NOT_SPECIAL = {"<tool_call>", "</tool_call>"}  # plain added tokens in the released tokenizer
TEMPLATE = "gelab_qwen2_5_vl"  # the ms-swift template the model needs (gelab.train.swift_template)
QWEN_IMAGE_PAD_ID = 151655  # where ms-swift's stock Qwen2-VL templates look for images, whatever the tokenizer
ROW_MULTIPLE = 64  # embedding rows are rounded up to this
FILLER = "<|gelab_unused_{}|>"  # vocabulary entries that no merge produces (unreachable from text)


def special_id(learned: int, token: str) -> int:
    """The id of a special token when ``learned`` BPE entries precede the specials."""
    return learned + SPECIAL_TOKENS.index(token)


def vocab_rows(learned: int) -> int:
    """Embedding rows: the learned entries and the specials, rounded up to :data:`ROW_MULTIPLE`."""
    return -(-(learned + len(SPECIAL_TOKENS)) // ROW_MULTIPLE) * ROW_MULTIPLE

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def corpus_texts(files: Iterable[str | Path]) -> Iterator[str]:
    """Every message text of the given ms-swift JSONL files, in file order (image tags removed)."""
    for path in files:
        for i, row in enumerate(read_jsonl(path), start=1):
            messages = row.get("messages", [])
            if not isinstance(messages, list) or not all(isinstance(m, dict) and "content" in m for m in messages):
                raise InputError(f"{path}: row {i}: messages: expected a list of {{role, content}} objects")
            for message in messages:
                yield str(message["content"]).replace("<image>", "")


def build_tokenizer(texts: Iterable[str], learned: int):
    """A Qwen2-style byte-level BPE: ``learned`` entries trained on ``texts`` (fillers where the corpus
    yields fewer), Qwen2.5-VL's special tokens right after them, fillers up to :func:`vocab_rows`."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    if learned < 256:
        raise InputError(f"model.tiny.vocab_learned={learned}: a byte-level BPE needs at least its 256 bytes")
    probe = Qwen2Tokenizer()  # borrow Qwen2's normalizer and pre-tokenizer exactly
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = probe.backend_tokenizer.normalizer
    bpe.pre_tokenizer = probe.backend_tokenizer.pre_tokenizer
    trainer = trainers.BpeTrainer(vocab_size=learned, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[], show_progress=False)
    bpe.train_from_iterator(texts, trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    vocab: dict[str, int] = dict(state["vocab"])
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]
    if len(vocab) > learned:
        raise RuntimeError(f"the BPE trainer made {len(vocab)} entries, {learned} asked")
    for i in range(len(vocab), learned):
        vocab[FILLER.format(i)] = i
    for token in SPECIAL_TOKENS:
        vocab[token] = special_id(learned, token)
    for i in range(learned + len(SPECIAL_TOKENS), vocab_rows(learned)):
        vocab[FILLER.format(i)] = i
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, eos_token="<|im_end|>",
                         pad_token="<|endoftext|>", model_max_length=32768)
    tok.add_tokens([AddedToken(t, special=t not in NOT_SPECIAL, normalized=False) for t in SPECIAL_TOKENS])
    tok.add_special_tokens({"additional_special_tokens": [t for t in SPECIAL_TOKENS if t not in NOT_SPECIAL
                                                          and t not in ("<|endoftext|>", "<|im_end|>")]},
                           replace_extra_special_tokens=True)
    for token in SPECIAL_TOKENS:
        got = tok.convert_tokens_to_ids(token)
        if got != special_id(learned, token):
            raise RuntimeError(f"tokenizer gave {token} id {got}, expected {special_id(learned, token)}")
    return tok


def tiny_config(p: TinyModelParams):
    """The ``Qwen2_5_VLConfig`` of the tiny model: small widths, :func:`vocab_rows` embedding rows and the
    token ids of :func:`build_tokenizer`'s layout for ``p.vocab_learned``."""
    from transformers import Qwen2_5_VLConfig

    n = p.vocab_learned
    text = dict(vocab_size=vocab_rows(n), hidden_size=p.text_hidden, intermediate_size=p.text_intermediate,
                num_hidden_layers=p.text_layers, num_attention_heads=p.text_heads,
                num_key_value_heads=p.text_kv_heads, max_position_embeddings=32768, rms_norm_eps=1e-6,
                initializer_range=p.init_std, bos_token_id=special_id(n, "<|endoftext|>"),
                eos_token_id=special_id(n, "<|im_end|>"), pad_token_id=special_id(n, "<|endoftext|>"),
                # mrope halves (temporal, height, width) must sum to head_dim / 2
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                                 "mrope_section": _mrope_section(p.text_hidden // p.text_heads)})
    vision = dict(depth=p.vision_depth, hidden_size=p.vision_hidden, intermediate_size=p.vision_intermediate,
                  num_heads=p.vision_heads, out_hidden_size=p.text_hidden, patch_size=14, spatial_merge_size=2,
                  temporal_patch_size=2, window_size=112, fullatt_block_indexes=[p.vision_depth - 1])
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True,
                            image_token_id=special_id(n, "<|image_pad|>"),
                            video_token_id=special_id(n, "<|video_pad|>"),
                            vision_start_token_id=special_id(n, "<|vision_start|>"),
                            vision_end_token_id=special_id(n, "<|vision_end|>"))


def _mrope_section(head_dim: int) -> list[int]:
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def build_processor(tokenizer, max_pixels: int):
    """``Qwen2_5_VLProcessor``: patch 14, merge 2; images above ``max_pixels`` are downscaled."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import (
        Qwen2VLVideoProcessor,
    )

    size = image_size(max_pixels)
    image = Qwen2VLImageProcessor(size=size, patch_size=14, merge_size=2, temporal_patch_size=2)
    video = Qwen2VLVideoProcessor(size=size, patch_size=14, merge_size=2, temporal_patch_size=2)
    return Qwen2_5_VLProcessor(image_processor=image, tokenizer=tokenizer, video_processor=video,
                               chat_template=CHAT_TEMPLATE)


def build_tiny_model(p: TinyModelParams, corpus_files: list[str | Path], out: str | Path,
                     max_pixels: int = 448 * 448) -> dict[str, object]:
    """Write the tiny model folder ``out`` atomically (its processor capped at ``max_pixels``, the
    profile's ``model.max_pixels``); returns a summary (parameter counts, hashes)."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    tokenizer = build_tokenizer(corpus_texts(corpus_files), p.vocab_learned)
    processor = build_processor(tokenizer, max_pixels)
    torch.manual_seed(p.seed)
    model = Qwen2_5_VLForConditionalGeneration(tiny_config(p)).to(torch.float32)
    model.generation_config.do_sample = False
    end, pad = special_id(p.vocab_learned, "<|im_end|>"), special_id(p.vocab_learned, "<|endoftext|>")
    model.generation_config.eos_token_id = [end, pad]
    model.generation_config.pad_token_id = pad
    summary = {
        "parameters": sum(t.numel() for t in model.parameters()),
        "vision_parameters": sum(t.numel() for t in model.model.visual.parameters()),
        "learned_tokens": p.vocab_learned,
        "vocab_rows": vocab_rows(p.vocab_learned),
        "image_pad_id": tokenizer.convert_tokens_to_ids("<|image_pad|>"),
    }
    with atomic_directory(out) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        summary["tokenizer_sha256"] = file_digest(tmp / "tokenizer.json")
        summary["weights_sha256"] = file_digest(tmp / "model.safetensors")
        atomic_write_json(tmp / "gelab_model.json", {"params": as_dict(p), **summary})
    return summary
