"""Checkpoints and the audit log in the store: a v3 database with runs upgrades keeping them;
audit entries cannot change or go, except with their run when the session is purged.

Spec: ORCH-0343, ORCH-0372, ORCH-0383, ORCH-0463.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from orchestrator.store import AuditRow, CheckpointRow, Store
from orchestrator.store.migrations import MIGRATIONS

V3_ROWS = """
INSERT INTO sessions VALUES ('s1', 60, '{}', 1000, 61000, 5000);
INSERT INTO definitions VALUES ('d', '1', 'digest', '{"name": "d"}', 900);
INSERT INTO runs VALUES ('run1', 's1', 'd', '1', 7, 4, '{}', 'running', 1000, NULL);
INSERT INTO run_steps VALUES ('run1', 'a', 0, 'pending', 11, NULL, NULL, NULL, NULL, NULL);
INSERT INTO run_events VALUES ('run1', 1, 'run.started', '{}');
"""


def v3_database(path: Path) -> None:
    """A database as the runs release left it: schema v3, with a running run."""
    with sqlite3.connect(path) as db:
        for script in MIGRATIONS[:3]:
            db.executescript(script)
        db.executescript(V3_ROWS)
        db.execute("PRAGMA user_version=3")
    db.close()


def _checkpoint(state: str = "pending") -> CheckpointRow:
    return CheckpointRow(
        "run1",
        "a.before.1",
        "a",
        "before",
        1,
        state,
        ["continue", "abort"],
        None,
        1_100,  # type: ignore[arg-type]
    )


def _entry(seq: int) -> AuditRow:
    return AuditRow("run1", seq, 1_100 + seq, "alice", "run.created", None, None, {"n": seq})


@pytest.mark.req("ORCH-0372", "ORCH-0463")
def test_a_v3_database_upgrades_keeping_its_runs_and_takes_the_new_states(tmp_path: Path) -> None:
    path = tmp_path / "orchq.db"
    v3_database(path)
    store = Store(path)
    assert store.foreign_keys_enabled()
    assert [r.run_id for r in store.live_runs()] == ["run1"]
    with store.transaction():
        store.update_run("run1", state="awaiting_approval")
        store.update_step("run1", "a", state="waiting_approval")
        store.save_checkpoint(_checkpoint())
    assert [r.state for r in store.live_runs()] == ["awaiting_approval"]
    assert store.run_checkpoints("run1") == [_checkpoint()]
    assert store.pending_checkpoint_counts() == {"before": 1}
    decided = _checkpoint("decided")
    decided.decision, decided.decided_by, decided.decided_ms = "continue", "bob", 1_200
    with store.transaction():
        store.save_checkpoint(decided)
    assert store.get_checkpoint("run1", "a.before.1") == decided
    assert store.pending_checkpoint_counts() == {}
    # A session with a run awaiting approval is not purged (ORCH-0343).
    assert store.purge_sessions(10_000) == 0
    store.close()


@pytest.mark.req("ORCH-0383")
def test_audit_entries_cannot_change_or_go(tmp_path: Path) -> None:
    path = tmp_path / "orchq.db"
    v3_database(path)
    store = Store(path)
    with store.transaction():
        store.insert_audit([_entry(1), _entry(2)])
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA foreign_keys=ON")
        for statement in (
            "UPDATE run_audit SET actor = 'mallory' WHERE seq = 1",
            "DELETE FROM run_audit WHERE seq = 2",
            "DELETE FROM run_audit",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                db.execute(statement)
    db.close()
    store = Store(path)
    assert store.audit_entries("run1") == [_entry(1), _entry(2)]
    store.close()


@pytest.mark.req("ORCH-0343", "ORCH-0383")
def test_a_purged_session_takes_its_runs_checkpoints_and_audit_entries(tmp_path: Path) -> None:
    path = tmp_path / "orchq.db"
    v3_database(path)
    store = Store(path)
    with store.transaction():
        store.save_checkpoint(_checkpoint("cancelled"))
        store.insert_audit([_entry(1)])
        store.update_run("run1", state="aborted", finished_ms=1_500)
    assert store.purge_sessions(10_000) == 1
    assert store.get_run("run1") is None
    assert store.run_checkpoints("run1") == []
    assert store.audit_entries("run1") == []
    store.close()
