"""95 % intervals: Wilson for rates, a seeded bootstrap over tasks for Pass@1 / Pass@k, and their
place beside every percentage of the interactive metrics."""

from __future__ import annotations

from typing import Sequence

import pytest
from evalkit import navigator, tasks

from gelab.eval.interactive import interactive_metrics, run_episodes
from gelab.eval.intervals import Z95, bootstrap_mean, bootstrap_percentiles, wilson
from gelab.eval.policies import Observation, OraclePolicy, reference_policy


@pytest.mark.parametrize("right,total", [(0, 10), (5, 10), (10, 10), (1, 3), (81, 263), (2162, 2162),
                                         (1.5, 3), (4.8, 12)])  # fractional: sums of Pass@1 rates
def test_wilson_bounds_solve_the_score_equation(right, total):
    """Wilson's bounds are the two p with (p̂ - p)² = z² p (1 - p) / n."""
    low, high = (v / 100 for v in wilson(right, total))
    p_hat = right / total
    for p in (low, high):
        assert (p_hat - p) ** 2 == pytest.approx(Z95**2 * p * (1 - p) / total, abs=1e-12)
    assert low <= p_hat <= high


def test_wilson_reference_values():
    assert wilson(0, 10) == pytest.approx([0.0, 100 * Z95**2 / (10 + Z95**2)])  # 27.75: the closed form at 0
    assert wilson(5, 10) == pytest.approx([23.659, 76.341], abs=1e-3)
    assert wilson(0, 0) is None


@pytest.mark.parametrize("total", range(1, 301))
def test_wilson_keeps_the_rate_inside_at_every_count(total):
    """One clamping rule: low <= p <= high exactly, also at 0 % and 100 % where rounding could cut p off."""
    for right in {0, 1, total // 3, total - 1, total}:
        low, high = wilson(right, total)
        assert 0.0 <= low <= 100.0 * right / total <= high <= 100.0


BOOTSTRAP = "bootstrap"


@pytest.mark.parametrize("values, expected", [
    ([0.0], [0.0, 79.35]),                 # one task at 0: not [0, 0]
    ([1.0], [20.65, 100.0]),               # one task at 1: not [100, 100]
    ([0.0] * 5, [0.0, 43.45]),             # five tasks, all 0
    ([0.0] * 14, [0.0, 21.53]),            # fourteen tasks, all 0
    ([0.4] * 12, wilson(4.8, 12)),         # all alike at a fraction: Wilson with 4.8 successes of 12
    ([1.0] + [0.0] * 13, [1.27, 31.47]),   # bootstrap [0, 21.4] is narrower than 1 of 14 tasks allows
    ([0.2, 0.2, 0.2, 0.4], [4.56, 69.94]),  # bootstrap [20, 35] from four tasks: too narrow
    ([1.0] * 30 + [0.0] * 70, BOOTSTRAP),  # mixed and wider than Wilson: the bootstrap, unchanged
])
def test_bootstrap_is_never_narrower_than_wilson_over_tasks(values, expected):
    ci = bootstrap_mean(values, 0, "strict", "all", "pass@k")
    boot = bootstrap_percentiles(values, 0, "strict", "all", "pass@k")
    if expected == BOOTSTRAP:
        assert ci == boot
    else:
        assert ci == pytest.approx(expected, abs=0.01)
        assert ci == pytest.approx(wilson(sum(values), len(values))) and ci[1] - ci[0] > boot[1] - boot[0]


def test_bootstrap_is_seeded_and_brackets_the_mean():
    values = [1.0] * 30 + [0.0] * 70
    ci = bootstrap_mean(values, 0, "strict", "all", "pass@k")
    assert ci == bootstrap_mean(values, 0, "strict", "all", "pass@k")  # deterministic
    assert ci[0] < 30.0 < ci[1]
    assert ci == pytest.approx([30 - Z95 * 4.583, 30 + Z95 * 4.583], abs=1.0)  # ≈ normal theory, sd √(.3·.7/100)
    spread = [i / 36 for i in range(37)]  # many distinct means: another seed or purpose moves the bounds
    assert bootstrap_percentiles(spread, 0, "a") != bootstrap_percentiles(spread, 1, "a") \
        != bootstrap_percentiles(spread, 1, "b")
    assert bootstrap_mean([], 0, "x") is None


def _policy(succeeds):
    """The oracle where ``succeeds(task id, attempt)`` holds, a wrong answer elsewhere."""
    oracle = OraclePolicy(navigator())

    class Picky:
        name = "picky"

        def act(self, observations: Sequence[Observation]) -> list[str]:
            right = oracle.act(observations)
            return [r if succeeds(*o.key.rsplit("@", 1)) else "garbage" for o, r in zip(observations, right)]

    return Picky()


def _metrics(policy, task_list, attempts=2, seed=0):
    eps = run_episodes(navigator(), task_list, policy, attempts=attempts, max_steps=12,
                       image_of=lambda p: f"env/{p}.png")
    return interactive_metrics(eps, attempts, 12, seed=seed)


def test_every_pass_rate_carries_its_interval():
    task_list = tasks()[::20]
    m = _metrics(reference_policy("random", navigator(), seed=1), task_list, attempts=3)
    for mode in ("strict", "lenient"):
        for block in (m[mode], *m[mode]["per_path"].values()):
            for key in ("pass@1", "pass@k"):
                low, high = block[key + "_ci95"]
                assert 0 <= low <= block[key] <= high <= 100
                assert block[key + "_n"] == block.get("tasks", m["tasks"])  # the tasks it is over
    assert m == _metrics(reference_policy("random", navigator(), seed=1), task_list, attempts=3)  # deterministic


def test_pass_at_1_interval_resamples_tasks_not_attempts():
    """Half the episodes succeed in both runs; when whole tasks succeed or fail together the tasks
    vary and the interval is wide, when every task succeeds on one attempt of two they do not, and
    the bootstrap, seeing no variation, gives way to the Wilson interval over the tasks."""
    task_list = tasks()[::25]
    ids = [t.id for t in task_list]
    by_task = _metrics(_policy(lambda task, attempt: ids.index(task) % 2 == 0), task_list)
    by_attempt = _metrics(_policy(lambda task, attempt: attempt == "0"), task_list)
    assert by_task["strict"]["pass@1"] == pytest.approx(by_attempt["strict"]["pass@1"], abs=100 / len(ids))
    low, high = by_task["strict"]["pass@1_ci95"]
    assert high - low > 15
    n = len(ids)
    assert by_attempt["strict"]["pass@1_ci95"] == wilson(n / 2, n) and by_attempt["strict"]["pass@k_ci95"] == wilson(n, n)
