"""Which ORCH requirement each fuzz check proves (IDs from requirements/index.yaml).

Kept as data next to the checks so a failure message, the ``req`` markers of
the conformance tests and this table cannot disagree.
"""

from __future__ import annotations

NO_SERVER_ERROR = ("ORCH-0017",)
"""No 5xx because of what the request contains."""

INVALID_REFUSED = ("ORCH-0002",)
"""Malformed, unknown, missing, wrong-typed and out-of-range input is refused with 400."""

JSON_BODIES = ("ORCH-0001",)
"""Bodies are JSON except the stream, /metrics and 204 (content type conformance)."""

REQUEST_ID = ("ORCH-0004",)
"""Every response carries X-Request-Id."""

ENVELOPE = ("ORCH-0014", "ORCH-0015")
"""Every 4xx/5xx is the error envelope, and its request_id equals X-Request-Id."""

ERROR_KINDS = ("ORCH-0019",)
"""Only the error kinds of the table, with their status and retriable flag."""

BACKPRESSURE = ("ORCH-0021", "ORCH-0023")
"""429/503 carry integer Retry-After and X-Backoff-Ms, Retry-After = ceil(ms / 1000) >= 1."""

NO_STRAY_BACKOFF = ("ORCH-0024",)
"""Other statuses carry neither header (SHOULD)."""

STREAM = ("ORCH-0070", "ORCH-0071", "ORCH-0072", "ORCH-0073", "ORCH-0081")
"""The SSE format: content type, id/event/data per event, ids 1..n, retry once, one terminal."""

STREAM_DATA = ("ORCH-0076",)
"""Each event's data holds exactly the fields of its event."""

RUN_STREAM = ("ORCH-0350", "ORCH-0352")
"""A run's stream: the task stream's format, ``run.started`` first, one closing event."""

RUN_STREAM_DATA = ("ORCH-0351",)
"""Each run event's data holds exactly the fields the table of section 12.5 lists."""

METHODS = ("ORCH-0011", "ORCH-0012")
"""An unsupported method answers 405 METHOD_NOT_ALLOWED with an ``Allow`` header."""

ENDED_SESSION_GONE = ("ORCH-0033",)
"""After ``DELETE /v1/sessions/{id}``, the session answers 404 (the one delete that removes)."""

RESPONSE_SHAPES: dict[str, tuple[str, ...]] = {
    "createSession": ("ORCH-0026",),
    "getSession": ("ORCH-0027",),
    "deleteSession": ("ORCH-0033",),
    "createTask": ("ORCH-0042",),
    "getTask": ("ORCH-0051",),
    "cancelTask": ("ORCH-0066",),
    "streamTask": ("ORCH-0070",),
    "listPools": ("ORCH-0119", "ORCH-0120", "ORCH-0121"),
    "getPool": ("ORCH-0119", "ORCH-0120", "ORCH-0121"),
    "getRouting": ("ORCH-0124",),
    "setRouting": ("ORCH-0125",),
    "healthz": ("ORCH-0129",),
    "readyz": ("ORCH-0130",),
    "metrics": ("ORCH-0131",),
    "registerDefinition": ("ORCH-0312", "ORCH-0313"),
    "listDefinitions": ("ORCH-0314",),
    "getDefinition": ("ORCH-0314",),
    "createRun": ("ORCH-0317",),
    "listRuns": ("ORCH-0323",),
    "getRun": ("ORCH-0320",),
    "abortRun": ("ORCH-0324",),
    "streamRun": ("ORCH-0350",),
    "listApprovals": ("ORCH-0365",),
    "decideCheckpoint": ("ORCH-0366",),
    "getRunAudit": ("ORCH-0380",),
}
"""The requirement stating each operation's success response (schema and status conformance)."""

STATUS_CODES = ("ORCH-0019",)
"""Only declared statuses (the contract's reading of the error table)."""

COMMON: tuple[str, ...] = tuple(
    sorted(
        {
            *NO_SERVER_ERROR,
            *INVALID_REFUSED,
            *JSON_BODIES,
            *REQUEST_ID,
            *ENVELOPE,
            *ERROR_KINDS,
            *BACKPRESSURE,
            *NO_STRAY_BACKOFF,
        }
    )
)
"""What every fuzzed operation verifies."""


def ids(*groups: tuple[str, ...]) -> str:
    """``ORCH-0014/ORCH-0015`` for a message prefix."""
    return "/".join(sorted({i for group in groups for i in group}))
