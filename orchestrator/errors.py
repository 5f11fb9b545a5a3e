"""Error kinds of OrchQueue v1 and the exception that carries them to the API edge.

Every 4xx/5xx the API sends is built from an :class:`ApiError`, so the envelope,
the status code and the backpressure headers can only come from this table.
"""

from __future__ import annotations

import enum
import math
import os
import random
from dataclasses import dataclass, field
from typing import Any


class ErrorKind(enum.StrEnum):
    INVALID_PARAMS = "INVALID_PARAMS"
    UNAUTHORIZED = "UNAUTHORIZED"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    CONFLICT = "CONFLICT"
    SESSION_EXPIRED = "SESSION_EXPIRED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    ADMISSION_REJECT = "ADMISSION_REJECT"
    QUEUE_FULL_DROP_LRU = "QUEUE_FULL_DROP_LRU"
    INTERNAL = "INTERNAL"
    WORKER_RESET = "WORKER_RESET"
    POOL_UNREADY = "POOL_UNREADY"
    POOL_UNAVAILABLE = "POOL_UNAVAILABLE"
    REPLICA_EXHAUSTED = "REPLICA_EXHAUSTED"
    DECODE_TIMEOUT = "DECODE_TIMEOUT"
    CANCELLED = "CANCELLED"
    HEADERS_TOO_LARGE = "HEADERS_TOO_LARGE"
    STORAGE_UNAVAILABLE = "STORAGE_UNAVAILABLE"
    SERVER_BUSY = "SERVER_BUSY"


@dataclass(frozen=True)
class KindInfo:
    status: int
    retriable: bool


KIND_INFO: dict[ErrorKind, KindInfo] = {
    ErrorKind.INVALID_PARAMS: KindInfo(400, False),
    ErrorKind.UNAUTHORIZED: KindInfo(401, False),
    ErrorKind.NOT_FOUND: KindInfo(404, False),
    ErrorKind.METHOD_NOT_ALLOWED: KindInfo(405, False),
    ErrorKind.CONFLICT: KindInfo(409, False),
    ErrorKind.SESSION_EXPIRED: KindInfo(410, False),
    ErrorKind.PAYLOAD_TOO_LARGE: KindInfo(413, False),
    ErrorKind.UNSUPPORTED_MEDIA_TYPE: KindInfo(415, False),
    ErrorKind.ADMISSION_REJECT: KindInfo(429, True),
    ErrorKind.QUEUE_FULL_DROP_LRU: KindInfo(429, True),
    ErrorKind.INTERNAL: KindInfo(500, True),
    ErrorKind.WORKER_RESET: KindInfo(502, True),
    ErrorKind.POOL_UNREADY: KindInfo(503, True),
    ErrorKind.POOL_UNAVAILABLE: KindInfo(503, True),
    ErrorKind.REPLICA_EXHAUSTED: KindInfo(503, True),
    ErrorKind.DECODE_TIMEOUT: KindInfo(504, True),
    ErrorKind.CANCELLED: KindInfo(409, False),
    ErrorKind.HEADERS_TOO_LARGE: KindInfo(431, False),
    ErrorKind.STORAGE_UNAVAILABLE: KindInfo(503, True),
    ErrorKind.SERVER_BUSY: KindInfo(503, True),
}

BACKPRESSURE_STATUSES = frozenset({429, 503})
MAX_JITTER_MS = 250


def backoff_headers(base_ms: int, rng: random.Random | None = None) -> dict[str, str]:
    """``Retry-After`` and ``X-Backoff-Ms`` for a 429/503, consistent with each other.

    The jittered millisecond value is what a careful client should wait; the
    integer-seconds header is its ceiling, so a client honouring either one
    never comes back before the other would allow.
    """
    jitter = (rng or random).randint(0, MAX_JITTER_MS)
    backoff_ms = max(1, base_ms) + jitter
    retry_after = max(1, math.ceil(backoff_ms / 1000))
    return {"Retry-After": str(retry_after), "X-Backoff-Ms": str(backoff_ms)}


@dataclass
class ApiError(Exception):
    """An error answered to the client in the OrchQueue error envelope."""

    kind: ErrorKind
    message: str
    backoff_ms: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def status(self) -> int:
        return KIND_INFO[self.kind].status

    @property
    def retriable(self) -> bool:
        return KIND_INFO[self.kind].retriable

    def headers(self) -> dict[str, str]:
        if self.status in BACKPRESSURE_STATUSES:
            return backoff_headers(self.backoff_ms if self.backoff_ms is not None else 1000)
        return {}

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
    return {"kind": kind.value, "message": message, "retriable": KIND_INFO[kind].retriable}
