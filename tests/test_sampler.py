"""The hf backend's batched sampler: per-row seeds, the distribution it draws from, and its cuts.

Distribution checks draw many rows at once (one seed per row) and compare the counts with
softmax(logits / temperature) after the cuts by a chi-square test at the 0.1 % level; the seeds are
fixed, so each test is deterministic.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from gelab.eval.backends import Sampling  # noqa: E402
from gelab.eval.backends.hf import RowSampler  # noqa: E402
from gelab.eval.backends.sampler import BLOCK, inverse_cdf, row_uniforms, sample_rows  # noqa: E402

CHI2_999 = {2: 13.816, 3: 16.266, 4: 18.467, 5: 20.515, 7: 24.322, 11: 31.264}  # chi2.ppf(0.999, df)
DRAWS = 20_000


def chi_square(tokens, expected_probs) -> tuple[float, int]:
    """(statistic, degrees of freedom) of the token counts against ``expected_probs`` (zeros excluded)."""
    counts = torch.bincount(tokens, minlength=len(expected_probs)).double()
    expected = expected_probs.double() * len(tokens)
    assert counts[expected == 0].sum() == 0, "a token outside the cuts was drawn"
    kept = expected > 0
    stat = float(((counts[kept] - expected[kept]) ** 2 / expected[kept]).sum())
    return stat, int(kept.sum()) - 1


def draws(logits, temperature: float, top_k: int = 0, top_p: float = 1.0, n: int = DRAWS):
    """``n`` tokens, one per row, every row the same ``logits`` and its own seed."""
    u = row_uniforms(range(n), 0)
    return sample_rows(logits.expand(n, -1), u, temperature, top_k, top_p)


LOGITS = torch.tensor([2.0, 1.5, 1.0, 0.9, 0.5, 0.0, -0.3, -1.0, -1.2, -2.0, -3.0, 0.2])


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_draws_follow_softmax_of_logits_over_temperature(temperature):
    stat, df = chi_square(draws(LOGITS, temperature), (LOGITS / temperature).softmax(-1))
    assert df == 11 and stat < CHI2_999[df], stat


def test_top_k_keeps_the_k_most_probable_and_renormalizes():
    probs = torch.where(LOGITS >= LOGITS.topk(5).values[-1], (LOGITS / 0.7).exp(), 0.0)
    stat, df = chi_square(draws(LOGITS, 0.7, top_k=5), probs / probs.sum())
    assert df == 4 and stat < CHI2_999[df], stat


def test_top_p_keeps_the_smallest_set_reaching_p():
    # sorted probabilities 0.40, 0.25, 0.15, 0.10, 0.06, 0.04: top_p 0.7 keeps the first three
    # (0.65 < 0.7 before the third), the fourth is dropped (0.80 already held before it)
    probs = torch.tensor([0.10, 0.40, 0.06, 0.25, 0.04, 0.15])
    logits = probs.log()
    expected = torch.tensor([0.0, 0.40, 0.0, 0.25, 0.0, 0.15]) / 0.80
    stat, df = chi_square(draws(logits, 1.0, top_p=0.7), expected)
    assert df == 2 and stat < CHI2_999[df], stat
    # with top-k 2 first, the nucleus of the two survivors (0.4/0.65, 0.25/0.65) at 0.5 is the first alone
    assert set(draws(logits, 1.0, top_k=2, top_p=0.5, n=500).tolist()) == {1}


def test_top_p_on_a_large_vocabulary_grows_its_candidate_prefix():
    """Top-p without top-k looks at a growing prefix of the most probable tokens (64, 512, ...); a
    nucleus longer than the first prefix must still be drawn exactly."""
    vocab = 3000
    logits = torch.full((vocab,), -30.0)
    heavy = torch.arange(0, vocab, 30)  # 100 equally probable tokens hold all the mass
    logits[heavy] = 0.0
    tokens = draws(logits, 1.0, top_p=0.895, n=4000)
    assert set(tokens.tolist()) <= set(heavy.tolist())
    assert len(set(tokens.tolist())) == 90  # 0.90 >= 0.895: the nucleus is 90 of the 100 (which: topk's tie order)


def test_a_large_vocabulary_is_drawn_exactly_across_block_boundaries():
    """The two-level inverse CDF (block sums, then one block) on a vocabulary with a partial last
    block; the probable tokens sit on both sides of block boundaries and in the partial block."""
    vocab = 4 * BLOCK + 500
    logits = torch.full((vocab,), -40.0)
    spots = torch.tensor([0, BLOCK - 1, BLOCK, 2 * BLOCK - 1, 2 * BLOCK, 4 * BLOCK + 3, vocab - 1])
    logits[spots] = torch.tensor([0.0, 1.0, 0.5, -0.5, 0.8, 0.2, 1.2])
    tokens = draws(logits, 1.0, n=5000)
    assert set(tokens.tolist()) <= set(spots.tolist())
    compact = torch.searchsorted(spots, tokens)
    stat, df = chi_square(compact, logits[spots].softmax(-1))
    assert df == 6 and stat < 22.458, stat  # chi2.ppf(0.999, 6)


def test_inverse_cdf_never_picks_a_zero_weight_token():
    weights = torch.zeros(4, 3 * BLOCK)
    weights[:, [5, BLOCK + 7, 3 * BLOCK - 1]] = torch.tensor([1.0, 2.0, 3.0])
    u = torch.tensor([0.0, 1 / 6 - 1e-12, 0.4, 1 - 2**-32], dtype=torch.float64)
    assert inverse_cdf(weights, u).tolist() == [5, 5, BLOCK + 7, 3 * BLOCK - 1]
    small = torch.tensor([[0.0, 1.0, 0.0, 1.0, 0.0]] * 3)
    u = torch.tensor([0.0, 0.5, 1 - 2**-32], dtype=torch.float64)
    assert inverse_cdf(small, u).tolist() == [1, 3, 3]


def test_a_rows_tokens_depend_on_its_seed_and_logits_only():
    """Same seed and logits => same tokens at every step, whoever shares the batch and in what order."""
    gen = torch.Generator().manual_seed(0)
    vocab = 3 * BLOCK + 17
    rows = torch.randn(5, vocab, generator=gen) * 3
    seeds = [11, 22, 33, 44, 55]
    sampling = Sampling(temperature=0.9)

    def run(order: list[int], steps: int = 6) -> dict[int, list[int]]:
        sampler = RowSampler([seeds[i] for i in order], sampling)
        out: dict[int, list[int]] = {i: [] for i in order}
        for step in range(steps):
            scores = rows[order] + 0.25 * step  # logits change from step to step (a shift: same softmax)
            forced = sampler(torch.zeros(len(order), 1, dtype=torch.long), scores.clone())
            for i, token in zip(order, forced.argmax(-1).tolist()):
                out[i].append(token)
        return out

    full = run([0, 1, 2, 3, 4])
    assert run([3, 1]) == {3: full[3], 1: full[1]}
    assert run([4, 2, 0, 1, 3]) == full
    assert run([2]) == {2: full[2]}
    assert len({tuple(tokens) for tokens in full.values()}) == 5  # different seeds, different draws


def test_forced_scores_are_minus_infinity_except_the_drawn_token():
    scores = torch.randn(3, 2 * BLOCK + 1, generator=torch.Generator().manual_seed(1))
    u = row_uniforms([7, 8, 9], 0)
    picks = sample_rows(scores, u, 1.0)
    forced = RowSampler([7, 8, 9], Sampling(temperature=1.0))(None, scores.clone())
    assert forced.argmax(-1).tolist() == picks.tolist()
    assert (forced == 0).sum() == 3 and torch.isinf(forced).sum() == forced.numel() - 3


def test_a_cold_temperature_picks_the_argmax():
    logits = torch.randn(64, 500, generator=torch.Generator().manual_seed(2))
    assert torch.equal(sample_rows(logits, row_uniforms(range(64), 3), 1e-6), logits.argmax(-1))


def test_bad_sampling_settings_are_refused():
    logits, u = torch.zeros(1, 4), torch.zeros(1, dtype=torch.float64)
    with pytest.raises(ValueError, match="temperature"):
        sample_rows(logits, u, 0.0)
    with pytest.raises(ValueError, match="top_p"):
        sample_rows(logits, u, 1.0, top_p=0.0)
