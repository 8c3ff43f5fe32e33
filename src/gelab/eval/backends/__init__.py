"""Model backends: a batch of requests in, one assistant text per request out.

- ``hf`` (:mod:`.hf`): transformers ``generate``, batched with left padding, CPU or GPU;
- ``vllm`` (:mod:`.vllm`): offline ``LLM.generate`` (GPU extra, imported only when chosen);
- ``openai`` (:mod:`.openai`): any OpenAI-compatible ``/v1/chat/completions`` endpoint.

Every backend sends the same conversation: the system prompt of :mod:`gelab.format`, then one user
turn holding the page image and the instruction text (no ``<image>`` placeholder). Sampling follows
:class:`Sampling`; each request carries its own seed so that a sample does not depend on which
other requests share its batch (exactly so for ``hf`` and ``vllm``; ``openai`` passes ``seed``
through, which servers honour on a best-effort basis).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from gelab.errors import InputError, quote
from gelab.params import MODEL_BACKENDS  # noqa: F401  (the `kind` names make_backend takes)
from gelab.params import image_size  # noqa: F401  (the backends' image budget)


@dataclass(frozen=True, slots=True)
class Request:
    system: str
    user: str  # instruction text, without the image placeholder
    image: str  # image file path
    seed: int


@dataclass(frozen=True)
class Sampling:
    """Decoding settings; ``temperature == 0`` means greedy."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k cut
    max_new_tokens: int = 64  # an answer line is about 40 tokens
    repetition_penalty: float = 1.0  # 1: none (a checkpoint's generation_config never adds one)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0

    def explicit(self) -> dict[str, Any]:
        """Every decoding parameter, as each backend must apply it (greedy: no temperature or cuts)."""
        if self.greedy:
            return {"temperature": 0.0, "top_p": 1.0, "top_k": 0, "repetition_penalty": self.repetition_penalty,
                    "max_new_tokens": self.max_new_tokens}
        return {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
                "repetition_penalty": self.repetition_penalty, "max_new_tokens": self.max_new_tokens}


class Backend(Protocol):
    name: str

    def generate(self, requests: Sequence[Request]) -> list[str]:
        ...


def make_backend(kind: str, sampling: Sampling, **options: Any) -> Backend:
    """The backend ``kind`` with its own options (see each backend's constructor)."""
    if kind == "hf":
        from gelab.eval.backends.hf import HFBackend

        return HFBackend(sampling=sampling, **options)
    if kind == "vllm":
        from gelab.eval.backends.vllm import VLLMBackend

        return VLLMBackend(sampling=sampling, **options)
    if kind == "openai":
        from gelab.eval.backends.openai import OpenAIBackend

        return OpenAIBackend(sampling=sampling, **options)
    raise InputError(f"unknown backend {quote(kind)} ({', '.join(MODEL_BACKENDS)})")
