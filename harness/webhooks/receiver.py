"""A real webhook receiver on an ephemeral port: verifies, records, misbehaves on demand.

The standard library's threading HTTP server in a thread of the test process,
so a target (in-process or remote, given a reachable bind address) sends it
real HTTP. Every request is recorded with its verdict:

- ``accepted``: verified (:func:`harness.webhooks.verify`) and new, answered 200;
- ``replay``: verified, with the id and body of a delivery already accepted,
  answered 200 and not processed again (ORCH-0419);
- ``failed``: verified, then answered as :meth:`Receiver.fail_next` or
  :meth:`Receiver.delay_next` asked, and not counted as seen, so its retry is
  accepted;
- ``rejected``: refused (401) with the reason, which starts with the ORCH ID it breaks.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from harness.webhooks.verify import (
    DEFAULT_TOLERANCE_S,
    ID_HEADER,
    WebhookVerificationError,
    verify,
)

Verdict = Literal["accepted", "replay", "failed", "rejected"]
MAX_BODY_BYTES = 4 * 1024 * 1024
DEFAULT_WAIT_S = 15.0


LISTEN_BACKLOG = 128
"""Connections the receiver's socket queues before accepting them."""


@dataclass(frozen=True)
class Received:
    """One request the receiver got, and what it made of it."""

    verdict: Verdict
    reason: str | None
    """Why it was rejected (starting with an ORCH ID) or failed on purpose; else ``None``."""
    status: int
    """What the receiver answers; ``0`` once it found the client hung up before the answer."""
    headers: dict[str, str]
    body: bytes
    payload: dict[str, Any] | None
    """The decoded body when it is a JSON object, verified or not."""
    at: float
    """``time.monotonic()`` when it arrived."""

    @property
    def delivery_id(self) -> str | None:
        return None if self.payload is None else self.payload.get("delivery_id")

    @property
    def event(self) -> str | None:
        return None if self.payload is None else self.payload.get("event")

    @property
    def run_id(self) -> str | None:
        return None if self.payload is None else self.payload.get("run_id")

    @property
    def event_id(self) -> int | None:
        return None if self.payload is None else self.payload.get("event_id")

    @property
    def data(self) -> Any:
        return None if self.payload is None else self.payload.get("data")

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    def summary(self) -> str:
        what = f"{self.event} #{self.event_id} of {self.run_id} ({self.delivery_id})"
        return f"{self.verdict} {what}" + (f": {self.reason}" if self.reason else "")


@dataclass
class _Fault:
    status: int
    delay_s: float


class Receiver:
    """An HTTP webhook receiver on ``bind``:ephemeral port; a context manager.

    ``url`` is what a subscription names (``host`` in it: the bind address
    unless given, for a remote target that reaches this machine by another
    name). ``secret`` is the subscription's secret (random unless given).
    """

    def __init__(
        self,
        secret: str | None = None,
        *,
        bind: str = "127.0.0.1",
        host: str | None = None,
        tolerance_s: float = DEFAULT_TOLERANCE_S,
    ) -> None:
        self.secret = secret if secret is not None else f"whsec_{secrets.token_hex(16)}"
        self.tolerance_s = tolerance_s
        self._bind = bind
        self._host = host
        self._lock = threading.Condition()
        self._records: list[Received] = []
        self._accepted: dict[str, bytes] = {}
        self._faults: deque[_Fault] = deque()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Receiver:
        self._server = ThreadingHTTPServer(
            (self._bind, 0), self._handler(), bind_and_activate=False
        )
        # A sender opens up to 32 connections at once (ORCH-0415 lanes in parallel); the
        # default backlog of 5 would reset some of them before they are accepted.
        self._server.request_queue_size = LISTEN_BACKLOG
        self._server.server_bind()
        self._server.server_activate()
        # Each request is answered on a connection closed after it, so stop() can wait for
        # every request thread: none outlives the receiver (the leak guard checks).
        self._server.daemon_threads = False
        self._server.block_on_close = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="orchq-webhook-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the receiver is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self._host or self._bind
        if host in ("0.0.0.0", "::"):
            host = socket.gethostname()
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/hooks"

    # ------------------------------------------------------------ misbehaving on demand

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        """Answer the next ``count`` verified deliveries with ``status`` (not seen: retried).

        A 3xx answer carries ``Location`` (the receiver itself), so a sender that
        follows redirects gets its delivery accepted within the same attempt.
        """
        with self._lock:
            self._faults.extend(_Fault(status, 0.0) for _ in range(count))

    def delay_next(self, count: int = 1, seconds: float = 6.0) -> None:
        """Hold the next ``count`` verified deliveries ``seconds``, then answer 503."""
        with self._lock:
            self._faults.extend(_Fault(503, seconds) for _ in range(count))

    def clear(self) -> None:
        """Forget every record, seen id and pending fault."""
        with self._lock:
            self._records.clear()
            self._accepted.clear()
            self._faults.clear()

    # ------------------------------------------------------------ what arrived

    def records(self) -> list[Received]:
        with self._lock:
            return list(self._records)

    def accepted(self, run_id: str | None = None) -> list[Received]:
        """Deliveries processed (each delivery id once), in arrival order."""
        return [
            r
            for r in self.records()
            if r.verdict == "accepted" and (run_id is None or r.run_id == run_id)
        ]

    def attempts(self, delivery_id: str) -> list[Received]:
        """Every request carrying ``delivery_id``, whatever its verdict."""
        return [r for r in self.records() if r.delivery_id == delivery_id]

    def wait_for(
        self,
        event: str,
        run_id: str | None = None,
        timeout: float = DEFAULT_WAIT_S,
        *,
        requirement: str = "ORCH-0406",
    ) -> Received:
        """The accepted delivery of ``event`` (of ``run_id``), waiting up to ``timeout`` s.

        Fails naming the rule broken: that of a rejected delivery of the event
        when one arrived, else ``requirement`` (by default ORCH-0406: the event
        was never delivered).
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for record in self._records:
                    if (
                        record.verdict == "accepted"
                        and record.event == event
                        and (run_id is None or record.run_id == run_id)
                    ):
                        return record
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._lock.wait(remaining)
            matching = [
                r
                for r in self._records
                if r.event == event and (run_id is None or r.run_id == run_id)
            ]
            everything = [r.summary() for r in self._records[-10:]]
        rejected = [r for r in matching if r.verdict == "rejected"]
        if rejected:
            raise AssertionError(
                f"{rejected[0].reason} (delivery of {event} of run {run_id}; "
                f"{len(rejected)} rejected)"
            )
        raise AssertionError(
            f"{requirement}: no verified delivery of {event} for run {run_id} arrived within "
            f"{timeout:g} s; the receiver got: {everything or 'nothing'}"
        )

    def wait_until(self, predicate: Callable[[list[Received]], bool], timeout: float) -> bool:
        """Whether ``predicate(records)`` became true within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(list(self._records)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
            return True

    def assert_all_verified(self) -> None:
        """Fail, naming the rule broken, unless every request verified (ORCH-0410, ORCH-0417...)."""
        rejected = [r for r in self.records() if r.verdict == "rejected"]
        if rejected:
            details = "; ".join(r.summary() for r in rejected[:5])
            raise AssertionError(f"{rejected[0].reason} ({len(rejected)} rejected: {details})")

    # ------------------------------------------------------------ the HTTP side

    def _judge(
        self, headers: dict[str, str], body: bytes
    ) -> tuple[Verdict, str | None, int, float]:
        """The verdict on one request, its reason, the status to answer and the delay first."""
        try:
            payload = verify(self.secret, headers, body, tolerance_s=self.tolerance_s)
        except WebhookVerificationError as exc:
            return "rejected", str(exc), 401, 0.0
        delivery_id = str(payload["delivery_id"])
        with self._lock:
            seen = self._accepted.get(delivery_id)
            if seen is not None:
                if seen == body:
                    return "replay", "ORCH-0419: already accepted; not processed again", 200, 0.0
                return (
                    "rejected",
                    f"ORCH-0411: delivery id {delivery_id!r} was already used by another delivery",
                    409,
                    0.0,
                )
            if self._faults:
                fault = self._faults.popleft()
                reason = f"answered {fault.status} on purpose"
                if fault.delay_s:
                    reason += f" after {fault.delay_s:g} s"
                return "failed", reason, fault.status, fault.delay_s
            self._accepted[delivery_id] = body
        return "accepted", None, 200, 0.0

    def _record(self, record: Received) -> int:
        with self._lock:
            self._records.append(record)
            self._lock.notify_all()
            return len(self._records) - 1

    def _unanswered(self, index: int) -> None:
        """The sender hung up before the answer of the request recorded at ``index``."""
        with self._lock:
            self._records[index] = dataclasses.replace(self._records[index], status=0)
            self._lock.notify_all()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                arrived = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, MAX_BODY_BYTES))
                headers = {key: value for key, value in self.headers.items()}
                verdict, reason, status, delay_s = receiver._judge(headers, body)
                # Recorded on arrival, so records are in the order requests arrived: a
                # sender's next request of a lane can only arrive after this one's answer.
                index = receiver._record(
                    Received(verdict, reason, status, headers, body, _decoded(body), arrived)
                )
                if delay_s:
                    time.sleep(delay_s)
                try:
                    payload = b'{"ok": true}' if 200 <= status < 300 else b'{"ok": false}'
                    self.send_response(status)
                    if 300 <= status < 400:  # a redirect to itself: following it would be accepted
                        self.send_header("Location", receiver.url)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.close_connection = True
                    self.wfile.write(payload)
                except OSError:  # the sender gave up first (its timeout)
                    receiver._unanswered(index)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Handler


def _decoded(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


__all__ = ["ID_HEADER", "Received", "Receiver"]
