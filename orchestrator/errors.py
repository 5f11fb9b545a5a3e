"""The exception that carries an error kind to the API edge, and the task error object.

Every 4xx/5xx the API sends is built from an :class:`ApiError`, so the envelope,
the status code and the backpressure headers can only come from the error table
of :mod:`orchestrator.vocabulary` (ORCH-0019, ORCH-0021..0024).
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass, field
from typing import Any

from orchestrator.vocabulary import (
    BACKOFF_STATUSES,
    ERROR_KINDS,
    MAX_BACKOFF_JITTER_MS,
    SUGGESTED_WAIT_MS,
    ErrorKind,
)

DEFAULT_WAIT_MS = 1000
"""The suggested wait of a 429 or 503 whose kind has no fixed one and that names none."""


def backoff_headers(base_ms: int, rng: random.Random | None = None) -> dict[str, str]:
    """``Retry-After`` and ``X-Backoff-Ms`` for a 429/503, consistent with each other.

    The jittered millisecond value is what a careful client should wait; the
    integer-seconds header is its ceiling, so a client honouring either one
    never comes back before the other would allow.
    """
    jitter = (rng or random).randint(0, MAX_BACKOFF_JITTER_MS)
    backoff_ms = max(1, base_ms) + jitter
    retry_after = max(1, math.ceil(backoff_ms / 1000))
    return {"Retry-After": str(retry_after), "X-Backoff-Ms": str(backoff_ms)}


@dataclass
class ApiError(Exception):
    """An error answered to the client in the OrchQueue error envelope."""

    kind: ErrorKind
    message: str
    backoff_ms: int | None = None
    """The suggested wait of a 429 or 503; by default the kind's fixed one."""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def status(self) -> int:
        return ERROR_KINDS[self.kind].status

    @property
    def retriable(self) -> bool:
        return ERROR_KINDS[self.kind].retriable

    def headers(self) -> dict[str, str]:
        if self.status not in BACKOFF_STATUSES:
            return {}
        wait_ms = self.backoff_ms
        if wait_ms is None:
            wait_ms = SUGGESTED_WAIT_MS.get(self.kind, DEFAULT_WAIT_MS)
        return backoff_headers(wait_ms)

    def envelope(self, request_id: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": self.kind.value,
            "message": self.message,
            "retriable": self.retriable,
            "request_id": request_id,
        }
        body.update(self.details)
        return {"error": body}


def new_request_id() -> str:
    """An id for a request that brought none (``secrets.token_hex(8)``, two calls shorter)."""
    return f"req_{os.urandom(8).hex()}"


def task_error(kind: ErrorKind, message: str) -> dict[str, Any]:
    """The ``error`` object stored on a task and sent in a stream ``error`` event."""
    return {"kind": kind.value, "message": message, "retriable": ERROR_KINDS[kind].retriable}
