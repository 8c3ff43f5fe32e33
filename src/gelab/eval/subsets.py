"""Deterministic task subsets, stratified by path length (for the CPU profile's quick evaluations)."""

from __future__ import annotations

from typing import Callable, Sequence, TypeVar

from gelab.errors import InputError
from gelab.seeding import derived_rng

T = TypeVar("T")


def stratified(items: Sequence[T], limit: int | None, length: Callable[[T], int], seed: int) -> list[T]:
    """``limit`` items spread over path lengths in proportion (at least one per length), in input order.

    ``None`` or a limit at least ``len(items)`` keeps everything. The choice depends only on the
    items, the limit and the seed.
    """
    if limit is None or limit >= len(items):
        return list(items)
    if limit < 1:
        raise InputError(f"limit must be at least 1, got {limit}")
    groups: dict[int, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(length(item), []).append(i)
    if limit < len(groups):
        raise InputError(f"limit {limit} is below the number of path lengths ({len(groups)})")
    total = len(items)
    quota = {n: max(1, limit * len(ix) // total) for n, ix in groups.items()}
    # hand out what rounding left over to the largest remainders (ties: shorter path first)
    rest = sorted(groups, key=lambda n: (-(limit * len(groups[n]) % total), n))
    while sum(quota.values()) < limit:
        for n in rest:
            if sum(quota.values()) < limit and quota[n] < len(groups[n]):
                quota[n] += 1
    while sum(quota.values()) > limit:
        n = max(quota, key=lambda m: (quota[m], -m))
        quota[n] -= 1
    chosen: list[int] = []
    for n, ix in sorted(groups.items()):
        chosen.extend(derived_rng(seed, "subset", n).sample(ix, quota[n]))
    return [items[i] for i in sorted(chosen)]
