"""The in-memory side of a live (queued or running) task."""

from __future__ import annotations

import asyncio
import json
import marshal
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
    (docs/design/performance.md, ``packed_queued_tasks``). The stream
    channel, the engine request and the token list are therefore made on first
    use, which for most tasks is their dispatch: a queued task holds two
    tracked objects (itself and its row) instead of six.
    """

    row: TaskRow
    attempts: int = 0
    started_sent: bool = False
    runner: asyncio.Task[None] | None = None
    slot: Replica | None = None
    """The replica whose slot this task occupies, released exactly once."""
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

    def tokens_streamed(self) -> int:
        """Tokens readers can see: the visible events but ``started`` (ORCH-0054).

        A live task's visible events are ``started`` and then its tokens; its
        closing event is never visible while it is live (it leaves the live set
        in the same step that reveals it).
        """
        if self._channel is None:
            return 0
        return max(0, self._channel.last_seq - 1)

    @property
    def strict(self) -> bool:
        return self.request.determinism == "strict"


_QUEUED_FIELDS = len(fields(TaskRow))
"""An entry holds the row's fields in order, then the admission time."""


def _queued_entry(row: TaskRow) -> bytes:
    """The row and its admission time, as bytes: an object the collector never tracks.

    A tuple of the same values is tracked from birth until a collection
    untracks it, so every young collection would still scan the tasks
    admitted since the last one (under a flood, most of what it scans).
    ``marshal`` encodes these plain values in about a microsecond, and only
    within this process (its format is not a storage format).
    """
    return marshal.dumps((*row.values(), time.monotonic()))


def _made(entry: bytes) -> LiveTask:
    values = marshal.loads(entry)
    return LiveTask(row=TaskRow(*values[:_QUEUED_FIELDS]), admitted_at=values[_QUEUED_FIELDS])


class LiveTasks:
    """Every live task by id; a queued task is packed as bytes until it is needed.

    Under a flood the backlog grows by thousands of tasks a second, and each
    object the garbage collector tracks is scanned again by every collection
    of the generation it has reached: with a ``LiveTask`` and a ``TaskRow`` per
    queued task, a middle-generation collection rescanned the whole backlog
    and stalled every request in flight (docs/design/performance.md). A task that
    only waits is packed as bytes, which the collector never tracks, and its
    ``LiveTask`` is made the first time anything asks for it (dispatch, a
    read, a stream, a cancel), with the time it was admitted.
    """

    def __init__(self, *, packed: bool = True) -> None:
        self._tasks: dict[str, LiveTask | bytes] = {}
        self._packed = packed

    def add_queued(self, row: TaskRow) -> None:
        """A just-admitted task, packed while it waits."""
        if self._packed:
            try:
                self._tasks[row.task_id] = _queued_entry(row)
                return
            except ValueError:  # a value marshal cannot encode: keep the task as it is
                pass
        self._tasks[row.task_id] = LiveTask(row=row)

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
        """The tasks whose ``LiveTask`` exists: running, read or streamed.

        A task still packed as bytes has no runner and no channel: nothing to stop or close.
        """
        return (entry for entry in list(self._tasks.values()) if isinstance(entry, LiveTask))

    def of_session(self, session_id: str) -> list[LiveTask]:
        """The session's live tasks, making only theirs.

        marshal writes a string's UTF-8 bytes as they are, so an entry that does
        not contain them is another session's; one that does is decoded to be sure.
        """
        needle = session_id.encode("utf-8", "surrogatepass")
        found = []
        for task_id, entry in list(self._tasks.items()):
            if isinstance(entry, LiveTask):
                if entry.row.session_id == session_id:
                    found.append(entry)
            elif needle in entry and (lt := self[task_id]).row.session_id == session_id:
                found.append(lt)
        return found
