"""Versioned schema migrations. Append new steps; never edit a released one."""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: sessions -> tasks -> attempts / task_events, settings
    """
    CREATE TABLE sessions (
        session_id   TEXT PRIMARY KEY,
        ttl_seconds  INTEGER NOT NULL,
        metadata     TEXT NOT NULL,
        created_ms   INTEGER NOT NULL,
        expires_ms   INTEGER NOT NULL,
        ended_ms     INTEGER
    );
    CREATE TABLE tasks (
        task_id        TEXT PRIMARY KEY,
        session_id     TEXT NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
        admit_seq      INTEGER NOT NULL,
        pool_id        TEXT NOT NULL,
        priority       TEXT NOT NULL CHECK (priority IN ('interactive', 'batch')),
        prompt         TEXT NOT NULL,
        max_tokens     INTEGER NOT NULL,
        params         TEXT NOT NULL,
        seed           INTEGER NOT NULL,
        state          TEXT NOT NULL CHECK (state IN
                         ('queued', 'running', 'completed', 'failed', 'cancelled', 'dropped')),
        replica_id     TEXT,
        engine         TEXT,
        engine_version TEXT,
        tokens_out     INTEGER NOT NULL DEFAULT 0,
        finish_reason  TEXT,
        error          TEXT,
        created_ms     INTEGER NOT NULL,
        started_ms     INTEGER,
        finished_ms    INTEGER
    );
    CREATE INDEX tasks_by_session ON tasks(session_id, state);
    CREATE INDEX tasks_live ON tasks(state, admit_seq) WHERE state IN ('queued', 'running');
    CREATE TABLE attempts (
        task_id     TEXT NOT NULL REFERENCES tasks(task_id) ON DELETE CASCADE,
        attempt     INTEGER NOT NULL,
        replica_id  TEXT NOT NULL,
        state       TEXT NOT NULL CHECK (state IN ('running', 'completed', 'failed', 'cancelled')),
        error_kind  TEXT,
        started_ms  INTEGER NOT NULL,
        finished_ms INTEGER,
        PRIMARY KEY (task_id, attempt)
    ) WITHOUT ROWID;
    CREATE TABLE task_events (
        task_id  TEXT NOT NULL REFERENCES tasks(task_id) ON DELETE CASCADE,
        seq      INTEGER NOT NULL,
        event    TEXT NOT NULL,
        data     TEXT NOT NULL,
        PRIMARY KEY (task_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 2: tasks and attempts again, their CHECK constraints written as equalities.
    # SQLite evaluated `state IN (<constants>)` by building an ephemeral index on
    # every INSERT (and every UPDATE of an attempt's state): about 4 of a task
    # insert's 13 microseconds. A constraint cannot be altered,
    # so the tables are rebuilt (foreign keys are off while migrating, see
    # Store._migrate).
    """
    CREATE TABLE tasks_v2 (
        task_id        TEXT PRIMARY KEY,
        session_id     TEXT NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
        admit_seq      INTEGER NOT NULL,
        pool_id        TEXT NOT NULL,
        priority       TEXT NOT NULL CHECK (priority = 'interactive' OR priority = 'batch'),
        prompt         TEXT NOT NULL,
        max_tokens     INTEGER NOT NULL,
        params         TEXT NOT NULL,
        seed           INTEGER NOT NULL,
        state          TEXT NOT NULL CHECK (
                         state = 'queued' OR state = 'running' OR state = 'completed'
                         OR state = 'failed' OR state = 'cancelled' OR state = 'dropped'),
        replica_id     TEXT,
        engine         TEXT,
        engine_version TEXT,
        tokens_out     INTEGER NOT NULL DEFAULT 0,
        finish_reason  TEXT,
        error          TEXT,
        created_ms     INTEGER NOT NULL,
        started_ms     INTEGER,
        finished_ms    INTEGER
    );
    INSERT INTO tasks_v2 (
        task_id, session_id, admit_seq, pool_id, priority, prompt, max_tokens, params,
        seed, state, replica_id, engine, engine_version, tokens_out, finish_reason,
        error, created_ms, started_ms, finished_ms)
    SELECT
        task_id, session_id, admit_seq, pool_id, priority, prompt, max_tokens, params,
        seed, state, replica_id, engine, engine_version, tokens_out, finish_reason,
        error, created_ms, started_ms, finished_ms
    FROM tasks;
    DROP TABLE tasks;
    ALTER TABLE tasks_v2 RENAME TO tasks;
    CREATE INDEX tasks_by_session ON tasks(session_id, state);
    CREATE INDEX tasks_live ON tasks(state, admit_seq) WHERE state IN ('queued', 'running');
    CREATE TABLE attempts_v2 (
        task_id     TEXT NOT NULL REFERENCES tasks(task_id) ON DELETE CASCADE,
        attempt     INTEGER NOT NULL,
        replica_id  TEXT NOT NULL,
        state       TEXT NOT NULL CHECK (
                      state = 'running' OR state = 'completed' OR state = 'failed'
                      OR state = 'cancelled'),
        error_kind  TEXT,
        started_ms  INTEGER NOT NULL,
        finished_ms INTEGER,
        PRIMARY KEY (task_id, attempt)
    ) WITHOUT ROWID;
    INSERT INTO attempts_v2 (
        task_id, attempt, replica_id, state, error_kind, started_ms, finished_ms)
    SELECT task_id, attempt, replica_id, state, error_kind, started_ms, finished_ms
    FROM attempts;
    DROP TABLE attempts;
    ALTER TABLE attempts_v2 RENAME TO attempts;
    """,
    # 3: run definitions, runs, their steps, step attempts (-> tasks) and run events
    """
    CREATE TABLE definitions (
        name        TEXT NOT NULL,
        version     TEXT NOT NULL,
        digest      TEXT NOT NULL,
        document    TEXT NOT NULL,
        created_ms  INTEGER NOT NULL,
        PRIMARY KEY (name, version)
    ) WITHOUT ROWID;
    CREATE TABLE runs (
        run_id       TEXT PRIMARY KEY,
        session_id   TEXT NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
        definition   TEXT NOT NULL,
        version      TEXT NOT NULL,
        seed         INTEGER NOT NULL,
        max_parallel INTEGER NOT NULL,
        inputs       TEXT NOT NULL,
        state        TEXT NOT NULL CHECK (
                       state = 'running' OR state = 'completed' OR state = 'failed'
                       OR state = 'aborted'),
        created_ms   INTEGER NOT NULL,
        finished_ms  INTEGER,
        FOREIGN KEY (definition, version) REFERENCES definitions(name, version)
    );
    CREATE INDEX runs_by_created ON runs(created_ms, run_id);
    CREATE INDEX runs_by_session ON runs(session_id, state);
    CREATE TABLE run_steps (
        run_id      TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
        step_id     TEXT NOT NULL,
        position    INTEGER NOT NULL,
        state       TEXT NOT NULL CHECK (
                      state = 'pending' OR state = 'running' OR state = 'succeeded'
                      OR state = 'failed' OR state = 'skipped'),
        seed        INTEGER NOT NULL,
        output      TEXT,
        error       TEXT,
        started_ms  INTEGER,
        finished_ms INTEGER,
        retry_at_ms INTEGER,
        PRIMARY KEY (run_id, step_id)
    ) WITHOUT ROWID;
    CREATE TABLE step_attempts (
        run_id     TEXT NOT NULL,
        step_id    TEXT NOT NULL,
        attempt    INTEGER NOT NULL,
        task_id    TEXT REFERENCES tasks(task_id) ON DELETE CASCADE,
        error      TEXT,
        started_ms INTEGER NOT NULL,
        PRIMARY KEY (run_id, step_id, attempt),
        FOREIGN KEY (run_id, step_id) REFERENCES run_steps(run_id, step_id) ON DELETE CASCADE
    ) WITHOUT ROWID;
    CREATE INDEX step_attempts_by_task ON step_attempts(task_id);
    CREATE TABLE run_events (
        run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
        seq    INTEGER NOT NULL,
        event  TEXT NOT NULL,
        data   TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID;
    """,
    # 4: checkpoints and the audit log (spec sections 12.6, 12.7). runs and run_steps are
    # rebuilt for the states `awaiting_approval` and `waiting_approval` (a CHECK cannot be
    # altered); audit entries refuse UPDATE, and DELETE unless their run is gone (the
    # cascade of a purged session).
    """
    CREATE TABLE runs_v4 (
        run_id       TEXT PRIMARY KEY,
        session_id   TEXT NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
        definition   TEXT NOT NULL,
        version      TEXT NOT NULL,
        seed         INTEGER NOT NULL,
        max_parallel INTEGER NOT NULL,
        inputs       TEXT NOT NULL,
        state        TEXT NOT NULL CHECK (
                       state = 'running' OR state = 'awaiting_approval' OR state = 'completed'
                       OR state = 'failed' OR state = 'aborted'),
        created_ms   INTEGER NOT NULL,
        finished_ms  INTEGER,
        FOREIGN KEY (definition, version) REFERENCES definitions(name, version)
    );
    INSERT INTO runs_v4 SELECT * FROM runs;
    DROP TABLE runs;
    ALTER TABLE runs_v4 RENAME TO runs;
    CREATE INDEX runs_by_created ON runs(created_ms, run_id);
    CREATE INDEX runs_by_session ON runs(session_id, state);
    CREATE TABLE run_steps_v4 (
        run_id      TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
        step_id     TEXT NOT NULL,
        position    INTEGER NOT NULL,
        state       TEXT NOT NULL CHECK (
                      state = 'pending' OR state = 'running' OR state = 'waiting_approval'
                      OR state = 'succeeded' OR state = 'failed' OR state = 'skipped'),
        seed        INTEGER NOT NULL,
        output      TEXT,
        error       TEXT,
        started_ms  INTEGER,
        finished_ms INTEGER,
        retry_at_ms INTEGER,
        PRIMARY KEY (run_id, step_id)
    ) WITHOUT ROWID;
    INSERT INTO run_steps_v4 SELECT * FROM run_steps;
    DROP TABLE run_steps;
    ALTER TABLE run_steps_v4 RENAME TO run_steps;
    CREATE TABLE run_checkpoints (
        run_id        TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
        checkpoint_id TEXT NOT NULL,
        step_id       TEXT NOT NULL,
        "when"        TEXT NOT NULL CHECK (
                        "when" = 'before' OR "when" = 'after' OR "when" = 'failure'),
        number        INTEGER NOT NULL,
        state         TEXT NOT NULL CHECK (
                        state = 'pending' OR state = 'decided' OR state = 'cancelled'),
        decisions     TEXT NOT NULL,
        output        TEXT,
        requested_ms  INTEGER NOT NULL,
        decided_ms    INTEGER,
        decision      TEXT,
        decided_by    TEXT,
        prompt        TEXT,
        inputs        TEXT,
        error         TEXT,
        PRIMARY KEY (run_id, checkpoint_id),
        FOREIGN KEY (run_id, step_id) REFERENCES run_steps(run_id, step_id) ON DELETE CASCADE
    ) WITHOUT ROWID;
    CREATE INDEX run_checkpoints_listed ON run_checkpoints(requested_ms, run_id, checkpoint_id);
    CREATE INDEX run_checkpoints_pending ON run_checkpoints(state) WHERE state = 'pending';
    CREATE TABLE run_audit (
        run_id        TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
        seq           INTEGER NOT NULL,
        at_ms         INTEGER NOT NULL,
        actor         TEXT NOT NULL,
        action        TEXT NOT NULL,
        step_id       TEXT,
        checkpoint_id TEXT,
        detail        TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID;
    CREATE TRIGGER run_audit_no_update BEFORE UPDATE ON run_audit
    BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
    CREATE TRIGGER run_audit_no_delete BEFORE DELETE ON run_audit
    WHEN EXISTS (SELECT 1 FROM runs WHERE runs.run_id = OLD.run_id)
    BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END
    """,
    # 5: webhook subscriptions and their deliveries, an outbox written with the run events
    """
    CREATE TABLE webhooks (
        webhook_id TEXT PRIMARY KEY,
        url        TEXT NOT NULL,
        events     TEXT NOT NULL,
        secret     TEXT NOT NULL,
        source     TEXT NOT NULL CHECK (source = 'config' OR source = 'api'),
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE webhook_deliveries (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery_id  TEXT NOT NULL UNIQUE,
        webhook_id   TEXT NOT NULL REFERENCES webhooks(webhook_id) ON DELETE CASCADE,
        run_id       TEXT NOT NULL,
        event_id     INTEGER NOT NULL,
        state        TEXT NOT NULL CHECK (
                       state = 'pending' OR state = 'delivered' OR state = 'failed'),
        attempts     INTEGER NOT NULL DEFAULT 0,
        last_status  INTEGER,
        last_error   TEXT,
        next_ms      INTEGER NOT NULL,
        created_ms   INTEGER NOT NULL,
        delivered_ms INTEGER,
        FOREIGN KEY (run_id, event_id) REFERENCES run_events(run_id, seq) ON DELETE CASCADE
    );
    CREATE INDEX webhook_deliveries_pending ON webhook_deliveries(webhook_id, run_id, seq)
        WHERE state = 'pending';
    CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries(run_id, event_id);
    """,
    # 6: child runs (ORCH-0487, ORCH-0488): one row per child, unique per parent step and item.
    """
    CREATE TABLE run_children (
        parent_run_id  TEXT NOT NULL,
        parent_step_id TEXT NOT NULL,
        item           INTEGER NOT NULL CHECK (item >= 0),
        child_run_id   TEXT NOT NULL UNIQUE REFERENCES runs(run_id) ON DELETE CASCADE,
        PRIMARY KEY (parent_run_id, parent_step_id, item),
        FOREIGN KEY (parent_run_id, parent_step_id)
            REFERENCES run_steps(run_id, step_id) ON DELETE CASCADE
    ) WITHOUT ROWID;
    """,
)
