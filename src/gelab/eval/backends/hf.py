"""``hf`` backend: transformers ``generate`` on a Qwen2.5-VL folder, batched with left padding.

The folder is an HF checkpoint with its processor (what training saves). Each request becomes the
conversation [system, user(image, text)] through the processor's chat template. Images are fed at
``max_pixels`` (448² = 200704 → 256 visual tokens, SPEC §1).

Sampling draws every row's token with that row's own seeded uniforms (:mod:`.sampler`, batched on
the model's device), so a sampled answer does not depend on the other rows of its batch; greedy
decoding takes the arg-max.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Sequence

from gelab.eval.backends import Request, Sampling, image_size

DEFAULT_MAX_PIXELS = 448 * 448  # SPEC §1: 200704 pixels -> 256 visual tokens


def _import_error(exc: ImportError) -> ImportError:
    return ImportError(f"the hf backend needs torch and transformers ({exc}); install the project's requirements")


@functools.lru_cache(maxsize=1024)
def _image(path: str) -> Any:
    from PIL import Image

    with Image.open(path) as img:
        return img.convert("RGB")


class RowSampler:
    """A logits processor that draws each row's next token (:mod:`.sampler`) and forces it.

    Row ``i`` uses the uniforms of ``seeds[i]`` at steps 0, 1, 2, ... of this ``generate`` call, so
    its tokens do not depend on the other rows. The returned scores are ``-inf`` except 0 at the
    drawn token, so greedy selection in ``generate`` picks it.
    """

    def __init__(self, seeds: Sequence[int], sampling: Sampling) -> None:
        self.seeds = [int(s) for s in seeds]
        self.sampling = sampling
        self.step = 0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        from gelab.eval.backends.sampler import row_uniforms, sample_rows

        u = row_uniforms(self.seeds, self.step, device=scores.device)
        self.step += 1
        s = self.sampling
        picks = sample_rows(scores, u, s.temperature, s.top_k, s.top_p, scratch=True)
        return scores.fill_(float("-inf")).scatter_(-1, picks[:, None], 0.0)  # generate hands over its copy


class CachedImageProcessor:
    """The processor's image processor, preprocessing each distinct image once per run.

    Qwen2-VL's image processor treats images independently and concatenates their patches, so the
    cached per-image results joined in order equal the batch result. Pages repeat across episodes
    (231 pages, thousands of requests), so this removes the per-request resize and patchify cost.
    Images are keyed by identity; :func:`_image` hands out one object per path and the cache keeps
    it alive.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._cache: dict[tuple[int, str], tuple[Any, Any]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __call__(self, images: Any = None, *args: Any, **kwargs: Any) -> Any:
        import numpy as np
        import torch
        from transformers import BatchFeature

        images = list(images) if isinstance(images, (list, tuple)) else [images]
        settings = repr(sorted(kwargs.items()))
        parts = []
        for image in images:
            key = (id(image), settings)
            if key not in self._cache:
                self._cache[key] = (image, self._inner(images=[image], *args, **kwargs))
            parts.append(self._cache[key][1])
        joined = {k: torch.cat([p[k] for p in parts]) if isinstance(parts[0][k], torch.Tensor)
                  else np.concatenate([p[k] for p in parts]) for k in parts[0].keys()}
        return BatchFeature(joined)


class HFBackend:
    name = "hf"

    def __init__(self, model: str | Path, sampling: Sampling = Sampling(), device: str = "auto",
                 dtype: str = "auto", max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        try:
            import torch
            from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration
        except ImportError as exc:
            raise _import_error(exc) from exc
        if not Path(model).is_dir():
            raise FileNotFoundError(f"hf backend: model folder {model} does not exist")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype == "auto":
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        self.sampling, self.device = sampling, device
        self.processor = AutoProcessor.from_pretrained(model)
        self.processor.tokenizer.padding_side = "left"
        self.processor.image_processor = CachedImageProcessor(self.processor.image_processor)
        self.max_pixels = max_pixels
        self.model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model, dtype=getattr(torch, dtype))
        self.model.to(device).eval()
        self.model.generation_config = self._own_generation_config(self.model.generation_config)

    def _inputs(self, requests: Sequence[Request]) -> Any:
        texts = [self.processor.apply_chat_template(
            [{"role": "system", "content": r.system},
             {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": r.user}]}],
            add_generation_prompt=True, tokenize=False) for r in requests]
        images = [_image(r.image) for r in requests]
        return self.processor(text=texts, images=images, padding=True, return_tensors="pt",
                              images_kwargs={"size": image_size(self.max_pixels)}).to(self.device)

    @staticmethod
    def _own_generation_config(checkpoint: Any) -> Any:
        """Of the checkpoint's generation_config.json only the stop, pad and start ids. transformers fills
        whatever a passed config leaves unset from the model's (Qwen2.5-VL-7B-Instruct's has
        repetition_penalty 1.05, top_k 1, top_p 0.001), so the model keeps nothing else to lend."""
        from transformers import GenerationConfig

        return GenerationConfig(eos_token_id=checkpoint.eos_token_id, pad_token_id=checkpoint.pad_token_id,
                                bos_token_id=checkpoint.bos_token_id)

    def generation_config(self) -> Any:
        """Every decoding setting from params (``Sampling.explicit``, as the vllm backend gets them): the
        scores are penalised here, then :class:`RowSampler` applies temperature, top-k and top-p."""
        from transformers import GenerationConfig

        s = self.sampling.explicit()
        ids = self.model.generation_config
        return GenerationConfig(max_new_tokens=s["max_new_tokens"], do_sample=False, num_beams=1,
                                repetition_penalty=s["repetition_penalty"], eos_token_id=ids.eos_token_id,
                                pad_token_id=ids.pad_token_id, bos_token_id=ids.bos_token_id)

    def generate(self, requests: Sequence[Request]) -> list[str]:
        import torch
        from transformers import LogitsProcessorList

        if not requests:
            return []
        inputs = self._inputs(requests)
        kwargs: dict[str, Any] = {"generation_config": self.generation_config()}
        if not self.sampling.greedy:
            kwargs["logits_processor"] = LogitsProcessorList([RowSampler([r.seed for r in requests], self.sampling)])
        with torch.inference_mode():
            out = self.model.generate(**inputs, **kwargs)
        return [self._decode(row) for row in out[:, inputs["input_ids"].shape[1]:].tolist()]

    def _decode(self, ids: list[int]) -> str:
        """Text up to the first end-of-turn token; Qwen's box tokens are kept (they are answer syntax)."""
        stop = self._stop_ids()
        for i, t in enumerate(ids):
            if t in stop:
                ids = ids[:i]
                break
        return self.processor.tokenizer.decode(ids, skip_special_tokens=False)

    @functools.cache
    def _stop_ids(self) -> frozenset[int]:
        tok = self.processor.tokenizer
        eos = self.model.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        ids.update(i for i in (tok.eos_token_id, tok.pad_token_id, tok.convert_tokens_to_ids("<|im_end|>")) if i is not None)
        return frozenset(ids)
