"""95 % confidence intervals of the metrics, in percent, stored beside each value as ``KEY_ci95``.

- **Wilson** score interval for a proportion of independent trials (static step accuracy and task
  success; captioning and grounding). It never leaves 0..100 and stays informative at 0 % and
  100 %, where the normal approximation collapses to a point.
- **Percentile bootstrap over tasks** for Pass@1 and Pass@k: the tasks are resampled with
  replacement (:data:`BOOTSTRAP_REPLICATES` times), each replicate's mean is taken, and the 2.5th and
  97.5th percentiles bound the interval. A task's k attempts stay together, so the interval
  accounts for attempts of one task being alike. The resampling is seeded from (seed, purpose) by
  SHA-256 (:mod:`gelab.seeding`): the same metrics give the same interval on every run. A bucket
  whose tasks all scored the same has a zero-width interval (the bootstrap cannot see variation the
  sample does not hold).

Steps of one task are not independent (a task's later steps share its target), so the step-level
Wilson intervals are somewhat too narrow; task-level numbers do not have that problem.
"""

from __future__ import annotations

import math
from typing import Sequence

from gelab.seeding import derived_rng

Z95 = 1.959963984540054  # standard normal quantile 0.975
BOOTSTRAP_REPLICATES = 2000
SUFFIX = "_ci95"  # "overall" -> "overall_ci95": [low, high]


def wilson(right: int, total: int) -> list[float] | None:
    """[low, high] in percent for ``right`` successes out of ``total`` trials (None when empty)."""
    if total <= 0:
        return None
    p = right / total
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * total)) / (1 + z2 / total)
    half = Z95 * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / (1 + z2 / total)
    low, high = max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))  # p inside despite rounding
    return [100.0 * low, 100.0 * high]


def bootstrap_mean(values: Sequence[float], seed: int, *purpose: object) -> list[float] | None:
    """[low, high] in percent of the mean of ``values`` (each in 0..1, one per task), resampling the
    values :data:`BOOTSTRAP_REPLICATES` times; seeded by ``(seed, *purpose)``. None when empty."""
    import numpy as np

    n = len(values)
    if n == 0:
        return None
    data = np.asarray(values, dtype=np.float64)
    if np.all(data == data[0]):
        return [100.0 * float(data[0])] * 2
    rng = np.random.Generator(np.random.PCG64(derived_rng(seed, "bootstrap", *purpose).getrandbits(64)))
    means = data[rng.integers(0, n, size=(BOOTSTRAP_REPLICATES, n))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return [max(0.0, 100.0 * float(low)), min(100.0, 100.0 * float(high))]
