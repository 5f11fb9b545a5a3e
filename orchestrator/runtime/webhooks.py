"""Webhook subscriptions and the delivery loop (spec section 12.9).

Invariants:

- **Outbox.** A run event's deliveries are inserted by a hook of
  :meth:`RuntimeContext.write_run_events`, inside the transaction that writes
  the event (ORCH-0406): committed together or not at all, so a delivery is
  never lost between the event's commit and its sending, nor after a crash.
- **One lane, one sender.** Deliveries of one subscription for one run form a
  *lane*; one worker sends a lane's deliveries strictly one at a time in
  event-id order, the next only once the previous is ``delivered`` or
  ``failed`` (ORCH-0415). Lanes run concurrently, at most
  :data:`MAX_CONCURRENT_ATTEMPTS` attempts at once.
- **Derived from the store.** What a worker sends next and when is read from
  the store (``state``, ``attempts``, ``next_ms``), so a restart resumes every
  pending delivery under its id with its attempts counted (ORCH-0416). An
  attempt is recorded after its answer: a stop in between sends it again
  (at least once).
- **Signed per attempt.** Each attempt gets the time it is sent and the
  signature of that time and the body (ORCH-0410, ORCH-0412).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time

import httpx

from orchestrator.errors import ApiError
from orchestrator.runtime.clock import Clock, rfc3339
from orchestrator.runtime.context import RuntimeContext
from orchestrator.runtime.run_views import decode_cursor, encode_cursor
from orchestrator.schemas import Delivery, DeliveryList, Webhook, WebhookCreate, WebhookList
from orchestrator.store import StoreError
from orchestrator.store.webhooks import DeliveryRow, Outgoing, WebhookRow, WebhookStore
from orchestrator.vocabulary import DeliveryOutcome, DeliveryState, ErrorKind
from orchestrator.webhooks import delivery_body, selects, signed_headers

log = logging.getLogger("orchestrator.webhooks")

MAX_CONCURRENT_ATTEMPTS = 32
"""Attempts in flight at once, over every lane."""
STORE_RETRY_S = 1.0
"""After a write of the delivery log failed, a lane tries again this much later."""
MAX_LIST_LIMIT = 100
MAX_ERROR_CHARS = 300

Lane = tuple[str, str]
"""``(webhook_id, run_id)``."""


def retry_delay_ms(attempts: int, base_ms: int, cap_ms: int) -> int:
    """The wait after attempt ``attempts`` failed: ``min(cap, base * 2**(attempts - 1))``."""
    return int(min(cap_ms, base_ms * 2 ** (attempts - 1)))


def config_webhook_id(url: str, events: list[str], secret: str) -> str:
    """A configured subscription's id: the same for the same subscription across restarts."""
    digest = hashlib.sha256(json.dumps([url, events, secret]).encode()).hexdigest()
    return f"wh_cfg_{digest[:24]}"


class Webhooks:
    def __init__(self, context: RuntimeContext) -> None:
        self._context = context
        self._rows: WebhookStore | None = None
        self._subscriptions: list[WebhookRow] = []
        """Every subscription, read once at start and kept current by the API."""
        self._lanes: dict[Lane, asyncio.Task[None]] = {}
        self._client: httpx.AsyncClient | None = None
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_ATTEMPTS)
        self._wall = Clock()
        """Attempts are scheduled and stamped in real time, whatever the context's clock."""
        self._wake_scheduled = False
        context.run_events_writing.append(self._outbox)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Sync the configured subscriptions, then send every pending delivery (ORCH-0416)."""
        context = self._context
        rows = self._rows = WebhookStore(context.store)
        now = context.clock.now_ms()
        rows.sync_config(
            WebhookRow(
                config_webhook_id(w.url, w.events, w.secret),
                w.url,
                w.events,
                w.secret,
                "config",
                now,
            )
            for w in context.config.webhooks
        )
        self._subscriptions = rows.webhooks()
        self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        context.metrics.webhook_pending.set_function(self._pending_count)
        self._wake()

    async def stop(self) -> None:
        for task in list(self._lanes.values()):
            task.cancel()
        for task in list(self._lanes.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._lanes.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._rows = None

    def _pending_count(self) -> float:
        if self._rows is None:
            return 0.0
        try:
            return float(self._rows.pending_count())
        except Exception:  # a scrape never fails because the store does
            return float("nan")

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("orchestrator is not started")
        return self._client

    @property
    def rows(self) -> WebhookStore:
        if self._rows is None:
            raise RuntimeError("orchestrator is not started")
        return self._rows

    # ------------------------------------------------------------ the API

    def create(self, body: WebhookCreate) -> Webhook:
        row = WebhookRow(
            self._context.new_id("wh"),
            body.url,
            list(body.events),
            body.secret,
            "api",
            self._context.clock.now_ms(),
        )
        self.rows.insert_webhook(row)
        self._subscriptions.append(row)
        return webhook_view(row)

    def get(self, webhook_id: str) -> Webhook:
        return webhook_view(self._known(webhook_id))

    def listing(self) -> WebhookList:
        return WebhookList(webhooks=[webhook_view(row) for row in self.rows.webhooks()])

    def delete(self, webhook_id: str) -> None:
        row = self._known(webhook_id)
        if row.source == "config":
            raise ApiError(
                ErrorKind.CONFLICT,
                f"webhook {webhook_id!r} is defined by the configuration; remove it there",
            )
        self.rows.delete_webhook(webhook_id)
        self._subscriptions = [s for s in self._subscriptions if s.webhook_id != webhook_id]
        for (owner, run_id), task in list(self._lanes.items()):
            if owner == webhook_id:
                task.cancel()
                self._lanes.pop((owner, run_id), None)

    def deliveries(
        self,
        webhook_id: str,
        *,
        state: DeliveryState | None,
        run_id: str | None,
        cursor: str | None,
        limit: int,
    ) -> DeliveryList:
        self._known(webhook_id)
        after = decode_cursor(cursor)[0] if cursor is not None else None
        rows = self.rows.deliveries(
            webhook_id, state=state, run_id=run_id, after_seq=after, limit=limit + 1
        )
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].seq, rows[-1].delivery_id) if more else None
        return DeliveryList(
            deliveries=[delivery_view(row) for row in rows], next_cursor=next_cursor
        )

    def _known(self, webhook_id: str) -> WebhookRow:
        row = self.rows.get_webhook(webhook_id)
        if row is None:
            raise ApiError(ErrorKind.NOT_FOUND, f"webhook {webhook_id!r} not found")
        return row

    # ------------------------------------------------------------ the outbox

    def _outbox(self, rows: list[tuple[str, int, str, str]]) -> None:
        """Insert the deliveries of run events, inside their transaction (ORCH-0406)."""
        if self._rows is None or not self._subscriptions:
            return
        now = self._wall.now_ms()
        new_id = self._context.new_id
        deliveries = [
            (new_id("dlv"), subscription.webhook_id, run_id, seq, now)
            for run_id, seq, event, _ in rows
            for subscription in self._subscriptions
            if selects(subscription.events, event)
        ]
        if deliveries:
            self._rows.insert_deliveries(deliveries)
            if not self._wake_scheduled:
                self._wake_scheduled = True
                # After the commit that holds the deliveries: this runs on a later turn.
                asyncio.get_running_loop().call_soon(self._wake)

    def _wake(self) -> None:
        """Give every lane with a pending delivery its worker."""
        self._wake_scheduled = False
        if self._rows is None:
            return
        try:
            lanes = self._rows.pending_lanes()
        except StoreError as exc:
            log.warning("webhook deliveries cannot be read: %s", exc)
            asyncio.get_running_loop().call_later(STORE_RETRY_S, self._wake)
            return
        for lane in lanes:
            if lane not in self._lanes:
                self._lanes[lane] = asyncio.get_running_loop().create_task(self._work(lane))

    # ------------------------------------------------------------ sending

    async def _work(self, lane: Lane) -> None:
        """Send the lane's deliveries one at a time, in event-id order (ORCH-0415)."""
        try:
            while True:
                try:
                    head = self.rows.lane_head(*lane)
                except StoreError as exc:
                    log.warning("webhook deliveries cannot be read: %s", exc)
                    await asyncio.sleep(STORE_RETRY_S)
                    continue
                if head is None:
                    return
                wait_ms = head.delivery.next_ms - self._wall.now_ms()
                if wait_ms > 0:
                    await asyncio.sleep(wait_ms / 1000)
                    continue
                async with self._slots:
                    status, error = await self._attempt(head)
                while True:
                    try:
                        self._record(head.delivery, status, error)
                        break
                    except StoreError as exc:
                        log.warning("webhook delivery log cannot be written: %s", exc)
                        await asyncio.sleep(STORE_RETRY_S)
        finally:
            if self._lanes.get(lane) is asyncio.current_task():
                del self._lanes[lane]

    async def _attempt(self, out: Outgoing) -> tuple[int | None, str | None]:
        """Send one attempt; ``(status, None)`` on a 2xx, else ``(status or None, why)``."""
        delivery = out.delivery
        body = delivery_body(
            delivery.delivery_id, delivery.event, delivery.run_id, delivery.event_id, out.data
        )
        headers = signed_headers(out.secret, delivery.delivery_id, int(time.time()), body)
        timeout_ms = self._context.config.webhook_timeout_ms
        started = time.perf_counter()
        status: int | None = None
        error: str | None
        try:
            async with asyncio.timeout(timeout_ms / 1000):
                async with self.client.stream(
                    "POST", out.url, content=body, headers=headers
                ) as response:
                    status = response.status_code
            error = None if 200 <= status < 300 else f"answered {status}"
        except TimeoutError:
            error = f"no answer within {timeout_ms} ms"
        except Exception as exc:  # any failure of an attempt is the attempt's outcome
            error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS] or type(exc).__name__
        self._context.metrics.webhook_attempt_duration.observe(time.perf_counter() - started)
        return status, error

    def _record(self, delivery: DeliveryRow, status: int | None, error: str | None) -> None:
        config = self._context.config
        attempts = delivery.attempts + 1
        now = self._wall.now_ms()
        outcome: DeliveryOutcome
        state: DeliveryState
        if error is None:
            outcome, state, next_ms, delivered = "delivered", "delivered", now, now
        elif attempts >= config.webhook_max_attempts:
            outcome, state, next_ms, delivered = "failed", "failed", now, None
        else:
            delay = retry_delay_ms(
                attempts, config.webhook_backoff_base_ms, config.webhook_backoff_cap_ms
            )
            outcome, state, next_ms, delivered = "retried", "pending", now + delay, None
        self.rows.record_attempt(
            delivery.delivery_id,
            state=state,
            attempts=attempts,
            last_status=status,
            last_error=error,
            next_ms=next_ms,
            delivered_ms=delivered,
        )
        self._context.metrics.webhook_deliveries.labels(outcome).inc()


def webhook_view(row: WebhookRow) -> Webhook:
    return Webhook(
        webhook_id=row.webhook_id,
        url=row.url,
        events=row.events,
        source=row.source,
        created_at=rfc3339(row.created_ms),
    )


def delivery_view(row: DeliveryRow) -> Delivery:
    return Delivery(
        delivery_id=row.delivery_id,
        event=row.event,
        run_id=row.run_id,
        event_id=row.event_id,
        state=row.state,
        attempts=row.attempts,
        last_status=row.last_status,
        last_error=row.last_error,
        created_at=rfc3339(row.created_ms),
        delivered_at=rfc3339(row.delivered_ms),
    )
