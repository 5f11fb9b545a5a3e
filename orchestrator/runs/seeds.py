"""A step's seed, derived from its run's seed (ORCH-0310), and the wait before a retry (ORCH-0332).

The derivation is spelled out in the spec so that any implementation gives a
step the same seed, and so the same tokens for a ``strict`` step.
"""

from __future__ import annotations

import hashlib
import random

SEED_MASK = 2**63 - 1


def step_seed(run_seed: int, step_id: str) -> int:
    """The first 8 bytes of SHA-256 of ``"<run seed in decimal>/<step id>"`` (UTF-8), read
    as a big-endian unsigned integer, with the highest bit cleared."""
    digest = hashlib.sha256(f"{run_seed}/{step_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & SEED_MASK


def backoff_ms(
    failed_attempt: int, base_ms: int, cap_ms: int, jitter_ms: int, rng: random.Random
) -> int:
    """The wait after attempt ``failed_attempt`` (from 1) failed:
    ``min(cap, base * 2 ** (attempt - 1))`` plus a uniform jitter of 0 to ``jitter_ms``."""
    exponent = min(failed_attempt - 1, 32)
    wait: int = min(cap_ms, base_ms * 2**exponent)
    return wait + (rng.randint(0, jitter_ms) if jitter_ms else 0)
