"""WAL checkpoints off the event loop (orchestrator/store/checkpoint.py).

The loop must not checkpoint inside its commits, the log must still stay
bounded under a writer that never pauses, and nothing written may be lost.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.config import parse_config
from orchestrator.runtime import Orchestrator
from orchestrator.store import Store
from orchestrator.store.checkpoint import WalCheckpointer

PAGE = 4096
ROWS_PER_COMMIT = 200  # ~100 pages of log per commit with 2 KB values
THRESHOLD_FRAMES = 64


def _commit_round(store: Store, checkpointer: WalCheckpointer, round_no: int) -> None:
    """One transaction, left uncommitted while the thread copies what came before it.

    That is a writer that never pauses: whenever a background copy completes,
    a transaction is open, so the log cannot start over by itself.
    """
    with store.transaction():
        for row in range(ROWS_PER_COMMIT):
            store.put_setting(f"r{round_no}-{row}", "x" * 2000)
        deadline = time.monotonic() + 5.0
        while checkpointer.waiting_frames() >= THRESHOLD_FRAMES:
            assert time.monotonic() < deadline, "the thread did not copy the log"
            time.sleep(0.005)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "orchq.db")
    store.checkpoint_in_background(threshold_frames=THRESHOLD_FRAMES)
    yield store
    store.close()


def test_waiting_frames_reads_what_sqlite_counts(tmp_path: Path) -> None:
    path = str(tmp_path / "raw.db")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE t (v TEXT)")
    checkpointer = WalCheckpointer(path, threshold_frames=10**9)
    try:
        for _ in range(3):
            writer.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 200)
        waiting = checkpointer.waiting_frames()
        _, log_frames, copied = writer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert waiting == log_frames == copied > 0
        assert checkpointer.waiting_frames() == 0
    finally:
        checkpointer.close()
        writer.close()


def test_commits_do_not_checkpoint_on_the_loop(store: Store) -> None:
    connection = store._connection  # the pragma is per connection
    assert connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    assert store.checkpointing_in_background


def test_the_log_stays_bounded_under_a_writer_that_never_pauses(
    store: Store, tmp_path: Path
) -> None:
    checkpointer = store._checkpointer
    assert checkpointer is not None
    wal = tmp_path / "orchq.db-wal"
    largest = 0
    rounds = 12
    for round_no in range(rounds):
        _commit_round(store, checkpointer, round_no)
        largest = max(largest, wal.stat().st_size)
    # Every other round: the thread copies a round while the next is open, the
    # commit of that next one finishes the copy, and the log starts over.
    assert checkpointer.copies >= rounds // 2 - 1
    assert checkpointer.finishes >= rounds // 2 - 1
    # Without the restarts the log would hold all rounds (~100 pages each).
    assert largest < 4 * (ROWS_PER_COMMIT // 2) * PAGE


def test_nothing_written_is_lost(store: Store, tmp_path: Path) -> None:
    checkpointer = store._checkpointer
    assert checkpointer is not None
    for round_no in range(6):
        _commit_round(store, checkpointer, round_no)
    assert checkpointer.finishes > 0
    store.close()
    reopened = sqlite3.connect(tmp_path / "orchq.db")
    try:
        assert reopened.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert reopened.execute("SELECT COUNT(*) FROM settings").fetchone()[0] == (
            6 * ROWS_PER_COMMIT
        )
    finally:
        reopened.close()


def test_close_stops_the_thread(tmp_path: Path) -> None:
    store = Store(tmp_path / "orchq.db")
    store.checkpoint_in_background()
    assert any(t.name == "orchq-wal-checkpointer" for t in threading.enumerate())
    store.close()
    assert not any(t.name == "orchq-wal-checkpointer" for t in threading.enumerate())


def test_an_in_memory_store_keeps_sqlite_checkpoints() -> None:
    store = Store(":memory:")
    store.checkpoint_in_background()
    assert not store.checkpointing_in_background
    store.close()


def test_a_running_orchestrator_checkpoints_in_the_background(tmp_path: Path) -> None:
    config = parse_config({"database": str(tmp_path / "orchq.db")})

    async def run() -> tuple[bool, bool]:
        orchestrator = Orchestrator(config)
        await orchestrator.start()
        try:
            on = orchestrator.store.checkpointing_in_background
        finally:
            await orchestrator.stop()
        return on, any(t.name == "orchq-wal-checkpointer" for t in threading.enumerate())

    on, thread_left = asyncio.run(run())
    assert on
    assert not thread_left
