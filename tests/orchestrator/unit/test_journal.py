"""The journal: writes commit in order, readers see them only afterwards, failures keep them.

A real SQLite store; ``PRAGMA max_page_count`` makes it answer ``SQLITE_FULL``
as a full disk would, and raising it frees the "disk" again.

Spec: ORCH-0169, ORCH-0171, ORCH-0172.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from orchestrator.runtime.channel import TaskChannel
from orchestrator.runtime.journal import Journal
from orchestrator.store import SessionRow, Store, TaskRow


def _store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "orchq.db")
    store.insert_session(SessionRow("s1", 60, {}, 1_000, 61_000, None))
    store.insert_task(
        TaskRow("t1", "s1", 1, "default", "interactive", "p", 4, {"seed": 1}, 1, "running",
                None, None, None, 0, None, None, 1_000, None, None)
    )  # fmt: skip
    return store


def _fill(store: Store) -> None:
    pages = store._connection.execute("PRAGMA page_count").fetchone()[0]
    store._connection.execute(f"PRAGMA max_page_count = {pages}")


def _free(store: Store) -> None:
    store._connection.execute("PRAGMA max_page_count = 1000000")


def _stored(store: Store) -> list[int]:
    return [e.seq for e in store.events("t1")]


async def _turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


@pytest.mark.req("ORCH-0169")
def test_events_are_revealed_and_callbacks_run_only_after_their_commit(tmp_path: Path) -> None:
    store = _store(tmp_path)

    async def scenario() -> None:
        journal = Journal(store)
        channel = TaskChannel()
        published: list[str] = []
        for name in ("started", "token"):
            row = channel.append(name, "{}")
            journal.event(channel, "t1", row.seq, name, "{}")
        journal.write(lambda: store.update_task("t1", state="completed"))
        journal.then(lambda: published.append(f"seen {channel.last_seq}"))
        assert (channel.last_seq, published, _stored(store)) == (0, [], [])
        await _turns()  # the commit lands at the end of the loop turn
        assert _stored(store) == [1, 2]
        assert channel.last_seq == 2
        assert published == ["seen 2"], "a callback ran before its events were revealed"
        row = store.get_task("t1")
        assert row is not None and row.state == "completed"

    asyncio.run(scenario())


@pytest.mark.req("ORCH-0169", "ORCH-0171", "ORCH-0172")
def test_a_full_database_holds_everything_back_and_it_all_lands_once_writable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(tmp_path)
    caplog.set_level(logging.WARNING, logger="orchestrator.journal")

    async def scenario() -> None:
        recovered: list[bool] = []
        journal = Journal(
            store, on_recovered=lambda: recovered.append(True), retry_s=0.01, max_retry_s=0.05
        )
        channel = TaskChannel()
        _fill(store)
        for seq in range(1, 301):
            channel.append("token", "x" * 300)
            journal.event(channel, "t1", seq, "token", "x" * 300)
        closed: list[bool] = []
        journal.then(lambda: closed.append(True))
        await asyncio.sleep(0.2)  # several retries, all failing
        assert journal.failing
        assert (channel.last_seq, closed, _stored(store)) == (0, [], [])
        failures = [r for r in caplog.records if "cannot write the database" in r.getMessage()]
        assert len(failures) == 1, "the failure must be logged once, not at every retry"

        _free(store)
        await asyncio.sleep(0.2)
        assert not journal.failing
        assert _stored(store) == list(range(1, 301))
        assert channel.last_seq == 300 and closed == [True] and recovered == [True]
        assert any("succeed again" in r.getMessage() for r in caplog.records)

    asyncio.run(scenario())


def test_a_write_that_fails_on_its_own_is_logged_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(tmp_path)

    async def scenario() -> None:
        journal = Journal(store)

        def broken() -> None:
            store.update_task("t1", no_such_column=1)

        journal.write(broken)
        journal.write(lambda: store.update_task("t1", state="failed"))
        await _turns()
        row = store.get_task("t1")
        assert row is not None and row.state == "failed"
        assert not journal.failing

    asyncio.run(scenario())
    assert "journal write failed and was skipped" in caplog.text


def test_an_event_that_cannot_be_stored_is_skipped_and_the_others_commit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(tmp_path)

    async def scenario() -> None:
        journal = Journal(store)
        channel = TaskChannel()
        for seq in (1, 2):
            channel.append("token", "{}")
            journal.event(channel, "t1", seq, "token", "{}")
        journal.event(TaskChannel(), "no-such-task", 1, "token", "{}")  # FOREIGN KEY fails
        await _turns()
        assert _stored(store) == [1, 2]
        assert channel.last_seq == 2
        assert not journal.failing

    asyncio.run(scenario())
    assert "journal write failed and was skipped" in caplog.text
