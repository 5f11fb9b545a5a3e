"""Schema migrations: an older database upgrades in place, nothing lost, constraints kept.

Spec: ORCH-0138, ORCH-0139.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from orchestrator.store import AttemptRow, SessionRow, Store, StoreError, TaskRow
from orchestrator.store.migrations import MIGRATIONS

V1_ROWS = """
INSERT INTO sessions VALUES ('s1', 60, '{"k": "v"}', 1000, 61000, 5000);
INSERT INTO tasks VALUES ('t1', 's1', 1, 'default', 'batch', 'p', 4, '{"seed": 7}', 7,
    'completed', 'r2', 'mock', 'mock-1', 4, 'length', NULL, 1000, 1100, 1200);
INSERT INTO tasks VALUES ('t2', 's1', 2, 'default', 'interactive', 'q', 2, '{"seed": 8}', 8,
    'queued', NULL, NULL, NULL, 0, NULL, NULL, 1010, NULL, NULL);
INSERT INTO attempts VALUES ('t1', 1, 'r1', 'failed', 'WORKER_RESET', 1100, 1150);
INSERT INTO attempts VALUES ('t1', 2, 'r2', 'completed', NULL, 1150, 1200);
INSERT INTO task_events VALUES ('t1', 1, 'token', '{"index": 0}');
INSERT INTO task_events VALUES ('t1', 2, 'end', '{}');
"""


def v1_database(path: Path, rows: str = V1_ROWS) -> None:
    """A database as the first release left it: schema v1, with a finished and a queued task."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(MIGRATIONS[0])
        db.executescript(rows)
        db.execute("PRAGMA user_version=1")
    db.close()


@pytest.mark.req("ORCH-0139")
def test_a_v1_database_upgrades_keeping_every_row_and_the_cascades(tmp_path: Path) -> None:
    path = tmp_path / "orchq.db"
    v1_database(path)
    store = Store(path)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert store.foreign_keys_enabled()
    finished = store.get_task("t1")
    assert finished is not None
    assert (finished.priority, finished.state, finished.replica_id, finished.params) == (
        "batch",
        "completed",
        "r2",
        {"seed": 7},
    )
    assert [t.task_id for t in store.live_tasks()] == ["t2"]
    assert store.attempts("t1") == [
        AttemptRow("t1", 1, "r1", "failed", "WORKER_RESET", 1100, 1150),
        AttemptRow("t1", 2, "r2", "completed", None, 1150, 1200),
    ]
    assert [(e.seq, e.event) for e in store.events("t1")] == [(1, "token"), (2, "end")]
    # The rebuilt tables are still the children of sessions and tasks.
    store.update_task("t2", state="cancelled", finished_ms=1_300)
    assert store.purge_sessions(10_000) == 1
    assert store.get_task("t1") is None
    assert store.attempts("t1") == []
    assert store.events("t1") == []
    store.close()


@pytest.mark.req("ORCH-0138")
def test_the_upgraded_schema_still_refuses_unknown_states_and_orphans(tmp_path: Path) -> None:
    path = tmp_path / "orchq.db"
    v1_database(path)
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA foreign_keys=ON")
        for statement in (
            "UPDATE tasks SET state = 'paused' WHERE task_id = 't2'",
            "UPDATE tasks SET priority = 'urgent' WHERE task_id = 't2'",
            "UPDATE attempts SET state = 'queued' WHERE task_id = 't1' AND attempt = 1",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
                db.execute(statement)
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            db.execute("INSERT INTO attempts VALUES ('absent', 1, 'r1', 'running', NULL, 1, NULL)")
    db.close()


def test_an_upgrade_that_would_leave_an_orphan_is_refused_and_rolled_back(
    tmp_path: Path,
) -> None:
    path = tmp_path / "orchq.db"
    # Written with foreign keys off (sqlite3's default), as only a hand edit could.
    v1_database(path, V1_ROWS + "INSERT INTO task_events VALUES ('gone', 1, 'end', '{}');")
    refused = r"schema v2 refused: a row of table 'task_events' has no parent 'tasks' row"
    with pytest.raises(StoreError, match=refused):
        Store(path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        assert db.execute("SELECT count(*) FROM tasks").fetchone()[0] == 2
    db.close()


def test_no_per_task_statement_builds_an_ephemeral_index(tmp_path: Path) -> None:
    """An ``IN (...)`` list in a CHECK made SQLite build a temporary index on every insert.

    Not a timing: the program SQLite compiles for each statement that admission
    and execution run per task must not open an ephemeral table.
    """
    store = Store(tmp_path / "orchq.db")
    store.insert_session(SessionRow("s1", 60, {}, 1_000, 61_000, None))
    row = TaskRow(
        "t1", "s1", 1, "default", "interactive", "p", 4, {"seed": 1}, 1, "queued",
        None, None, None, 0, None, None, 1_000, None, None,
    )  # fmt: skip
    run: list[str] = []
    store._connection.set_trace_callback(run.append)
    store.insert_task(row)
    store.insert_attempt(AttemptRow("t1", 1, "r1", "running", None, 1_100, None))
    store.update_task("t1", state="running", replica_id="r1", started_ms=1_100)
    store.finish_attempt("t1", 1, "completed", None, 1_200)
    store.update_task("t1", state="completed", finished_ms=1_200, tokens_out=4)
    store._connection.set_trace_callback(None)
    written = [sql for sql in run if sql.split(None, 1)[0].upper() in ("INSERT", "UPDATE")]
    assert len(written) == 5, run
    for sql in written:
        program = [row[1] for row in store._connection.execute(f"EXPLAIN {sql}")]
        assert "OpenEphemeral" not in program, sql
    store.close()
