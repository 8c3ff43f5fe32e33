"""``vllm`` backend: offline ``LLM.generate`` with multimodal prompts (GPU extra, imported lazily).

Each request becomes the chat-templated prompt text with Qwen2.5-VL's image placeholder
(``<|vision_start|><|image_pad|><|vision_end|>``) plus ``multi_modal_data={"image": PIL image}``;
the processor is limited to ``max_pixels`` (448² = 256 visual tokens, SPEC §1) and one image per
prompt. Each request has its own ``SamplingParams(seed=...)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from gelab.errors import GelabError
from gelab.eval.backends import Request, Sampling, image_size
from gelab.eval.backends.hf import DEFAULT_MAX_PIXELS, _image

INSTALL = ("pip install -r requirements-gpu.lock (the paper profile's GPU lock: vLLM 0.23.0 with torch 2.11.0; "
           "`nix develop` and `make setup-gpu` install it)")


class VLLMMissing(GelabError, ImportError):
    """The vllm backend was chosen but vLLM is not installed (it is GPU-only)."""


class VLLMBackend:
    name = "vllm"

    def __init__(self, model: str | Path, sampling: Sampling = Sampling(), max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_model_len: int = 4096, gpu_memory_utilization: float = 0.85, **llm_options: Any) -> None:
        try:
            from transformers import AutoProcessor
            from vllm import LLM
        except ImportError as exc:
            raise VLLMMissing(f"the vllm backend needs the vllm package ({exc}): {INSTALL}") from exc
        self.sampling = sampling
        self.processor = AutoProcessor.from_pretrained(model)
        # generation_config="vllm": vLLM's own defaults, never the checkpoint's generation_config.json
        # (every parameter is given per request anyway, see _params)
        self.llm = LLM(model=str(model), max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization,
                       limit_mm_per_prompt={"image": 1}, generation_config="vllm",
                       mm_processor_kwargs={"size": image_size(max_pixels)}, **llm_options)

    def _prompt(self, r: Request) -> dict[str, Any]:
        text = self.processor.apply_chat_template(
            [{"role": "system", "content": r.system},
             {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": r.user}]}],
            add_generation_prompt=True, tokenize=False)
        return {"prompt": text, "multi_modal_data": {"image": _image(r.image)}}

    def _params(self, r: Request) -> Any:
        from vllm import SamplingParams

        s = self.sampling.explicit()  # every parameter explicit, as the hf backend applies them
        seed = {} if self.sampling.greedy else {"seed": r.seed % (2**31)}
        return SamplingParams(temperature=s["temperature"], top_p=s["top_p"], top_k=s["top_k"] if s["top_k"] > 0 else -1,
                              repetition_penalty=s["repetition_penalty"], presence_penalty=0.0, frequency_penalty=0.0,
                              min_p=0.0, max_tokens=s["max_new_tokens"], skip_special_tokens=False, **seed)

    def generate(self, requests: Sequence[Request]) -> list[str]:
        if not requests:
            return []
        outputs = self.llm.generate([self._prompt(r) for r in requests], [self._params(r) for r in requests],
                                    use_tqdm=False)
        return [o.outputs[0].text for o in outputs]
