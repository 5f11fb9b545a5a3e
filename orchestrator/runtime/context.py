"""What the runtime's parts share: configuration, clock, pools, live tasks, metrics, store.

One context per orchestrator, given to each of its parts when they are made.
The store and its journal exist only while the orchestrator runs (between
``start`` and ``stop``); asking for them at another time raises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.compact_json import dumps_text, stdlib_dumps_text
from orchestrator.config import Config
from orchestrator.errors import ApiError
from orchestrator.metrics import Metrics
from orchestrator.runtime.clock import Clock
from orchestrator.runtime.ids import ordered_id, random_id
from orchestrator.runtime.journal import Journal
from orchestrator.runtime.pool import Pool
from orchestrator.runtime.tasks import LiveTask, LiveTasks
from orchestrator.store import Store, TaskRow
from orchestrator.vocabulary import ErrorKind, FallbackMode, StreamEvent


class RuntimeContext:
    def __init__(
        self, config: Config, clock: Clock, pools: dict[str, Pool], metrics: Metrics
    ) -> None:
        self.config = config
        self.clock = clock
        self.pools = pools
        self.metrics = metrics
        tuning = config.tuning
        self.live = LiveTasks(packed=tuning.packed_queued_tasks)
        self.new_id: Callable[[str], str] = ordered_id if tuning.ordered_ids else random_id
        """A new session or task id."""
        self._encode = dumps_text if tuning.compact_json else stdlib_dumps_text
        self.fallback_mode: FallbackMode = config.fallback_mode
        """How a retry after an engine 429 picks its replica (ORCH-0109, ORCH-0110); persisted."""
        self._store: Store | None = None
        self._journal: Journal | None = None
        self.task_ended: list[Callable[[TaskRow], None]] = []
        """Called with each task's row once its terminal state is durable (runs follow steps)."""
        self.session_ending: list[Callable[[str], None]] = []
        """Called with a session's id when it ends, before its tasks are cancelled."""
        self.run_events_writing: list[Callable[[list[tuple[str, int, str, str]]], None]] = []
        """Called inside the transaction that writes run events, with their rows (the webhook
        outbox joins that transaction, ORCH-0406)."""

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("orchestrator is not started")
        return self._store

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            raise RuntimeError("orchestrator is not started")
        return self._journal

    @property
    def running(self) -> bool:
        """Whether the store and the journal are open."""
        return self._store is not None and self._journal is not None

    def attach(self, store: Store, journal: Journal) -> None:
        self._store, self._journal = store, journal

    def detach(self) -> tuple[Store | None, Journal | None]:
        """Forget the store and the journal; returns them for closing."""
        opened = self._store, self._journal
        self._store = self._journal = None
        return opened

    def write_run_events(self, rows: list[tuple[str, int, str, str]]) -> None:
        """Insert ``(run_id, seq, event, data)`` rows; the caller holds the transaction."""
        self.store.insert_run_events(rows)
        for hook in self.run_events_writing:
            hook(rows)

    def pool(self, pool_id: str) -> Pool:
        """The pool ``pool_id``, or 404 ``NOT_FOUND``."""
        pool = self.pools.get(pool_id)
        if pool is None:
            raise ApiError(ErrorKind.NOT_FOUND, f"pool {pool_id!r} not found")
        return pool

    def emit(self, lt: LiveTask, event: StreamEvent, data: dict[str, Any]) -> None:
        """Append an event to the task's stream; readers see it once the journal committed it."""
        payload = self._encode(data)
        row = lt.channel.append(event, payload)
        self.journal.event(lt.channel, lt.task_id, row.seq, event, payload)
