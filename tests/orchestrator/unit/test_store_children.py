"""Child-run links in the store: one child per parent step and item, gone with the session.

A database of the checkpoints release (schema v4) upgrades and takes links; a
second child for the same item is refused (creation is idempotent per item,
ORCH-0487); purging the session takes the parent, its children and their links
(ORCH-0343).

Spec: ORCH-0343, ORCH-0487, ORCH-0488.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from orchestrator.store import ChildRow, Store
from orchestrator.store.migrations import MIGRATIONS

V4_ROWS = """
INSERT INTO sessions VALUES ('s1', 60, '{}', 1000, 61000, 5000);
INSERT INTO definitions VALUES ('d', '1', 'digest', '{"name": "d"}', 900);
INSERT INTO runs VALUES ('top', 's1', 'd', '1', 7, 4, '{}', 'completed', 1000, 2000);
INSERT INTO run_steps VALUES ('top', 'each', 0, 'succeeded', 11, '[]', NULL, NULL, NULL, NULL);
INSERT INTO runs VALUES ('kid0', 's1', 'd', '1', 8, 4, '{}', 'completed', 1000, 2000);
INSERT INTO runs VALUES ('kid1', 's1', 'd', '1', 9, 4, '{}', 'completed', 1000, 2000);
"""


def v4_database(path: Path) -> None:
    """A database as the checkpoints release left it: schema v4, runs without links."""
    with sqlite3.connect(path) as db:
        for script in MIGRATIONS[:4]:
            db.executescript(script)
        db.executescript(V4_ROWS)
        db.execute("PRAGMA user_version=4")
    db.close()


@pytest.mark.req("ORCH-0487", "ORCH-0488", "ORCH-0343")
def test_one_child_per_item_linked_both_ways_and_purged_with_the_session(tmp_path: Path) -> None:
    path = tmp_path / "orchq.db"
    v4_database(path)
    store = Store(path)
    assert store.foreign_keys_enabled()
    first = ChildRow("top", "each", 0, "kid0")
    with store.transaction():
        store.insert_child(first)
    with pytest.raises(sqlite3.IntegrityError), store.transaction():
        store.insert_child(ChildRow("top", "each", 0, "kid1"))  # a second child for item 0
    with pytest.raises(sqlite3.IntegrityError), store.transaction():
        store.insert_child(ChildRow("top", "nope", 1, "kid1"))  # no such parent step
    with store.transaction():
        store.insert_child(ChildRow("top", "each", 1, "kid1"))
    assert store.children_of("top") == [first, ChildRow("top", "each", 1, "kid1")]
    assert store.parent_of("kid0") == first
    assert store.parent_of("top") is None
    assert store.purge_sessions(10_000) == 1
    assert store.children_of("top") == []
    assert store.get_run("kid0") is None
    store.close()
