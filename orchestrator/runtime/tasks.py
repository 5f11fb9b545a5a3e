"""The in-memory side of a live (queued or running) task."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
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


_QueuedEntry = tuple[Any, ...]
"""A queued task, flat: its row values in ``TaskRow`` field order with ``None`` for
``params``, its admission time, then its parameters' names and values.

Flat, because a young collection untracks a tuple only once everything in it is
untracked, and it visits a tuple before the tuples only it refers to: an entry
holding a nested tuple (or any dict) would stay tracked."""

_SESSION_ID, _PARAMS = 1, 7
"""Where ``session_id`` and ``params`` are in ``TaskRow``'s fields."""
_FIELDS = len(fields(TaskRow))
"""The admission time's index in an entry, after the row's fields."""


def _queued_entry(row: TaskRow) -> _QueuedEntry:
    return (
        row.task_id,
        row.session_id,
        row.admit_seq,
        row.pool_id,
        row.priority,
        row.prompt,
        row.max_tokens,
        None,
        row.seed,
        row.state,
        row.replica_id,
        row.engine,
        row.engine_version,
        row.tokens_out,
        row.finish_reason,
        row.error,
        row.created_ms,
        row.started_ms,
        row.finished_ms,
        time.monotonic(),
        *row.params,
        *row.params.values(),
    )


def _made(entry: _QueuedEntry) -> LiveTask:
    values = list(entry[:_FIELDS])
    names_and_values = entry[_FIELDS + 1 :]
    half = len(names_and_values) // 2
    values[_PARAMS] = dict(zip(names_and_values[:half], names_and_values[half:], strict=True))
    return LiveTask(row=TaskRow(*values), admitted_at=entry[_FIELDS])


class LiveTasks:
    """Every live task by id; a queued task is held as one plain tuple until it is needed.

    Under a flood the backlog grows by thousands of tasks a second, and each
    object the garbage collector tracks is scanned again by every collection
    of the generation it has reached: with a ``LiveTask`` and a ``TaskRow`` per
    queued task, a middle-generation collection took 130-180 ms at a backlog
    of ~90,000 tasks and stalled every request in flight (bench/RESULTS.md,
    "A backlog the collector does not scan"). A flat tuple of strings,
    numbers and ``None`` is untracked by the first young collection that sees
    it, so a task that only waits costs the collector nothing after that. Its
    ``LiveTask`` is made the first time anything asks for it (dispatch, a
    read, a stream, a cancel), with the time it was admitted.
    """

    def __init__(self) -> None:
        self._tasks: dict[str, LiveTask | _QueuedEntry] = {}

    def add_queued(self, row: TaskRow) -> None:
        """A just-admitted task, held compactly while it waits."""
        self._tasks[row.task_id] = _queued_entry(row)

    def __setitem__(self, task_id: str, lt: LiveTask) -> None:
        self._tasks[task_id] = lt

    def get(self, task_id: str) -> LiveTask | None:
        entry = self._tasks.get(task_id)
        if entry is None or isinstance(entry, LiveTask):
            return entry
        lt = _made(entry)
        self._tasks[task_id] = lt
        return lt

    def __getitem__(self, task_id: str) -> LiveTask:
        lt = self.get(task_id)
        if lt is None:
            raise KeyError(task_id)
        return lt

    def pop(self, task_id: str) -> LiveTask | None:
        """Forget a task; its ``LiveTask`` if one was made (else there is nothing to undo)."""
        entry = self._tasks.pop(task_id, None)
        return entry if isinstance(entry, LiveTask) else None

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def __len__(self) -> int:
        return len(self._tasks)

    def made(self) -> Iterator[LiveTask]:
        """The tasks whose ``LiveTask`` exists: running, read or streamed. A task still
        held compactly has no runner and no channel, so it has nothing to stop or close."""
        return (entry for entry in list(self._tasks.values()) if isinstance(entry, LiveTask))

    def of_session(self, session_id: str) -> list[LiveTask]:
        """The session's live tasks, made only for the tasks that belong to it."""
        ids = [
            task_id
            for task_id, entry in self._tasks.items()
            if (entry.row.session_id if isinstance(entry, LiveTask) else entry[_SESSION_ID])
            == session_id
        ]
        return [self[task_id] for task_id in ids]
