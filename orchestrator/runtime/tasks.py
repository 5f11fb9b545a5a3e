"""The in-memory side of a live (queued or running) task."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.engines import GenerationRequest, Token
from orchestrator.runtime.channel import TaskChannel
from orchestrator.store import AttemptRow, TaskRow

if TYPE_CHECKING:
    from orchestrator.runtime.pool import Replica


@dataclass
class LiveTask:
    row: TaskRow
    channel: TaskChannel
    request: GenerationRequest
    attempts: int = 0
    sent: list[Token] = field(default_factory=list)
    """Tokens already streamed; a strict retry must reproduce them."""
    started_sent: bool = False
    runner: asyncio.Task[None] | None = None
    held: Replica | None = None
    """The replica slot this task occupies, released exactly once."""
    attempt_open: int | None = None
    """The number of the attempt in progress, if any."""
    admitted_at: float = field(default_factory=time.monotonic)
    last_token_at: float | None = None
    finished: bool = False
    pending_start: tuple[AttemptRow, dict[str, Any]] | None = None
    """The attempt start not written yet: the step that began it writes it before
    it first awaits, or together with the outcome when it ends without awaiting."""

    @property
    def task_id(self) -> str:
        return self.row.task_id

    @property
    def strict(self) -> bool:
        return self.request.determinism == "strict"
