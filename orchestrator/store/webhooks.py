"""The rows of webhook subscriptions and their deliveries (spec section 12.9).

Deliveries are an outbox: :meth:`WebhookStore.insert_deliveries` runs inside
the transaction that writes the run events they report (ORCH-0406), and a
delivery references its event (``ON DELETE CASCADE``), so its body is read from
the event itself and purging a run's session removes its deliveries.
Subscriptions cascade to their deliveries too (ORCH-0405).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from orchestrator.store.db import Store
from orchestrator.vocabulary import DeliveryState, RunEvent, WebhookSource


@dataclass(frozen=True)
class WebhookRow:
    webhook_id: str
    url: str
    events: list[str]
    secret: str
    source: WebhookSource
    created_ms: int


@dataclass(frozen=True)
class DeliveryRow:
    seq: int
    delivery_id: str
    webhook_id: str
    run_id: str
    event_id: int
    state: DeliveryState
    attempts: int
    last_status: int | None
    last_error: str | None
    next_ms: int
    created_ms: int
    delivered_ms: int | None
    event: RunEvent
    """The reported run event's name."""


@dataclass(frozen=True)
class Outgoing:
    """The head of a lane: what the next attempt sends, and where."""

    delivery: DeliveryRow
    data: Any
    """The run event's data, decoded."""
    url: str
    secret: str


_WEBHOOK_COLUMNS = "webhook_id, url, events, secret, source, created_ms"
_DELIVERY_COLUMNS = (
    "d.seq, d.delivery_id, d.webhook_id, d.run_id, d.event_id, d.state, d.attempts, "
    "d.last_status, d.last_error, d.next_ms, d.created_ms, d.delivered_ms, e.event"
)
_DELIVERY_FROM = (
    "webhook_deliveries d JOIN run_events e ON e.run_id = d.run_id AND e.seq = d.event_id"
)


def _webhook(row: tuple[Any, ...]) -> WebhookRow:
    return WebhookRow(row[0], row[1], json.loads(row[2]), row[3], row[4], row[5])


class WebhookStore:
    """Typed access to the ``webhooks`` and ``webhook_deliveries`` tables of a :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # ------------------------------------------------------------ subscriptions

    def insert_webhook(self, row: WebhookRow) -> None:
        with self._store.transaction():
            self._store.connection.execute(
                f"INSERT INTO webhooks ({_WEBHOOK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    row.webhook_id,
                    row.url,
                    json.dumps(row.events),
                    row.secret,
                    row.source,
                    row.created_ms,
                ),
            )

    def sync_config(self, rows: Iterable[WebhookRow]) -> None:
        """Make the ``config`` subscriptions exactly ``rows`` (ids derived from their content)."""
        rows = list(rows)
        connection = self._store.connection
        with self._store.transaction():
            kept = [row.webhook_id for row in rows]
            marks = ", ".join("?" for _ in kept)
            connection.execute(
                f"DELETE FROM webhooks WHERE source = 'config' AND webhook_id NOT IN ({marks})",
                kept,
            )
            connection.executemany(
                f"INSERT OR IGNORE INTO webhooks ({_WEBHOOK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (r.webhook_id, r.url, json.dumps(r.events), r.secret, r.source, r.created_ms)
                    for r in rows
                ],
            )

    def get_webhook(self, webhook_id: str) -> WebhookRow | None:
        row = self._store.connection.execute(
            f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks WHERE webhook_id = ?", (webhook_id,)
        ).fetchone()
        return None if row is None else _webhook(row)

    def webhooks(self) -> list[WebhookRow]:
        rows = self._store.connection.execute(
            f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks ORDER BY created_ms, webhook_id"
        ).fetchall()
        return [_webhook(row) for row in rows]

    def delete_webhook(self, webhook_id: str) -> None:
        with self._store.transaction():
            self._store.connection.execute(
                "DELETE FROM webhooks WHERE webhook_id = ?", (webhook_id,)
            )

    # ------------------------------------------------------------ deliveries

    def insert_deliveries(self, rows: Iterable[tuple[str, str, str, int, int]]) -> None:
        """Insert ``(delivery_id, webhook_id, run_id, event_id, now_ms)`` pending deliveries.

        The caller holds the transaction of the run events they report.
        """
        self._store.connection.executemany(
            "INSERT INTO webhook_deliveries (delivery_id, webhook_id, run_id, event_id, state, "
            "next_ms, created_ms) VALUES (?, ?, ?, ?, 'pending', ?5, ?5)",
            rows,
        )

    def pending_lanes(self) -> list[tuple[str, str]]:
        """``(webhook_id, run_id)`` of every lane with a pending delivery, oldest first."""
        rows = self._store.connection.execute(
            "SELECT webhook_id, run_id, MIN(seq) AS first FROM webhook_deliveries "
            "WHERE state = 'pending' GROUP BY webhook_id, run_id ORDER BY first"
        ).fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]

    def lane_head(self, webhook_id: str, run_id: str) -> Outgoing | None:
        """The lane's earliest pending delivery, with what its attempt sends (ORCH-0415)."""
        row = self._store.connection.execute(
            f"SELECT {_DELIVERY_COLUMNS}, e.data, w.url, w.secret FROM {_DELIVERY_FROM} "
            "JOIN webhooks w ON w.webhook_id = d.webhook_id "
            "WHERE d.webhook_id = ? AND d.run_id = ? AND d.state = 'pending' "
            "ORDER BY d.seq LIMIT 1",
            (webhook_id, run_id),
        ).fetchone()
        if row is None:
            return None
        return Outgoing(DeliveryRow(*row[:13]), json.loads(row[13]), row[14], row[15])

    def record_attempt(
        self,
        delivery_id: str,
        *,
        state: DeliveryState,
        attempts: int,
        last_status: int | None,
        last_error: str | None,
        next_ms: int,
        delivered_ms: int | None,
    ) -> None:
        with self._store.transaction():
            self._store.connection.execute(
                "UPDATE webhook_deliveries SET state = ?, attempts = ?, last_status = ?, "
                "last_error = ?, next_ms = ?, delivered_ms = ? WHERE delivery_id = ?",
                (state, attempts, last_status, last_error, next_ms, delivered_ms, delivery_id),
            )

    def deliveries(
        self,
        webhook_id: str,
        *,
        state: DeliveryState | None,
        run_id: str | None,
        after_seq: int | None,
        limit: int,
    ) -> list[DeliveryRow]:
        """The subscription's deliveries in creation order, after the cursor's, filtered."""
        clauses = ["d.webhook_id = ?"]
        values: list[Any] = [webhook_id]
        if state is not None:
            clauses.append("d.state = ?")
            values.append(state)
        if run_id is not None:
            clauses.append("d.run_id = ?")
            values.append(run_id)
        if after_seq is not None:
            clauses.append("d.seq > ?")
            values.append(after_seq)
        rows = self._store.connection.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM {_DELIVERY_FROM} WHERE {' AND '.join(clauses)} "
            "ORDER BY d.seq LIMIT ?",
            (*values, limit),
        ).fetchall()
        return [DeliveryRow(*row) for row in rows]

    def pending_count(self) -> int:
        row = self._store.connection.execute(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending'"
        ).fetchone()
        return int(row[0])
