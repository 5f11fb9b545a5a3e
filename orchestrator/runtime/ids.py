"""Ids of sessions and tasks: opaque and unguessable.

An ordered id starts with the time in milliseconds, so each new row goes to the
right edge of its table's primary-key B-tree instead of onto a random page
(docs/design/performance.md); 64 random bits keep it unguessable.
"""

from __future__ import annotations

import secrets
import time


def ordered_id(prefix: str) -> str:
    """``<prefix>_<12 hex digits: ms since the epoch><16 random hex digits>``."""
    return f"{prefix}_{time.time_ns() // 1_000_000:012x}{secrets.token_hex(8)}"


def random_id(prefix: str) -> str:
    """``<prefix>_<28 random hex digits>``."""
    return f"{prefix}_{secrets.token_hex(14)}"
