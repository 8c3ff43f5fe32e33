"""Reproducible randomness: every random stream is derived from (seed, purpose) by SHA-256.

Never Python's ``hash()`` (salted per process) or set order: the same seed gives the same stream on
every machine and under every ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import hashlib
import random


def derived_rng(seed: int, *purpose: object) -> random.Random:
    """An independent, reproducible random stream for ``purpose`` under ``seed``."""
    key = "_".join(str(p) for p in (seed, *purpose)).encode()
    return random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))
