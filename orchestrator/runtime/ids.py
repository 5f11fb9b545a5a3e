"""Ids of sessions and tasks: opaque, unguessable, and increasing with time.

The millisecond prefix puts each new row at the right edge of its table's
primary-key B-tree instead of on a random page (docs/design/performance.md);
64 random bits keep ids unguessable.
"""

from __future__ import annotations

import os
import time


def new_id(prefix: str) -> str:
    """``<prefix>_<12 hex digits of ms since the epoch><16 random hex digits>``."""
    return f"{prefix}_{time.time_ns() // 1_000_000:012x}{os.urandom(8).hex()}"
