"""The SQLite store: foreign keys, cascades, migrations, purge.

Spec: ORCH-0138, ORCH-0139.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from pathlib import Path

import pytest

from orchestrator.store import (
    AttemptRow,
    SessionRow,
    StorageUnavailable,
    Store,
    StoreError,
    TaskRow,
    is_storage_fault,
)
from orchestrator.store.migrations import MIGRATIONS


def session(session_id: str = "s1", *, ended_ms: int | None = None) -> SessionRow:
    return SessionRow(session_id, 60, {"k": "v"}, 1_000, 61_000, ended_ms)


def task(
    task_id: str = "t1", session_id: str = "s1", seq: int = 1, state: str = "queued"
) -> TaskRow:
    return TaskRow(
        task_id, session_id, seq, "default", "interactive", "p", 4, {"seed": 1}, 1, state,
        None, None, None, 0, None, None, 1_000, None, None,
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "orchq.db")


@pytest.mark.req("ORCH-0138")
def test_foreign_keys_are_enforced(store: Store) -> None:
    assert store.foreign_keys_enabled()
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        store.insert_task(task(session_id="absent"))


@pytest.mark.req("ORCH-0139")
def test_purging_a_session_cascades_to_tasks_attempts_and_events(store: Store) -> None:
    store.insert_session(session(ended_ms=5_000))
    store.insert_task(task(state="completed"))
    store.insert_attempt(AttemptRow("t1", 1, "r1", "completed", None, 1_000, 2_000))
    with store.transaction():
        store.insert_events([("t1", 1, "end", "{}")])
    assert store.purge_sessions(10_000) == 1
    assert store.get_task("t1") is None
    assert store.attempts("t1") == []
    assert store.events("t1") == []


def test_purge_keeps_sessions_with_live_tasks_and_recent_ones(store: Store) -> None:
    store.insert_session(session("old-live", ended_ms=5_000))
    store.insert_task(task("t-live", "old-live", state="running"))
    store.insert_session(session("recent", ended_ms=50_000))
    assert store.purge_sessions(10_000) == 0
    assert store.get_session("old-live") is not None
    assert store.get_session("recent") is not None


def test_migrations_are_versioned_and_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "orchq.db"
    Store(path).close()
    reopened = Store(path)
    version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    assert version == len(MIGRATIONS)
    reopened.close()


def test_a_newer_schema_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "orchq.db"
    Store(path).close()
    sqlite3.connect(path).execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="newer than this build"):
        Store(path)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "orchq.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open database"):
        Store(path)


def test_events_replay_in_order_after_a_sequence_number(store: Store) -> None:
    store.insert_session(session())
    store.insert_task(task())
    with store.transaction():
        store.insert_events([("t1", seq, "token", f'{{"i":{seq}}}') for seq in (3, 1, 2)])
        store.insert_events([("t1", 2, "token", "duplicate ignored")])
    assert [e.seq for e in store.events("t1")] == [1, 2, 3]
    assert [e.seq for e in store.events("t1", after_seq=1)] == [2, 3]
    assert store.events("t1")[1].data == '{"i":2}'


def test_live_tasks_come_back_in_admission_order(store: Store) -> None:
    store.insert_session(session())
    for seq, task_id in [(3, "c"), (1, "a"), (2, "b")]:
        store.insert_task(task(task_id, seq=seq))
    store.update_task("b", state="completed")
    assert [t.task_id for t in store.live_tasks()] == ["a", "c"]


def test_settings_are_upserted(store: Store) -> None:
    assert store.get_setting("x") is None
    store.put_setting("x", "1")
    store.put_setting("x", "2")
    assert store.get_setting("x") == "2"


def _committed_task_ids(store: Store) -> set[str]:
    """What another connection sees: only committed rows."""
    with sqlite3.connect(store.path) as reader:
        return {row[0] for row in reader.execute("SELECT task_id FROM tasks")}


@pytest.mark.req("ORCH-0138")
def test_grouped_admissions_are_seen_by_every_statement_before_they_commit(
    store: Store,
) -> None:
    store.insert_session(session())

    async def admit_two() -> None:
        first = store.insert_task_grouped(task("t1", seq=1))
        second = store.insert_task_grouped(task("t2", seq=2))
        # Not yet committed, but this connection's next statement sees both.
        assert [row.task_id for row in store.live_tasks()] == ["t1", "t2"]
        assert _committed_task_ids(store) == set()
        await asyncio.gather(first, second)
        assert _committed_task_ids(store) == {"t1", "t2"}

    asyncio.run(admit_two())


@pytest.mark.req("ORCH-0138")
def test_an_admission_that_fails_in_its_group_fails_alone(store: Store) -> None:
    store.insert_session(session())

    async def admit_three() -> list[BaseException | None]:
        futures = [
            store.insert_task_grouped(task("t1", seq=1)),
            store.insert_task_grouped(task("t-orphan", "absent", seq=2)),
            store.insert_task_grouped(task("t3", seq=3)),
        ]
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        return [outcome if isinstance(outcome, BaseException) else None for outcome in outcomes]

    first, orphan, third = asyncio.run(admit_three())
    assert first is None and third is None
    assert isinstance(orphan, StoreError) and "FOREIGN KEY" in str(orphan)
    assert _committed_task_ids(store) == {"t1", "t3"}


class Participant:
    """A CommitParticipant that writes queued stream events and records what it was told."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.queue: list[tuple[str, int, str, str]] = []
        self.writing: list[tuple[str, int, str, str]] = []
        self.told: list[str] = []

    def write_pending(self) -> None:
        self.writing, self.queue = self.queue, []
        self.store.insert_events(self.writing)

    def committed(self) -> None:
        self.told.append(f"committed {len(self.writing)}")
        self.writing = []

    def failed(self, error: StoreError) -> None:
        self.told.append(f"failed {type(error).__name__}")
        self.queue[:0], self.writing = self.writing, []


def _events(n: int, task_id: str = "t1") -> list[tuple[str, int, str, str]]:
    return [(task_id, seq, "token", "x" * 200) for seq in range(1, n + 1)]


def _stored(store: Store) -> tuple[set[str], int]:
    with sqlite3.connect(store.path) as reader:
        tasks = {t for (t,) in reader.execute("SELECT task_id FROM tasks")}
        (events,) = reader.execute("SELECT COUNT(*) FROM task_events").fetchone()
    return tasks, events


def test_a_participant_s_writes_commit_with_the_admission_group(store: Store) -> None:
    store.insert_session(session())
    store.insert_task(task("t1"))
    participant = Participant(store)
    store.attach(participant)

    async def admit_and_write() -> None:
        admitted = store.insert_task_grouped(task("t2", seq=2))
        participant.queue.extend(_events(3))
        await admitted  # one commit: the admission and the participant's writes
        assert participant.told == ["committed 3"]

    asyncio.run(admit_and_write())
    assert _stored(store) == ({"t1", "t2"}, 3)


@pytest.mark.req("ORCH-0170", "ORCH-0171")
def test_a_full_database_fails_the_group_and_the_participant_keeps_its_writes(
    store: Store,
) -> None:
    """``max_page_count`` makes SQLite answer SQLITE_FULL, as a full disk would."""
    store.insert_session(session())
    store.insert_task(task("t1"))
    participant = Participant(store)
    store.attach(participant)
    pages = store._connection.execute("PRAGMA page_count").fetchone()[0]
    store._connection.execute(f"PRAGMA max_page_count = {pages}")

    async def while_full() -> BaseException | None:
        admitted = store.insert_task_grouped(task("t2", seq=2))
        participant.queue.extend(_events(300))
        outcome = await asyncio.gather(admitted, return_exceptions=True)
        return outcome[0] if isinstance(outcome[0], BaseException) else None

    error = asyncio.run(while_full())
    assert isinstance(error, StorageUnavailable), error
    assert is_storage_fault(error)
    assert participant.told == ["failed StorageUnavailable"]
    assert participant.queue == _events(300), "the writes were lost with the commit"
    assert _stored(store) == ({"t1"}, 0), "a failed group left rows behind"

    store._connection.execute("PRAGMA max_page_count = 1000000")

    async def once_writable() -> None:
        store.commit()

    asyncio.run(once_writable())
    assert participant.told[-1] == "committed 300"
    assert _stored(store) == ({"t1"}, 300)


def test_a_task_row_s_values_are_its_fields_in_order() -> None:
    row = TaskRow(*(f"value {n}" for n in range(len(dataclasses.fields(TaskRow)))))
    assert row.values() == dataclasses.astuple(row)
