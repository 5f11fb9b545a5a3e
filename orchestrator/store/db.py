"""SQLite persistence of sessions, tasks, attempts, stream events, settings and runs.

One connection, used only from the event loop thread: every statement is
short, and keeping them on the loop avoids a thread hop per request (measured
cheaper than a worker thread at this size). The one long operation, copying
the WAL back into the database file, runs on a second connection in a thread
(:mod:`orchestrator.store.checkpoint`). Foreign keys are on, WAL with
``synchronous=NORMAL``: a committed admission survives a process crash, which
is what "nothing is lost" requires; the OS crash window of NORMAL is accepted.

Writes are committed in groups, one per event-loop turn: the turn's
admissions, and the writes of a :class:`CommitParticipant` (the runtime's
journal of stream events and task states), share one commit. A commit that
fails is rolled back whole: its admissions fail with :class:`StorageUnavailable`
when the database cannot be written (disk full, I/O error), and the
participant is told, so that it keeps its writes and tries again
(docs/design/group-commit.md).

Every SQL statement orchestratord runs is in this module, which is why it is
long: one place to read what touches the database, and in which transaction.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from orchestrator.compact_json import dumps_canonical, stdlib_dumps_canonical
from orchestrator.store.approvals import RunApprovals
from orchestrator.store.checkpoint import DEFAULT_THRESHOLD_FRAMES, WalCheckpointer
from orchestrator.store.children import RunChildren
from orchestrator.store.migrations import MIGRATIONS
from orchestrator.vocabulary import AttemptState, Priority, RunState, StepState, TaskState

log = logging.getLogger("orchestrator.store")


class StoreError(Exception):
    """The database cannot be opened or is of a newer schema than this build."""


class StorageUnavailable(StoreError):
    """The database cannot be written now (disk full, I/O error, locked); retrying may succeed."""


_STORAGE_FAULT_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    }
)
"""Primary result codes of a database that cannot be written now, whatever the statement."""


def is_storage_fault(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be written now, rather than a bug in a statement."""
    if isinstance(exc, StorageUnavailable):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return (
        isinstance(exc, sqlite3.Error)
        and code is not None
        and code & 0xFF in (_STORAGE_FAULT_CODES)
    )


class CommitParticipant(Protocol):
    """Writes that join every group commit of the store (see :meth:`Store.attach`)."""

    def write_pending(self) -> None:
        """Write what waits, inside the open transaction; the store commits it."""

    def committed(self) -> None:
        """What the last :meth:`write_pending` wrote is durable."""

    def failed(self, error: StoreError) -> None:
        """What the last :meth:`write_pending` wrote (or began to) was rolled back."""


@dataclass
class SessionRow:
    session_id: str
    ttl_seconds: int
    metadata: dict[str, Any]
    created_ms: int
    expires_ms: int
    ended_ms: int | None


@dataclass
class TaskRow:
    task_id: str
    session_id: str
    admit_seq: int
    pool_id: str
    priority: Priority
    prompt: str
    max_tokens: int
    params: dict[str, Any]
    seed: int
    state: TaskState
    replica_id: str | None
    engine: str | None
    engine_version: str | None
    tokens_out: int
    finish_reason: str | None
    error: dict[str, Any] | None
    created_ms: int
    started_ms: int | None
    finished_ms: int | None

    def values(self) -> tuple[Any, ...]:
        """The fields in declaration order: ``dataclasses.astuple`` without its deep copy."""
        return (
            self.task_id,
            self.session_id,
            self.admit_seq,
            self.pool_id,
            self.priority,
            self.prompt,
            self.max_tokens,
            self.params,
            self.seed,
            self.state,
            self.replica_id,
            self.engine,
            self.engine_version,
            self.tokens_out,
            self.finish_reason,
            self.error,
            self.created_ms,
            self.started_ms,
            self.finished_ms,
        )


_PARAMS, _ERROR = 7, 15
"""Where the JSON columns are in ``TaskRow.values()`` and in a ``tasks`` row."""


@dataclass
class AttemptRow:
    task_id: str
    attempt: int
    replica_id: str
    state: AttemptState
    error_kind: str | None
    started_ms: int
    finished_ms: int | None


@dataclass(frozen=True)
class DispatchRow:
    """A queue dispatch: the first attempt of a task, for the fairness streak at recovery."""

    task_id: str
    priority: Priority
    started_ms: int
    batch_waiting: bool
    """A batch task of the same pool was queued at ``started_ms``."""


@dataclass(frozen=True)
class EventRow:
    seq: int
    event: str
    data: str
    """The event's JSON payload, exactly as sent on the wire."""


@dataclass(frozen=True)
class DefinitionRow:
    name: str
    version: str
    digest: str
    document: dict[str, Any]
    created_ms: int


@dataclass
class RunRow:
    run_id: str
    session_id: str
    definition: str
    version: str
    seed: int
    max_parallel: int
    inputs: dict[str, Any]
    state: RunState
    created_ms: int
    finished_ms: int | None


@dataclass
class StepRow:
    run_id: str
    step_id: str
    position: int
    state: StepState
    seed: int
    output: str | None
    error: dict[str, Any] | None
    started_ms: int | None
    finished_ms: int | None
    retry_at_ms: int | None
    """When the next attempt of a step waiting out its retry backoff starts."""


@dataclass(frozen=True)
class StepAttemptRow:
    run_id: str
    step_id: str
    attempt: int
    task_id: str | None
    error: dict[str, Any] | None
    started_ms: int


_RUN_COLUMNS = (
    "run_id, session_id, definition, version, seed, max_parallel, inputs, state, "
    "created_ms, finished_ms"
)
_STEP_COLUMNS = (
    "run_id, step_id, position, state, seed, output, error, started_ms, finished_ms, retry_at_ms"
)


def _run(row: tuple[Any, ...]) -> RunRow:
    values = list(row)
    values[6] = json.loads(values[6])
    return RunRow(*values)


def _step(row: tuple[Any, ...]) -> StepRow:
    values = list(row)
    values[6] = json.loads(values[6]) if values[6] is not None else None
    return StepRow(*values)


_TASK_COLUMNS = (
    "task_id, session_id, admit_seq, pool_id, priority, prompt, max_tokens, params, seed, "
    "state, replica_id, engine, engine_version, tokens_out, finish_reason, error, "
    "created_ms, started_ms, finished_ms"
)


_INSERT_TASK = (
    f"INSERT INTO tasks ({_TASK_COLUMNS}) VALUES "
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _task_values(row: TaskRow, canonical: Callable[[Any], str]) -> tuple[Any, ...]:
    values = row.values()
    error = None if row.error is None else canonical(row.error)
    return (
        *values[:_PARAMS],
        canonical(row.params),
        *values[_PARAMS + 1 : _ERROR],
        error,
        *values[_ERROR + 1 :],
    )


def _task(row: tuple[Any, ...]) -> TaskRow:
    values = list(row)
    values[_PARAMS] = json.loads(values[_PARAMS])
    values[_ERROR] = json.loads(values[_ERROR]) if values[_ERROR] is not None else None
    return TaskRow(*values)


def _statements(script: str) -> Iterator[str]:
    """The statements of a migration script; a trigger's body keeps its own semicolons."""
    statement = ""
    for part in script.split(";"):
        statement += part + ";"
        if sqlite3.complete_statement(statement):
            if statement.strip(" \n;"):
                yield statement
            statement = ""


class Store(RunApprovals, RunChildren):
    """Typed access to the orchestrator database."""

    def __init__(
        self,
        path: str | Path,
        *,
        compact_json: bool = True,
    ) -> None:
        """``compact_json``: see :class:`~orchestrator.config.Tuning`."""
        self.path = str(path)
        self._canonical = dumps_canonical if compact_json else stdlib_dumps_canonical
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._group: list[asyncio.Future[None]] | None = None
            self._joined = False
            self._participant: CommitParticipant | None = None
            self._checkpointer: WalCheckpointer | None = None
            self._connection = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=NORMAL")
            self._connection.execute("PRAGMA foreign_keys=ON")
            self._connection.execute("PRAGMA busy_timeout=5000")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open database: {exc}") from None

    # ------------------------------------------------------------ plumbing

    def _migrate(self) -> None:
        version = self._connection.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.path}: database schema v{version} is newer than this build "
                f"(v{len(MIGRATIONS)})"
            )
        if version == len(MIGRATIONS):
            return
        # A migration may rebuild a table (SQLite cannot alter a constraint), and
        # dropping the old one with foreign keys enforced would cascade into its
        # children. So they are off while migrating (the pragma is a no-op inside a
        # transaction) and checked before each step commits.
        self._connection.execute("PRAGMA foreign_keys=OFF")
        try:
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                with self.transaction():
                    for statement in _statements(script):
                        self._connection.execute(statement)
                    broken = self._connection.execute("PRAGMA foreign_key_check").fetchone()
                    if broken is not None:
                        raise StoreError(
                            f"{self.path}: migration to schema v{number} refused: a row "
                            f"of table {broken[0]!r} has no parent {broken[2]!r} row"
                        )
                    self._connection.execute(f"PRAGMA user_version={number}")
        finally:
            self._connection.execute("PRAGMA foreign_keys=ON")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the body atomically and commit it before returning.

        With an admission group open, the body joins it and the group commits
        now: one commit for both instead of the group's and then the body's.
        """
        if self._group is not None:
            self._connection.execute("SAVEPOINT body")
            self._joined = True
            try:
                yield
            except BaseException:
                if self._connection.in_transaction:
                    with suppress(sqlite3.Error):
                        self._connection.execute("ROLLBACK TO body")
                        self._connection.execute("RELEASE body")
                raise
            finally:
                self._joined = False
            self._connection.execute("RELEASE body")
            self.settle()
            return
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._connection.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self._committed()

    def _rollback(self) -> None:
        """Undo the open transaction, if SQLite has not already (it does on some I/O errors)."""
        if self._connection.in_transaction:
            with suppress(sqlite3.Error):
                self._connection.execute("ROLLBACK")

    def close(self) -> None:
        with suppress(StoreError):  # what could not be written is lost with the process
            self.settle()
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        self._connection.close()

    def checkpoint_in_background(self, threshold_frames: int = DEFAULT_THRESHOLD_FRAMES) -> None:
        """Copy the WAL into the database file from a thread, not inside commits.

        See :mod:`orchestrator.store.checkpoint`. The runtime turns this on for
        the life of a server; a store used on its own keeps SQLite's automatic
        checkpoints. No-op for an in-memory database or when already on.
        """
        if self.path == ":memory:" or self._checkpointer is not None:
            return
        try:
            checkpointer = WalCheckpointer(self.path, threshold_frames=threshold_frames)
        except sqlite3.Error as exc:
            log.warning("%s: WAL checkpoints stay in commits: %s", self.path, exc)
            return
        self.settle()
        self._connection.execute("PRAGMA wal_autocheckpoint=0")
        self._checkpointer = checkpointer

    @property
    def connection(self) -> sqlite3.Connection:
        """The connection, for the store's query modules of one feature each
        (:mod:`orchestrator.store.webhooks`); callers write inside :meth:`transaction`."""
        return self._connection

    @property
    def checkpointing_in_background(self) -> bool:
        return self._checkpointer is not None

    def _committed(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.finish(self._connection)

    # ------------------------------------------------------------ group commit

    def attach(self, participant: CommitParticipant) -> None:
        """Make ``participant``'s writes part of every group commit, after the admissions."""
        self._participant = participant

    def insert_task_grouped(self, row: TaskRow) -> asyncio.Future[None]:
        """Insert a task in the current admission group; the future resolves once committed.

        Admissions that arrive in the same event-loop turn share one commit (a
        commit per insert was most of an admission's cost). The caller answers
        202 only after the future resolves, so an acknowledged task is durable;
        when the database cannot be written, the future fails with
        :class:`StorageUnavailable`.
        """
        group = self._open_group()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        group.append(done)
        try:
            self._connection.execute(_INSERT_TASK, _task_values(row, self._canonical))
        except sqlite3.Error as exc:
            if is_storage_fault(exc):
                raise self._abandon_group(exc) from exc
            done.set_exception(StoreError(f"{self.path}: admission failed: {exc}"))
        return done

    def _open_group(self) -> list[asyncio.Future[None]]:
        if self._group is None:
            self._connection.execute("BEGIN IMMEDIATE")
            self._group = []
            asyncio.get_running_loop().call_soon(self._settle_soon)
        return self._group

    def _settle_soon(self) -> None:
        with suppress(StoreError):  # reported to the group's admissions and participant
            self.settle()

    def commit(self) -> None:
        """Commit the participant's pending writes now, with the open group if there is one.

        Raises :class:`StorageUnavailable` (or :class:`StoreError`) when the
        commit fails; the participant has been told and keeps its writes.
        """
        try:
            self._open_group()
        except sqlite3.Error as exc:
            raise self._abandon_group(exc, self._participant) from exc
        self.settle()

    def settle(self) -> None:
        """Commit the open group, if any: admissions, then the participant's writes.

        On failure everything is rolled back, the admissions fail and the
        participant is told; the error is raised as :class:`StorageUnavailable`
        when the database cannot be written, else as :class:`StoreError`.
        """
        if self._group is None or self._joined:
            return
        participant = self._participant
        try:
            if participant is not None:
                # Its writes call store methods that settle first: they must join instead.
                self._joined = True
                try:
                    participant.write_pending()
                finally:
                    self._joined = False
            self._connection.execute("COMMIT")
        except BaseException as exc:
            if self._group is None:  # already abandoned, and the participant told
                raise
            raise self._abandon_group(exc, participant) from exc
        waiting, self._group = self._group, None
        for future in waiting:
            if not future.done():
                future.set_result(None)
        if participant is not None:
            participant.committed()
        self._committed()

    def _abandon_group(
        self, exc: BaseException, participant: CommitParticipant | None = None
    ) -> StoreError:
        """Roll the open group back and fail it: its admissions, and ``participant``'s writes."""
        self._rollback()
        waiting, self._group = self._group or [], None
        error = self._commit_error(exc)
        for future in waiting:
            if not future.done():
                future.set_exception(error)
        if participant is not None:
            participant.failed(error)
        return error

    def _commit_error(self, exc: BaseException) -> StoreError:
        if isinstance(exc, StoreError):
            return exc
        if is_storage_fault(exc):
            return StorageUnavailable(f"{self.path}: cannot write the database: {exc}")
        return StoreError(f"{self.path}: commit failed: {exc}")

    def foreign_keys_enabled(self) -> bool:
        return bool(self._connection.execute("PRAGMA foreign_keys").fetchone()[0])

    # ------------------------------------------------------------ sessions

    def insert_session(self, row: SessionRow) -> None:
        self.settle()
        self._connection.execute(
            "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)",
            (
                row.session_id,
                row.ttl_seconds,
                json.dumps(row.metadata, sort_keys=True, ensure_ascii=False),
                row.created_ms,
                row.expires_ms,
                row.ended_ms,
            ),
        )

    def get_session(self, session_id: str) -> SessionRow | None:
        row = self._connection.execute(
            "SELECT session_id, ttl_seconds, metadata, created_ms, expires_ms, ended_ms "
            "FROM sessions WHERE session_id = ?",
            (session_id,),
        ).fetchone()
        if row is None:
            return None
        return SessionRow(row[0], row[1], json.loads(row[2]), row[3], row[4], row[5])

    def end_session(self, session_id: str, now_ms: int) -> None:
        self.settle()
        self._connection.execute(
            "UPDATE sessions SET ended_ms = ? WHERE session_id = ? AND ended_ms IS NULL",
            (now_ms, session_id),
        )

    def session_task_counts(self, session_id: str) -> dict[str, int]:
        counts = {"queued": 0, "running": 0, "terminal": 0}
        for state, count in self._connection.execute(
            "SELECT state, COUNT(*) FROM tasks WHERE session_id = ? GROUP BY state",
            (session_id,),
        ):
            key = state if state in ("queued", "running") else "terminal"
            counts[key] += count
        return counts

    def purge_sessions(self, ended_or_expired_before_ms: int) -> int:
        """Hard-delete sessions gone before the cutoff; tasks, attempts and events cascade."""
        self.settle()
        cursor = self._connection.execute(
            "DELETE FROM sessions WHERE COALESCE(ended_ms, expires_ms) < ? AND NOT EXISTS "
            "(SELECT 1 FROM tasks t WHERE t.session_id = sessions.session_id "
            " AND t.state IN ('queued', 'running')) AND NOT EXISTS "
            "(SELECT 1 FROM runs r WHERE r.session_id = sessions.session_id "
            " AND r.state IN ('running', 'awaiting_approval'))",
            (ended_or_expired_before_ms,),
        )
        return cursor.rowcount

    # ------------------------------------------------------------ tasks

    def next_admit_seq(self) -> int:
        value = self._connection.execute("SELECT MAX(admit_seq) FROM tasks").fetchone()[0]
        return 0 if value is None else int(value)

    def insert_task(self, row: TaskRow) -> None:
        self.settle()
        self._insert_task(row)

    def _insert_task(self, row: TaskRow) -> None:
        self._connection.execute(_INSERT_TASK, _task_values(row, self._canonical))

    def get_task(self, task_id: str) -> TaskRow | None:
        row = self._connection.execute(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE task_id = ?", (task_id,)
        ).fetchone()
        return None if row is None else _task(row)

    def live_tasks(self) -> list[TaskRow]:
        """Queued and running tasks in admission order (for restart recovery)."""
        rows = self._connection.execute(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE state IN ('queued', 'running') "
            "ORDER BY admit_seq"
        ).fetchall()
        return [_task(row) for row in rows]

    def update_task(self, task_id: str, **fields: Any) -> None:
        self.settle()
        if "error" in fields and fields["error"] is not None:
            fields["error"] = self._canonical(fields["error"])
        # Column names come from this package's code, never from a request.
        assignments = ", ".join(f"{name} = ?" for name in fields)
        statement = f"UPDATE tasks SET {assignments} WHERE task_id = ?"
        self._connection.execute(statement, (*fields.values(), task_id))

    # ------------------------------------------------------------ attempts

    def insert_attempt(self, row: AttemptRow) -> None:
        self.settle()
        self._connection.execute(
            "INSERT INTO attempts VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                row.task_id,
                row.attempt,
                row.replica_id,
                row.state,
                row.error_kind,
                row.started_ms,
                row.finished_ms,
            ),
        )

    def finish_attempt(
        self, task_id: str, attempt: int, state: str, error_kind: str | None, now_ms: int
    ) -> None:
        self.settle()
        self._connection.execute(
            "UPDATE attempts SET state = ?, error_kind = ?, finished_ms = ? "
            "WHERE task_id = ? AND attempt = ?",
            (state, error_kind, now_ms, task_id, attempt),
        )

    def attempts(self, task_id: str) -> list[AttemptRow]:
        rows = self._connection.execute(
            "SELECT task_id, attempt, replica_id, state, error_kind, started_ms, finished_ms "
            "FROM attempts WHERE task_id = ? ORDER BY attempt",
            (task_id,),
        ).fetchall()
        return [AttemptRow(*row) for row in rows]

    def recent_dispatches(self, pool_id: str, limit: int) -> list[DispatchRow]:
        """The pool's last ``limit`` queue dispatches, newest first (restart recovery only).

        A queue dispatch is a task's first attempt (retries never go through the
        queue); ``tasks.started_ms`` is written with that attempt and carries its
        start stamp, so the tasks table alone answers. Order is attempt start
        order; within one millisecond interactive counts as the later one and
        batch as the earlier one, and a batch task admitted in the same
        millisecond counts as waiting: ties lean towards a longer streak (see
        ``orchestrator.queue.fairness`` for why). A batch task left the queue
        when it started, else when it ended (cancelled, dropped), else it is
        still queued. Two scans of the tasks table, once per pool at startup;
        nothing is added to the dispatch path.
        """
        rows = self._connection.execute(
            "SELECT task_id, priority, started_ms FROM tasks "
            "WHERE pool_id = ? AND started_ms IS NOT NULL "
            "ORDER BY started_ms DESC, priority = 'interactive' DESC, admit_seq DESC LIMIT ?",
            (pool_id, limit),
        ).fetchall()
        if not rows:
            return []
        newest, oldest = rows[0][2], rows[-1][2]
        spans: list[tuple[int, int | None, int | None]] = self._connection.execute(
            "SELECT created_ms, started_ms, finished_ms FROM tasks "
            "WHERE pool_id = ? AND priority = 'batch' AND created_ms <= ? "
            "AND COALESCE(started_ms, finished_ms, ?) >= ?",
            (pool_id, newest, newest, oldest),
        ).fetchall()

        def batch_waiting(at: int) -> bool:
            for created, started, finished in spans:
                if created > at:
                    continue
                if started is not None:
                    if started > at:
                        return True
                elif finished is None or finished >= at:
                    return True
            return False

        return [
            DispatchRow(task_id, priority, at, priority == "interactive" and batch_waiting(at))
            for task_id, priority, at in rows
        ]

    # ------------------------------------------------------------ events

    def insert_events(self, rows: Iterable[tuple[str, int, str, str]]) -> None:
        """Insert ``(task_id, seq, event, data)`` rows (the caller holds the transaction)."""
        self._connection.executemany("INSERT OR IGNORE INTO task_events VALUES (?, ?, ?, ?)", rows)

    def events(self, task_id: str, after_seq: int = 0) -> list[EventRow]:
        rows = self._connection.execute(
            "SELECT seq, event, data FROM task_events WHERE task_id = ? AND seq > ? ORDER BY seq",
            (task_id, after_seq),
        ).fetchall()
        return [EventRow(*row) for row in rows]

    # ------------------------------------------------------------ settings

    def get_setting(self, key: str) -> str | None:
        row = self._connection.execute(
            "SELECT value FROM settings WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else str(row[0])

    def put_setting(self, key: str, value: str) -> None:
        self.settle()
        self._connection.execute(
            "INSERT INTO settings VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
            (key, value, value),
        )

    # ------------------------------------------------------------ run definitions
    # Run statements use the connection itself: every write of a run is inside a
    # transaction, whose start has put the loop turn's pending admissions in already.

    def insert_definition(self, row: DefinitionRow) -> None:
        self.settle()
        self._connection.execute(
            "INSERT INTO definitions VALUES (?, ?, ?, ?, ?)",
            (row.name, row.version, row.digest, self._canonical(row.document), row.created_ms),
        )

    def get_definition(self, name: str, version: str) -> DefinitionRow | None:
        row = self._connection.execute(
            "SELECT name, version, digest, document, created_ms FROM definitions "
            "WHERE name = ? AND version = ?",
            (name, version),
        ).fetchone()
        if row is None:
            return None
        return DefinitionRow(row[0], row[1], row[2], json.loads(row[3]), row[4])

    def definitions(self) -> list[DefinitionRow]:
        rows = self._connection.execute(
            "SELECT name, version, digest, document, created_ms FROM definitions "
            "ORDER BY name, version"
        ).fetchall()
        return [DefinitionRow(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]

    # ------------------------------------------------------------ runs

    def insert_run(self, run: RunRow, steps: Iterable[StepRow]) -> None:
        self.settle()
        self._connection.execute(
            f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run.run_id,
                run.session_id,
                run.definition,
                run.version,
                run.seed,
                run.max_parallel,
                self._canonical(run.inputs),
                run.state,
                run.created_ms,
                run.finished_ms,
            ),
        )
        self._connection.executemany(
            f"INSERT INTO run_steps ({_STEP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    step.run_id,
                    step.step_id,
                    step.position,
                    step.state,
                    step.seed,
                    step.output,
                    None if step.error is None else self._canonical(step.error),
                    step.started_ms,
                    step.finished_ms,
                    step.retry_at_ms,
                )
                for step in steps
            ],
        )

    def get_run(self, run_id: str) -> RunRow | None:
        row = self._connection.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        return None if row is None else _run(row)

    def live_runs(self) -> list[RunRow]:
        """Runs not ended (running or awaiting approval) in creation order (restart recovery)."""
        rows = self._connection.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE state IN ('running', 'awaiting_approval') "
            "ORDER BY created_ms, run_id"
        ).fetchall()
        return [_run(row) for row in rows]

    def list_runs(
        self,
        *,
        state: str | None,
        definition: str | None,
        created_from_ms: int | None,
        created_before_ms: int | None,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[RunRow]:
        """Runs in ``(created_ms, run_id)`` order, after the cursor's key, filtered."""
        clauses: list[str] = []
        values: list[Any] = []
        if state is not None:
            clauses.append("state = ?")
            values.append(state)
        if definition is not None:
            clauses.append("definition = ?")
            values.append(definition)
        if created_from_ms is not None:
            clauses.append("created_ms >= ?")
            values.append(created_from_ms)
        if created_before_ms is not None:
            clauses.append("created_ms < ?")
            values.append(created_before_ms)
        if after is not None:
            clauses.append("(created_ms > ? OR (created_ms = ? AND run_id > ?))")
            values.extend((after[0], after[0], after[1]))
        where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
        rows = self._connection.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs {where}ORDER BY created_ms, run_id LIMIT ?",
            (*values, limit),
        ).fetchall()
        return [_run(row) for row in rows]

    def running_runs_of_session(self, session_id: str) -> list[str]:
        rows = self._connection.execute(
            "SELECT run_id FROM runs WHERE session_id = ? "
            "AND state IN ('running', 'awaiting_approval') "
            "ORDER BY created_ms, run_id",
            (session_id,),
        ).fetchall()
        return [str(row[0]) for row in rows]

    def update_run(self, run_id: str, **fields: Any) -> None:
        self.settle()
        # Column names come from this package's code, never from a request.
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self._connection.execute(
            f"UPDATE runs SET {assignments} WHERE run_id = ?", (*fields.values(), run_id)
        )

    def run_steps(self, run_id: str) -> list[StepRow]:
        rows = self._connection.execute(
            f"SELECT {_STEP_COLUMNS} FROM run_steps WHERE run_id = ? ORDER BY position",
            (run_id,),
        ).fetchall()
        return [_step(row) for row in rows]

    def update_step(self, run_id: str, step_id: str, **fields: Any) -> None:
        self.settle()
        if fields.get("error") is not None:
            fields["error"] = self._canonical(fields["error"])
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self._connection.execute(
            f"UPDATE run_steps SET {assignments} WHERE run_id = ? AND step_id = ?",
            (*fields.values(), run_id, step_id),
        )

    def insert_step_attempt(self, row: StepAttemptRow) -> None:
        self.settle()
        self._connection.execute(
            "INSERT INTO step_attempts VALUES (?, ?, ?, ?, ?, ?)",
            (
                row.run_id,
                row.step_id,
                row.attempt,
                row.task_id,
                None if row.error is None else self._canonical(row.error),
                row.started_ms,
            ),
        )

    def step_attempts(self, run_id: str) -> list[StepAttemptRow]:
        rows = self._connection.execute(
            "SELECT run_id, step_id, attempt, task_id, error, started_ms FROM step_attempts "
            "WHERE run_id = ? ORDER BY step_id, attempt",
            (run_id,),
        ).fetchall()
        return [
            StepAttemptRow(r[0], r[1], r[2], r[3], None if r[4] is None else json.loads(r[4]), r[5])
            for r in rows
        ]

    def live_tasks_of_ended_runs(self) -> list[str]:
        """Tasks still queued or running whose step belongs to a run that has ended."""
        rows = self._connection.execute(
            "SELECT a.task_id FROM step_attempts a JOIN runs r ON r.run_id = a.run_id "
            "JOIN tasks t ON t.task_id = a.task_id "
            "WHERE r.state != 'running' AND t.state IN ('queued', 'running') ORDER BY a.task_id"
        ).fetchall()
        return [row[0] for row in rows]

    def insert_run_events(self, rows: Iterable[tuple[str, int, str, str]]) -> None:
        """Insert ``(run_id, seq, event, data)`` rows."""
        self.settle()
        self._connection.executemany("INSERT INTO run_events VALUES (?, ?, ?, ?)", rows)

    def run_events(self, run_id: str, after_seq: int = 0) -> list[EventRow]:
        rows = self._connection.execute(
            "SELECT seq, event, data FROM run_events WHERE run_id = ? AND seq > ? ORDER BY seq",
            (run_id, after_seq),
        ).fetchall()
        return [EventRow(*row) for row in rows]

    def task_output(self, task_id: str) -> str:
        """The texts of a task's ``token`` events in order: a step's output (ORCH-0328)."""
        rows = self._connection.execute(
            "SELECT data FROM task_events WHERE task_id = ? AND event = 'token' ORDER BY seq",
            (task_id,),
        ).fetchall()
        return "".join(json.loads(row[0])["text"] for row in rows)
