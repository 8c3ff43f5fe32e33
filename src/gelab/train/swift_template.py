"""The ms-swift template of the embedded tiny model: ``gelab_qwen2_5_vl``.

ms-swift 4.6's ``Qwen2_5VLTemplate`` finds image and video positions by the class attributes
``image_token_id = 151655`` and ``video_token_id = 151656`` — Qwen's own ids. The tiny model's
tokenizer (:mod:`gelab.train.tiny_model`) puts the same special tokens right after its small learned
vocabulary, so with the stock template its images would be silently dropped. This subclass takes
both ids from the tokenizer the template is given and refuses a model whose config disagrees, in
one line, before anything is encoded. Everything else (chat format, image expansion, position ids)
is the stock template's.

Register it with stock ms-swift through ``--custom_register_path src/gelab/train/swift_template.py``
and select it with ``--template gelab_qwen2_5_vl`` (the embedded default's ``model.template``; the
paper profile keeps ``qwen2_5_vl`` and the real Qwen2.5-VL-7B, for which both give the same ids).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # loaded by path through --custom_register_path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from swift.template import register_template  # noqa: E402
from swift.template.templates.qwen import Qwen2_5VLTemplate, QwenTemplateMeta  # noqa: E402

from gelab.train.tiny_model import TEMPLATE as NAME  # noqa: E402

MEDIA_TOKENS = {"image_token_id": "<|image_pad|>", "video_token_id": "<|video_pad|>"}


class MediaIdMismatch(ValueError):
    """The tokenizer and the model config name different ids for an image or video token."""


def media_ids(tokenizer: Any, config: Any = None) -> dict[str, int]:
    """``{"image_token_id": ..., "video_token_id": ...}`` from ``tokenizer``, checked against ``config``."""
    ids = {}
    for attr, token in MEDIA_TOKENS.items():
        got = tokenizer.convert_tokens_to_ids(token)
        if not isinstance(got, int) or got == tokenizer.unk_token_id:
            raise MediaIdMismatch(f"{NAME}: the tokenizer has no {token} token")
        want = getattr(config, attr, None) if config is not None else None
        if want is not None and want != got:
            raise MediaIdMismatch(f"{NAME}: the model config's {attr} is {want} but the tokenizer's {token} "
                                  f"is {got}: images would not reach the model")
        ids[attr] = got
    return ids


class GelabQwen2_5VLTemplate(Qwen2_5VLTemplate):
    """``Qwen2_5VLTemplate`` whose media token ids are the tokenizer's, not Qwen's fixed ones."""

    def init_processor(self, processor: Any) -> None:
        super().init_processor(processor)
        if processor is not None:
            for attr, value in media_ids(self.tokenizer, getattr(self, "config", None)).items():
                setattr(self, attr, value)  # an instance attribute shadows the class's fixed id


register_template(QwenTemplateMeta(NAME, template_cls=GelabQwen2_5VLTemplate), exist_ok=True)
