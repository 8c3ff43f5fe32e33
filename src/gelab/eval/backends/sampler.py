"""Batched sampling with one random stream per row: the ``hf`` backend's decoding step.

Each row (request) draws its token from softmax(logits / temperature) after the top-k and top-p
cuts, by inverse CDF with **one uniform per row and step**. That uniform comes from a hash of the
row's seed and the step number (:func:`row_uniform`), so a row's tokens depend on its seed and its
own logits only, never on the other rows of the batch or on how many there are. All the work on the
logits is batched tensor code on the logits' device; only the batch's uniforms (B numbers) cross
from the host.

Costs per step for B rows and a vocabulary of V (Qwen2.5-VL: 151,665 logits):

- no cut (the evaluation's default): one softmax over (B, V), per-block sums, then float64
  cumulative sums over the block sums and over the one chosen block of each row; no sort;
- top-k: ``torch.topk`` (k sorted candidates), then everything on (B, k);
- top-p alone: ``torch.topk`` on a growing prefix (64, 512, ... up to V) until every row's nucleus
  fits, so a full sort happens only for very flat rows.

Top-p keeps the smallest set of most probable tokens whose probability reaches ``top_p`` (a token
is dropped when the tokens ranked before it already hold ``top_p``), computed on the distribution
after temperature and top-k, as transformers and vLLM do.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

BLOCK = 1024  # tokens per block of the two-level inverse CDF
_UNIFORM_BITS = 32  # u = n / 2**32 < 1, so u · total < total exactly in float64
_TOP_P_PREFIX = 64  # first candidate prefix for top-p without top-k (grown 8x while too short)


def row_uniform(seed: int, step: int) -> float:
    """The uniform in [0, 1) that a row with ``seed`` uses at decoding step ``step`` (SHA-256 based)."""
    digest = hashlib.sha256(f"gelab-sample_{seed}_{step}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**_UNIFORM_BITS


def row_uniforms(seeds: Sequence[int], step: int, device: Any = None) -> Any:
    """(B,) float64 tensor of :func:`row_uniform` for each seed."""
    import torch

    return torch.tensor([row_uniform(s, step) for s in seeds], dtype=torch.float64, device=device)


def inverse_cdf(weights: Any, u: Any) -> Any:
    """Per row, the first index whose cumulative weight exceeds ``u`` × the row total.

    ``weights``: (B, n) non-negative, not necessarily normalized, each row with a positive total;
    ``u``: (B,) float64 in [0, 1). Returns (B,) int64; the index always has a positive weight.
    Rows longer than two blocks go through per-block sums first, so the float64 cumulative sums
    stay short (B × n / BLOCK and B × BLOCK) whatever the vocabulary size.
    """
    import torch

    rows, n = weights.shape
    if n <= 2 * BLOCK:
        return _pick(weights.to(torch.float64).cumsum(-1), u)
    full = n // BLOCK * BLOCK
    sums = weights[:, :full].reshape(rows, -1, BLOCK).sum(-1)
    if full < n:
        sums = torch.cat([sums, weights[:, full:].sum(-1, keepdim=True)], dim=-1)
    cdf = sums.to(torch.float64).cumsum(-1)
    block = _pick(cdf, u)
    before = torch.where(block > 0, cdf.gather(-1, (block - 1).clamp_min(0)[:, None])[:, 0], 0.0)
    mass = cdf.gather(-1, block[:, None])[:, 0] - before
    offsets = block[:, None] * BLOCK + torch.arange(BLOCK, device=weights.device)
    inside = offsets < n
    chunk = weights.gather(-1, offsets.clamp_max(n - 1)).to(torch.float64) * inside
    # the remainder as a fraction of the block's own mass, so both levels agree on the block's total
    local = ((u * cdf[:, -1] - before) / mass).clamp(0.0, 1.0)
    return block * BLOCK + _pick(chunk.cumsum(-1), local.nan_to_num(0.0))


def _pick(cdf: Any, u: Any) -> Any:
    """Index of the first entry of each row of ``cdf`` (float64, non-decreasing) above u × total."""
    import torch

    total = cdf[:, -1:]
    index = torch.searchsorted(cdf, u[:, None] * total, right=True)[:, 0]
    last = (cdf < total).sum(-1)  # the last entry with positive weight (guards u·total rounding up)
    return torch.minimum(index, last)


def sample_rows(logits: Any, u: Any, temperature: float, top_k: int = 0, top_p: float = 1.0, *,
                scratch: bool = False) -> Any:
    """One token per row of ``logits`` (B, V), drawn with the row's uniform ``u`` (B,) float64.

    ``scratch``: ``logits`` may be overwritten (saves a (B, V) temporary when temperature != 1).
    """
    import torch

    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for sampling, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    vocab = logits.shape[-1]
    if top_k > 0:  # the order of logits / temperature is the order of logits: cut first, on k values
        values, index = torch.topk(logits, min(top_k, vocab), dim=-1)  # sorted, most probable first
        probs = (values.float() / temperature).softmax(-1)
        return index.gather(-1, inverse_cdf(_nucleus(probs, top_p), u)[:, None])[:, 0]
    scaled = logits.float()
    if temperature != 1.0:
        scaled = scaled.div_(temperature) if scratch and scaled is logits else scaled / temperature
    probs = scaled.softmax(-1)  # one fused pass; cheaper on CPU than exp in place
    if top_p >= 1.0:
        return inverse_cdf(probs, u)
    k = min(_TOP_P_PREFIX, vocab)
    while True:  # grow the candidate prefix until it holds every row's nucleus
        values, index = torch.topk(probs, k, dim=-1)
        if k == vocab or bool((values.sum(-1, dtype=torch.float64) >= top_p).all()):
            return index.gather(-1, inverse_cdf(_nucleus(values, top_p), u)[:, None])[:, 0]
        k = min(8 * k, vocab)


def _nucleus(probs: Any, top_p: float) -> Any:
    """``probs`` (B, n): probabilities sorted most probable first, the tokens outside the nucleus zeroed."""
    import torch

    if top_p >= 1.0:
        return probs
    probs = probs.to(torch.float64)
    before = probs.cumsum(-1) - probs  # probability held by the tokens ranked before each token
    keep = before < top_p
    keep[:, 0] = True
    return probs * keep
