"""The in-memory side of a live (queued or running) task."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.engines import GenerationRequest, Token
from orchestrator.runtime.channel import TaskChannel
from orchestrator.store import AttemptRow, EventRow, TaskRow

if TYPE_CHECKING:
    from orchestrator.runtime.pool import Replica


@dataclass
class LiveTask:
    """One queued or running task.

    A backlog holds one of these per queued task, and everything made at
    admission lives as long as the task waits, so the collector's pauses over
    the older generations grow with the number of objects a queued task holds
    (one took 160 ms at 70,000 queued tasks, bench/RESULTS.md). The stream
    channel, the engine request and the token list are therefore made on first
    use, which for most tasks is their dispatch: a queued task holds two
    tracked objects (itself and its row) instead of six.
    """

    row: TaskRow
    attempts: int = 0
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
    _channel: TaskChannel | None = field(default=None, repr=False)
    _request: GenerationRequest | None = field(default=None, repr=False)
    _sent: list[Token] | None = field(default=None, repr=False)

    @classmethod
    def resumed(cls, row: TaskRow, events: list[EventRow]) -> LiveTask:
        """A recovered task whose stream goes on from its persisted events."""
        lt = cls(row=row, _channel=TaskChannel(events))
        for event in events:
            if event.event == "started":
                lt.started_sent = True
            elif event.event == "token":
                data = json.loads(event.data)
                lt.sent.append(Token(data["index"], data["text"], data["token_id"]))
        return lt

    @property
    def channel(self) -> TaskChannel:
        """The task's in-memory event log, which stream readers follow."""
        if self._channel is None:
            self._channel = TaskChannel()
        return self._channel

    @property
    def request(self) -> GenerationRequest:
        """What the engine is asked to generate, from the persisted task."""
        if self._request is None:
            row, params = self.row, self.row.params
            self._request = GenerationRequest(
                prompt=row.prompt,
                seed=row.seed,
                max_tokens=row.max_tokens,
                temperature=params["temperature"],
                top_p=params["top_p"],
                sampler_profile_version=params["sampler_profile_version"],
                determinism=params["determinism"],
            )
        return self._request

    @property
    def sent(self) -> list[Token]:
        """Tokens already streamed; a strict retry must reproduce them."""
        if self._sent is None:
            self._sent = []
        return self._sent

    @property
    def task_id(self) -> str:
        return self.row.task_id

    @property
    def strict(self) -> bool:
        return self.request.determinism == "strict"
