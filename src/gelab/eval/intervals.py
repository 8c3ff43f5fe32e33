"""95 % confidence intervals of the metrics, in percent, stored beside each value as ``KEY_ci95``,
with the number of trials they are over as ``KEY_n``.

- **Wilson** score interval for a proportion of independent trials (static step accuracy and task
  success; captioning and grounding). It never leaves 0..100 and stays informative at 0 % and
  100 %, where the normal approximation collapses to a point. :func:`wilson` is the package's one
  Wilson formula (the viewer uses it too); its bounds are clamped so that p lies inside them.
- **Percentile bootstrap over tasks** for Pass@1 and Pass@k: the tasks are resampled with
  replacement (:data:`BOOTSTRAP_REPLICATES` times), each replicate's mean is taken, and the 2.5th and
  97.5th percentiles bound the interval. A task's k attempts stay together, so the interval
  accounts for attempts of one task being alike. The resampling is seeded from (seed, purpose) by
  SHA-256 (:mod:`gelab.seeding`): the same metrics give the same interval on every run.
- **Never narrower than the task count allows**: a bootstrap sees only the variation its sample
  holds, so a bucket whose tasks all scored the same would get a zero-width interval, and a small
  bucket one that is too narrow. :func:`bootstrap_mean` therefore returns the Wilson interval over
  the tasks (trials = tasks, successes = the sum of the per-task values) whenever the bootstrap
  interval is narrower than it. That Wilson interval is what n all-or-nothing tasks with the same
  mean would give, the widest spread values in 0..1 can have; a Pass@1 value is a fraction of
  attempts, so the success count may be fractional, which Wilson's formula (a function of p = mean
  and n) takes as it is. One task at 0 reads [0, 79.3], not [0, 0].

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
COUNT = "_n"  # "overall" -> "overall_n": the steps or tasks the number and its interval are over


def wilson(right: float, total: int) -> list[float] | None:
    """[low, high] in percent for ``right`` successes out of ``total`` trials (None when empty).
    ``right`` may be fractional (a sum of per-task rates): the formula only needs p = right / total."""
    if total <= 0:
        return None
    p = right / total
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * total)) / (1 + z2 / total)
    half = Z95 * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / (1 + z2 / total)
    low, high = max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))  # p inside despite rounding
    return [100.0 * low, 100.0 * high]


def bootstrap_mean(values: Sequence[float], seed: int, *purpose: object) -> list[float] | None:
    """[low, high] in percent of the mean of ``values`` (each in 0..1, one per task): the percentile
    bootstrap (:func:`bootstrap_percentiles`), or the Wilson interval over the tasks where that is
    wider (see the module docstring). None when empty."""
    if not values:
        return None
    boot = bootstrap_percentiles(values, seed, *purpose)
    floor = wilson(math.fsum(values), len(values))
    return floor if floor[1] - floor[0] > boot[1] - boot[0] else boot  # type: ignore[index]


def bootstrap_percentiles(values: Sequence[float], seed: int, *purpose: object) -> list[float]:
    """The 2.5th and 97.5th percentiles, in percent, of the means of :data:`BOOTSTRAP_REPLICATES`
    resamples of ``values`` (not empty), seeded by ``(seed, *purpose)``."""
    import numpy as np

    n = len(values)
    data = np.asarray(values, dtype=np.float64)
    rng = np.random.Generator(np.random.PCG64(derived_rng(seed, "bootstrap", *purpose).getrandbits(64)))
    means = data[rng.integers(0, n, size=(BOOTSTRAP_REPLICATES, n))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return [max(0.0, 100.0 * float(low)), min(100.0, 100.0 * float(high))]
