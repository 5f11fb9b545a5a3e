"""Persistence: SQLite with foreign keys, versioned migrations and group commits."""

from orchestrator.store.approvals import AuditRow, CheckpointRow
from orchestrator.store.children import ChildRow
from orchestrator.store.db import (
    AttemptRow,
    CommitParticipant,
    DefinitionRow,
    DispatchRow,
    EventRow,
    RunRow,
    SessionRow,
    StepAttemptRow,
    StepRow,
    StorageUnavailable,
    Store,
    StoreError,
    TaskRow,
    is_storage_fault,
)

__all__ = [
    "AttemptRow",
    "AuditRow",
    "CheckpointRow",
    "ChildRow",
    "CommitParticipant",
    "DefinitionRow",
    "DispatchRow",
    "EventRow",
    "RunRow",
    "SessionRow",
    "StepAttemptRow",
    "StepRow",
    "StorageUnavailable",
    "Store",
    "StoreError",
    "TaskRow",
    "is_storage_fault",
]
