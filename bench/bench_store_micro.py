"""Micro-benchmark of the admission insert: where SQLite time goes, and what would cut it.

    .venv/bin/python -m bench.bench_store_micro [--prefill 20000] [--inserts 4000]

In-process, no HTTP: ``Store.insert_task`` on orchestratord's own schema (its
migrations) against variants that isolate one cost each, all on a file
database with WAL and ``synchronous=NORMAL``, and a table already holding
``--prefill`` tasks (the admission benchmark leaves ~15-20k). Variants are
interleaved over several rounds; medians in microseconds per admitted task.

- ``store.insert_task``: what the server does now (autocommit, random ids).
- ``batch N``: the same rows, N per transaction (group commit).
- ``ordered ids``: ids that sort by admission time (appends to the B-tree's
  right edge instead of a random leaf).
- ``without rowid``: the tasks table keyed by ``task_id`` directly (one
  B-tree fewer per insert).
- ``no secondary indexes``: attribution only (the indexes are needed).
- ``batch 64, v1 CHECKs (IN lists)``: schema v1, whose CHECK constraints made
  SQLite build an ephemeral index per insert (migration 2 rewrote them).
- ``baseline row``: bench/baseline_app.py's one-table insert.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench._common import fmt, median, table
from orchestrator.store import SessionRow, Store, TaskRow
from orchestrator.store.migrations import MIGRATIONS

PARAMS = {
    "seed": 5,
    "sampler_profile_version": "v1",
    "determinism": "best_effort",
    "temperature": 1.0,
    "top_p": 1.0,
}


def _row(task_id: str, seq: int) -> TaskRow:
    return TaskRow(
        task_id,
        "sess_bench",
        seq,
        "default",
        "interactive",
        "Write a haiku about queues.",
        1,
        dict(PARAMS),
        5,
        "queued",
        None,
        None,
        None,
        0,
        None,
        None,
        1_700_000_000_000,
        None,
        None,
    )


def _store(workdir: Path, name: str, schema_edit: Callable[[str], str] | None = None) -> Store:
    path = workdir / f"{name}.db"
    if schema_edit is not None:
        # Build the edited schema first; Store then finds it at the current version.
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        for statement in schema_edit("\n".join(MIGRATIONS)).split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version={len(MIGRATIONS)}")
        db.close()
    store = Store(path)
    store.insert_session(SessionRow("sess_bench", 3600, {}, 0, 10**15, None))
    return store


def _prefill(store: Store, n: int, ordered: bool) -> int:
    with store.transaction():
        for i in range(n):
            task_id = f"task_{i:012x}{secrets.token_hex(6)}" if ordered else _rand_id()
            store.insert_task(_row(task_id, i + 1))
    return n


def _rand_id() -> str:
    return f"task_{secrets.token_hex(12)}"


def _timed(store: Store, first_seq: int, n: int, *, batch: int, ordered: bool) -> float:
    ids = [
        f"task_{first_seq + i:012x}{secrets.token_hex(6)}" if ordered else _rand_id()
        for i in range(n)
    ]
    rows = [_row(task_id, first_seq + i + 1) for i, task_id in enumerate(ids)]
    start = time.perf_counter()
    if batch == 1:
        for row in rows:
            store.insert_task(row)
    else:
        for at in range(0, n, batch):
            with store.transaction():
                for row in rows[at : at + batch]:
                    store.insert_task(row)
    return (time.perf_counter() - start) / n * 1e6


def _baseline(workdir: Path, prefill: int, n: int) -> float:
    db = sqlite3.connect(workdir / "baseline.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS tasks (task_id TEXT PRIMARY KEY, session_id TEXT NOT NULL,"
        " prompt TEXT NOT NULL, max_tokens INTEGER NOT NULL, body TEXT NOT NULL)"
    )
    body = json.dumps({"session_id": "sess_bench", "prompt": "Write a haiku.", "max_tokens": 1})
    count = db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
    if count < prefill:
        db.execute("BEGIN")
        for _ in range(prefill - count):
            db.execute("INSERT INTO tasks VALUES (?, ?, ?, ?, ?)", (_rand_id(), "s", "p", 1, body))
        db.execute("COMMIT")
    ids = [_rand_id() for _ in range(n)]
    start = time.perf_counter()
    for task_id in ids:
        db.execute(
            "INSERT INTO tasks VALUES (?, ?, ?, ?, ?)",
            (task_id, "sess_bench", "Write a haiku.", 1, body),
        )
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed / n * 1e6


def bench(prefill: int, inserts: int, rounds: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="orchq-store-micro-") as tmp:
        workdir = Path(tmp)
        plain = _store(workdir, "plain")
        ordered = _store(workdir, "ordered")
        no_rowid = _store(
            workdir,
            "norowid",
            lambda s: s.replace(
                "    );\n    INSERT INTO tasks_v2", "    ) WITHOUT ROWID;\n    INSERT INTO tasks_v2"
            ),
        )
        no_index = _store(
            workdir,
            "noindex",
            lambda s: s.replace(
                "CREATE INDEX tasks_by_session ON tasks(session_id, state);", ""
            ).replace(
                "CREATE INDEX tasks_live ON tasks(state, admit_seq) WHERE state IN "
                "('queued', 'running');",
                "",
            ),
        )
        # Schema v1 alone: its CHECK constraints were IN lists (see migration 2).
        in_lists = _store(workdir, "inlists", lambda _: MIGRATIONS[0])
        seqs = {
            "store.insert_task (now)": _prefill(plain, prefill, False),
            "batch 64, v1 CHECKs (IN lists)": _prefill(in_lists, prefill, False),
            "ordered ids": _prefill(ordered, prefill, True),
            "without rowid": _prefill(no_rowid, prefill, False),
            "no secondary indexes": _prefill(no_index, prefill, False),
        }
        stores = {
            "store.insert_task (now)": (plain, 1, False),
            "batch 8": (plain, 8, False),
            "batch 64": (plain, 64, False),
            "batch 64, v1 CHECKs (IN lists)": (in_lists, 64, False),
            "ordered ids": (ordered, 1, True),
            "without rowid": (no_rowid, 1, False),
            "no secondary indexes": (no_index, 1, False),
        }
        for _ in range(rounds):
            for name, (store, batch, is_ordered) in stores.items():
                key = {
                    "batch 8": "store.insert_task (now)",
                    "batch 64": "store.insert_task (now)",
                }.get(name, name)
                us = _timed(store, seqs[key], inserts, batch=batch, ordered=is_ordered)
                seqs[key] += inserts
                out.setdefault(name, []).append(us)
            out.setdefault("baseline row (one table)", []).append(
                _baseline(workdir, prefill, inserts)
            )
        for store, _, _ in stores.values():
            store.close()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prefill", type=int, default=20_000)
    parser.add_argument("--inserts", type=int, default=3_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    result = bench(args.prefill, args.inserts, args.rounds)
    now = median(result["store.insert_task (now)"])
    rows = [
        [name, fmt(median(v), 1), f"{median(v) / now:.2f}", " / ".join(fmt(x, 1) for x in v)]
        for name, v in result.items()
    ]
    print(table(["variant", "us per task (median)", "vs now", "rounds"], rows))


if __name__ == "__main__":
    main()
