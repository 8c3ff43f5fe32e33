"""The embedded default model: a small vocabulary with Qwen2.5-VL's specials right after it, determinism,
and the image reaching the model through the template that takes its ids from the tokenizer."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from gelab import format as fmt
from gelab.params import TinyModelParams
from gelab.train.tiny_model import (
    SPECIAL_TOKENS,
    TEMPLATE,
    build_tiny_model,
    build_tokenizer,
    special_id,
    vocab_rows,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SMALL = TinyModelParams(vocab_learned=400)
FIRST_SPECIAL_ID = SMALL.vocab_learned  # the specials follow the learned entries directly
IMAGE_PAD_ID = special_id(SMALL.vocab_learned, "<|image_pad|>")


def _corpus_rows() -> list[dict]:
    """A few rows in the datasets' layout (navigation prompts and answers)."""
    rows = []
    for k, (name, page) in enumerate([("Flowers_and_plants_153", "page_0"), ("back", "page_7"), ("home", "page_12")]):
        user = fmt.navigation_prompt("page_0", f"page_{k + 20}", [fmt.HistoryStep(name, page)] * k)
        rows.append({"messages": [{"role": "system", "content": fmt.SYSTEM_PROMPT}, {"role": "user", "content": user},
                                  {"role": "assistant", "content": fmt.click_text(name, page, 123, 456)}]})
        rows.append({"messages": [{"role": "user", "content": user},
                                  {"role": "assistant", "content": fmt.complete_text()}]})
    return rows


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _corpus_rows()), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_dir(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "model"
    build_tiny_model(SMALL, [corpus], out)
    return out


def test_specials_follow_the_learned_entries_and_rows_round_up_to_64(tiny_dir: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(range(400, 422))
    assert tok.convert_tokens_to_ids("<|image_pad|>") == IMAGE_PAD_ID == 412
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    config = AutoConfig.from_pretrained(tiny_dir)
    assert config.text_config.vocab_size == len(tok) == vocab_rows(400) == 448  # 422 rounded up to 64
    assert (config.image_token_id, config.video_token_id) == (412, 413)
    assert (config.vision_start_token_id, config.vision_end_token_id) == (409, 410)
    assert vocab_rows(1024) == 1088 and vocab_rows(1066) == 1088 and vocab_rows(1067) == 1152


def test_text_round_trips_and_never_hits_filler_ids(corpus: Path) -> None:
    from gelab.train.tiny_model import corpus_texts

    tok = build_tokenizer(corpus_texts([corpus]), SMALL.vocab_learned)
    for text in [fmt.click_text("Sports-and_games_7", "page_230", 0, 1000), fmt.complete_text(), fmt.SYSTEM_PROMPT,
                 "<|vision_start|><|image_pad|><|vision_end|>unseen wörds ✓"]:
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        # learned BPE ids or special ids, never the unreachable fillers after them
        assert all(i < FIRST_SPECIAL_ID + len(SPECIAL_TOKENS) for i in ids), ids
    box = tok.encode(fmt.point_text(5, 6))
    assert box[0] == FIRST_SPECIAL_ID + SPECIAL_TOKENS.index("<|box_start|>")  # one token, not characters


def test_build_is_deterministic(corpus: Path, tiny_dir: Path, tmp_path: Path) -> None:
    build_tiny_model(SMALL, [corpus], tmp_path / "again")
    for name in ["model.safetensors", "tokenizer.json", "config.json"]:
        a, b = (hashlib.sha256((d / name).read_bytes()).hexdigest() for d in (tiny_dir, tmp_path / "again"))
        assert a == b, name


@pytest.mark.slow
def test_image_reaches_the_model_in_training_and_rollout_prompts(tiny_dir: Path, tmp_path: Path) -> None:
    """Through the project's template, placeholder tokens == the processor's count == vision features (256
    for a 448² page) for an SFT row and a GRPO prompt; the forward pass puts the features there."""
    import torch
    from PIL import Image
    from swift.model import get_model_processor
    from swift.template import get_template
    from transformers import AutoProcessor

    import gelab.train.swift_template  # noqa: F401  registers TEMPLATE

    image = tmp_path / "page.png"
    Image.new("RGB", (448, 448), (200, 30, 90)).save(image)
    system = {"role": "system", "content": fmt.SYSTEM_PROMPT}
    user = {"role": "user", "content": fmt.navigation_prompt("page_0", "page_4")}
    train_row = {"messages": [system, user, {"role": "assistant", "content": fmt.complete_text()}],
                 "images": [str(image)]}
    rollout_row = {"messages": [system, user], "images": [str(image)]}

    model, processor = get_model_processor(str(tiny_dir), model_type="qwen2_5_vl", torch_dtype=torch.float32,
                                           download_model=False)
    template = get_template(processor, template_type=TEMPLATE, max_pixels=200704)
    template.model = model
    plain = AutoProcessor.from_pretrained(tiny_dir)
    expected = plain(text=["<|vision_start|><|image_pad|><|vision_end|>"], images=[Image.open(image)],
                     return_tensors="pt")["input_ids"][0].tolist().count(IMAGE_PAD_ID)
    for mode, row in [("train", train_row), ("transformers", rollout_row)]:
        template.set_mode(mode)
        enc = template.encode(row)
        n_placeholders = sum(1 for i in enc["input_ids"] if i == IMAGE_PAD_ID)
        with torch.no_grad():
            features = model.model.get_image_features(enc["pixel_values"], enc["image_grid_thw"]).pooler_output
        n_features = sum(f.shape[0] for f in features)
        assert n_placeholders == n_features == expected == 256, (mode, n_placeholders, n_features, expected)
        # the forward pass scatters the features into the placeholders (raises on a mismatch)
        batch = template.data_collator([enc])
        batch.pop("labels", None)
        with torch.no_grad():
            logits = model(**batch).logits
        assert logits.shape[1] == len(enc["input_ids"])


@pytest.mark.slow
def test_a_template_whose_media_id_disagrees_fails_in_one_line(tiny_dir: Path, tmp_path: Path) -> None:
    """A model whose config names another image id than its tokenizer is refused by the template, and the
    stock qwen2_5_vl template (fixed id 151655) is refused before ms-swift starts: never a dropped image."""
    import shutil

    import torch
    from swift.model import get_model_processor
    from swift.template import get_template

    from gelab.train.swift_template import MediaIdMismatch
    from gelab.train.checks import check_template
    from gelab.train.config import TrainError

    broken = tmp_path / "broken"
    shutil.copytree(tiny_dir, broken)
    config = json.loads((broken / "config.json").read_text())
    config["image_token_id"] = 151655
    (broken / "config.json").write_text(json.dumps(config))
    _, processor = get_model_processor(str(broken), model_type="qwen2_5_vl", torch_dtype=torch.float32,
                                       download_model=False, load_model=False)
    with pytest.raises(MediaIdMismatch) as err:
        get_template(processor, template_type=TEMPLATE)
    assert "\n" not in str(err.value) and "image_token_id is 151655" in str(err.value) and "412" in str(err.value)

    with pytest.raises(TrainError) as err:
        check_template(str(tiny_dir), "qwen2_5_vl")
    assert "\n" not in str(err.value) and TEMPLATE in str(err.value)
    check_template(str(tiny_dir), TEMPLATE)  # the right template passes
    check_template(str(broken), "qwen2_5_vl")  # a model with Qwen's own ids passes the stock template
