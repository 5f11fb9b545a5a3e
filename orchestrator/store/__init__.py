"""Persistence: SQLite with foreign keys, versioned migrations and batched stream events."""

from orchestrator.store.db import (
    AttemptRow,
    DispatchRow,
    EventRow,
    SessionRow,
    Store,
    StoreError,
    TaskRow,
)

__all__ = ["AttemptRow", "DispatchRow", "EventRow", "SessionRow", "Store", "StoreError", "TaskRow"]
