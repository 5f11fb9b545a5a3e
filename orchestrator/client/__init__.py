"""Typed HTTP client for OrchQueue v1: :class:`OrchClient` (sync) and :class:`AsyncOrchClient`.

Both clients speak exactly the contract of specs/orchestrator-spec.md and decode
every answer into the wire models of :mod:`orchestrator.schemas`, so a server
that drifts from the contract fails loudly here (:class:`OrchProtocolError`) instead of somewhere
downstream. Requests are *not* validated client-side: the server is the only
authority on what is valid, and the harness needs to send it invalid input.

Request building, response decoding and the stream's resume bookkeeping live in
:mod:`~orchestrator.client.calls`, shared by both clients (:mod:`.sync`,
:mod:`.aio`), which differ only in how they do I/O; the exceptions in
:mod:`.errors`.

Exceptions, all subclasses of :class:`OrchClientError`:

- :class:`OrchError`: the server answered with a non-2xx status.
- :class:`OrchProtocolError` (an :class:`OrchError` of kind ``PROTOCOL_ERROR``):
  the answer did not follow the contract (not an error envelope, not JSON, not
  the schema, a gap in a stream); :class:`StreamGapError` is one of these.
- :class:`OrchUnreachable`: no answer at all (connection refused, timeout, ...).
- :class:`StreamInterruptedError`: a stream broke and could not be resumed.
"""

from __future__ import annotations

from orchestrator.client.aio import AsyncOrchClient
from orchestrator.client.calls import DEFAULT_TIMEOUT, EventData, StreamEvent, StreamResult
from orchestrator.client.errors import (
    OrchClientError,
    OrchError,
    OrchProtocolError,
    OrchUnreachable,
    StreamGapError,
    StreamInterruptedError,
)
from orchestrator.client.sync import OrchClient

__all__ = [
    "DEFAULT_TIMEOUT",
    "AsyncOrchClient",
    "EventData",
    "OrchClient",
    "OrchClientError",
    "OrchError",
    "OrchProtocolError",
    "OrchUnreachable",
    "StreamEvent",
    "StreamGapError",
    "StreamInterruptedError",
    "StreamResult",
]
