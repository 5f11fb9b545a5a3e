"""Persistence: SQLite with foreign keys, versioned migrations and group commits."""

from orchestrator.store.db import (
    AttemptRow,
    CommitParticipant,
    DispatchRow,
    EventRow,
    SessionRow,
    StorageUnavailable,
    Store,
    StoreError,
    TaskRow,
    is_storage_fault,
)

__all__ = [
    "AttemptRow",
    "CommitParticipant",
    "DispatchRow",
    "EventRow",
    "SessionRow",
    "StorageUnavailable",
    "Store",
    "StoreError",
    "TaskRow",
    "is_storage_fault",
]
