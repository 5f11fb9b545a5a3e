"""The exceptions of the OrchQueue v1 client, all subclasses of :class:`OrchClientError`."""

from __future__ import annotations

from typing import Any

PROTOCOL_ERROR = "PROTOCOL_ERROR"
_STREAM_ROUTE = "/v1/tasks/{id}/stream"
_STREAM_ENDPOINT = f"GET {_STREAM_ROUTE}"


class OrchClientError(Exception):
    """Base of every exception this module raises, so a CLI can catch them in one place."""


class OrchError(OrchClientError):
    """The orchestrator answered with a non-2xx status.

    ``kind`` is the envelope's error kind (see :class:`orchestrator.errors.ErrorKind`).
    ``retry_after`` (seconds) and ``backoff_ms`` come from the ``Retry-After`` and
    ``X-Backoff-Ms`` headers every 429/503 carries; ``backoff_ms`` is the jittered
    value a polite client waits.
    """

    def __init__(
        self,
        status: int,
        kind: str,
        message: str,
        *,
        retriable: bool = False,
        request_id: str | None = None,
        retry_after: int | None = None,
        backoff_ms: int | None = None,
        body: dict[str, Any] | str = "",
    ) -> None:
        super().__init__(f"{kind} (HTTP {status}): {message}")
        self.status = status
        self.kind = kind
        self.message = message
        self.retriable = retriable
        self.request_id = request_id
        self.retry_after = retry_after
        self.backoff_ms = backoff_ms
        self.body = body


class OrchProtocolError(OrchError):
    """The answer broke the contract: not an error envelope, not JSON, or not the schema.

    ``endpoint`` names the operation (``"GET /v1/tasks/{id}"``); ``status`` is the
    HTTP status the server did send.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        endpoint: str,
        retriable: bool = False,
        request_id: str | None = None,
        retry_after: int | None = None,
        backoff_ms: int | None = None,
        body: dict[str, Any] | str = "",
    ) -> None:
        super().__init__(
            status,
            PROTOCOL_ERROR,
            message,
            retriable=retriable,
            request_id=request_id,
            retry_after=retry_after,
            backoff_ms=backoff_ms,
            body=body,
        )
        self.endpoint = endpoint


class StreamGapError(OrchProtocolError):
    """A stream skipped event ids: the contract promises ``1, 2, 3 ...`` with no gap."""

    def __init__(self, task_id: str, expected: int, got: int) -> None:
        super().__init__(
            200,
            f"stream of task {task_id!r} jumped to event id {got}, expected {expected}",
            endpoint=_STREAM_ENDPOINT,
        )
        self.task_id = task_id
        self.expected = expected
        self.got = got


class OrchUnreachable(OrchClientError):
    """No HTTP answer at all: connection refused, DNS failure, timeout, connection reset."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach orchestrator at {url}: {reason}")
        self.url = url
        self.reason = reason


class StreamInterruptedError(OrchClientError):
    """A stream ended without ``end``/``error`` and could not be resumed.

    ``last_event_id`` is the last id yielded: pass it as ``last_event_id=`` to
    :meth:`OrchClient.stream` to pick up where this one stopped.
    """

    def __init__(
        self, task_id: str, last_event_id: int | None, reconnects: int, reason: str
    ) -> None:
        after = f"after event {last_event_id}" if last_event_id is not None else "before any event"
        super().__init__(
            f"stream of task {task_id!r} interrupted {after} "
            f"({reconnects} reconnect(s) tried): {reason}"
        )
        self.task_id = task_id
        self.last_event_id = last_event_id
        self.reconnects = reconnects
        self.reason = reason
