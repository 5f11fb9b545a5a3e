"""Session-first factory fixtures and the persisted-settings guard (issue 4, seeds/000).

seeds/000 is a suite that went red for reasons no failing test could explain:
job rows inserted before their session (a foreign-key failure), a persisted
routing ``fallback_mode`` written by one file and read by another file running
in a parallel worker, and a timed-out scenario whose late call consumed the
next test's mock response. These fixtures make the first two impossible or
loudly attributed (the third is :mod:`harness.plugin.scripted`'s job):

**Parents first.** ``make_task()`` without a ``session_id`` creates its session;
``make_attempt()`` brings its task and session and waits until the task was
dispatched. They go over the public API, so they work against any target
(in-process or ``--orch-url``); every session they create is deleted at
teardown. ``orch_db`` is the same at the store level: a real orchestratord
SQLite store (foreign keys ON) whose ``make_*`` insert rows parents-first
through the store's own API.

**Persisted settings.** Every test whose fixture closure includes
``orch_target`` (``orch_client`` and the ``make_*`` fixtures do) against a
shared target reads the routing ``fallback_mode`` before it runs and restores
it afterwards (``PUT /v1/admin/routing``). Restoring is not enough against ONE shared live target
under xdist: tests of other workers run *concurrently* and would see the
change while it lasts. So, against ``--orch-url``, every test holds an
inter-process lock keyed by the target URL (a file in the run's shared temp
root, ``tmp_path_factory.getbasetemp().parent`` under xdist): *shared* by
default, *exclusive* for tests marked ``@pytest.mark.orch_exclusive`` (tests
that change persisted settings declare it and then cannot be observed by any
other test). A test that changes a persisted setting *without* the marker is
failed at teardown, by name, with what it changed (and the setting is
restored); a concurrent test that finds the setting away from the run's
baseline waits for that restore instead of running on the leaked value. We
chose lock + blame over only re-reading at teardown because re-reading alone
names the culprit but still lets the innocent test fail; over exclusivity for
every test because that would serialise the whole suite against a live target.
A turnstile lock keeps exclusive waiters from being starved by a stream of
shared holders. An in-process target is a private server and database made
for one test and discarded after it: nothing it persists can reach another
test, so the guard costs it nothing (no lock, no extra requests).

``--orch-guards=off`` turns these guards (and the leak guard) off, to show what
they prevent.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pytest

from harness.plugin.target import LIVE_TARGET_SKIP, Target, live_url

if TYPE_CHECKING:
    from harness.engine.control import EngineControl
    from harness.engine.server import EngineThread
    from orchestrator.client import OrchClient
    from orchestrator.schemas import Attempt, SessionCreated, Task, TaskAdmitted
    from orchestrator.store.db import AttemptRow, SessionRow, Store, TaskRow

__all__ = [
    "EXCLUSIVE_MARKER",
    "Dispatched",
    "Factories",
    "MakeAttempt",
    "MakeSession",
    "MakeTask",
    "OrchDB",
    "TargetLock",
    "guards_enabled",
]

EXCLUSIVE_MARKER = "orch_exclusive"
LOCK_TIMEOUT_S = 300.0
"""Longest wait for the target lock: a hung holder fails the waiter loudly, not the run silently."""
RESTORE_WAIT_S = 30.0
"""Longest wait for another test's teardown to restore a setting it leaked."""
DISPATCH_TIMEOUT_S = 10.0
TERMINAL_STATES = frozenset({"completed", "failed", "cancelled", "dropped"})


def guards_enabled(config: pytest.Config) -> bool:
    """False under ``--orch-guards=off`` (the option lives in :mod:`harness.plugin.leaks`)."""
    return bool(config.getoption("orch_guards", "on") != "off")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{EXCLUSIVE_MARKER}: the test changes persisted settings of the target (routing "
        "fallback_mode); against --orch-url it runs while no other test uses the target",
    )


# ---------------------------------------------------------------- the target lock


class TargetLock:
    """A readers-writer lock across processes (xdist workers) for one target URL.

    ``flock`` on two files in a directory every worker of the run shares: the
    turnstile (held briefly by everyone, and by a writer while it waits) and
    the main lock (shared or exclusive). Locks die with their process, so a
    crashed worker never wedges the run. The directory also holds the run's
    baseline value of each persisted setting.
    """

    def __init__(self, directory: Path, url: str) -> None:
        key = hashlib.sha256(url.encode()).hexdigest()[:16]
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"orchq-target-{key}.lock"
        self._turnstile_path = directory / f"orchq-target-{key}.turnstile"
        self._baseline_dir = directory
        self._key = key
        self._main: IO[str] | None = None

    def acquire(self, *, exclusive: bool, timeout: float = LOCK_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        with open(self._turnstile_path, "a+") as turnstile:
            _flock(turnstile, fcntl.LOCK_EX, deadline, self.path)
            main = open(self.path, "a+")  # noqa: SIM115 (held until release)
            try:
                if exclusive:
                    _flock(main, fcntl.LOCK_EX, deadline, self.path)
                else:
                    fcntl.flock(turnstile, fcntl.LOCK_UN)
                    _flock(main, fcntl.LOCK_SH, deadline, self.path)
            except BaseException:
                main.close()
                raise
        self._main = main  # closing the turnstile file released it

    def release(self) -> None:
        if self._main is not None:
            self._main.close()
            self._main = None

    def baseline(self, name: str, current: str) -> str:
        """The run's value of setting ``name``: the first value any test of the run saw."""
        path = self._baseline_dir / f"orchq-target-{self._key}.{name}"
        scratch = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex}")
        scratch.write_text(current, encoding="utf-8")
        try:
            os.link(scratch, path)  # atomic create-if-absent; the loser reads the winner's
        except FileExistsError:
            pass
        finally:
            scratch.unlink()
        return path.read_text(encoding="utf-8")


def _flock(handle: IO[str], operation: int, deadline: float, path: Path) -> None:
    while True:
        try:
            fcntl.flock(handle, operation | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise pytest.fail.Exception(
                    f"orchq: could not take the target lock {path} within {LOCK_TIMEOUT_S:.0f} s "
                    "(another test holds the target for too long)",
                    pytrace=False,
                ) from None
            time.sleep(0.005)


def _lock_directory(config: pytest.Config, factory: pytest.TempPathFactory) -> Path:
    base = factory.getbasetemp()
    # Under xdist every worker has <root>/popen-gwN; the root is shared by the run.
    return base.parent if hasattr(config, "workerinput") else base


# ---------------------------------------------------------------- the settings guard


def _read_mode(client: OrchClient) -> str | None:
    from orchestrator.client import OrchClientError

    try:
        return client.get_routing().fallback_mode
    except OrchClientError:
        return None  # a broken or stopped server: nothing to guard, no reason to error


def _write_mode(client: OrchClient, mode: str) -> None:
    from orchestrator.client import OrchClientError

    with contextlib.suppress(OrchClientError):
        client.set_routing(mode)  # type: ignore[arg-type]


def _wait_for_mode(client: OrchClient, mode: str, timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    current = _read_mode(client)
    while current is not None and current != mode and time.monotonic() < deadline:
        time.sleep(0.05)
        current = _read_mode(client)
    return current


@pytest.fixture(autouse=True)
def _orch_persisted_settings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """On a shared target: lock, read ``fallback_mode`` before, restore it after, blame."""
    if "orch_target" not in request.fixturenames or not guards_enabled(request.config):
        yield
        return
    target: Target = request.getfixturevalue("orch_target")
    if target.in_process:
        yield  # a private server and database made for this test: nothing outlives it
        return
    exclusive = request.node.get_closest_marker(EXCLUSIVE_MARKER) is not None
    lock = TargetLock(_lock_directory(request.config, tmp_path_factory), target.url)
    with target.client(timeout=10.0) as client:
        lock.acquire(exclusive=exclusive)
        try:
            before = _read_mode(client)
            if before is not None:
                baseline = lock.baseline("fallback_mode", before)
                if before != baseline and not exclusive:
                    # A test elsewhere leaked it and has not reached its teardown yet.
                    now = _wait_for_mode(client, baseline, RESTORE_WAIT_S)
                    if now != baseline:
                        pytest.fail(
                            f"orchq: the target's persisted routing fallback_mode is {now!r}, "
                            f"not the run's {baseline!r}, and no test restored it within "
                            f"{RESTORE_WAIT_S:.0f} s (ORCH-0127: the routing setting is "
                            "persisted): a test changed it without "
                            f"@pytest.mark.{EXCLUSIVE_MARKER}",
                            pytrace=False,
                        )
                    before = baseline
            yield
            after = _read_mode(client)
            if before is not None and after is not None and after != before:
                _write_mode(client, before)
                if not exclusive:
                    pytest.fail(
                        f"orchq: {request.node.nodeid} changed the target's persisted routing "
                        f"fallback_mode from {before!r} to {after!r} and left it so "
                        "(ORCH-0127: the routing setting is persisted, so other tests would "
                        f"see it); restored. Mark it @pytest.mark.{EXCLUSIVE_MARKER} so no "
                        "concurrent test can observe the change.",
                        pytrace=False,
                    )
        finally:
            lock.release()


# ---------------------------------------------------------------- API factories


@dataclass(frozen=True)
class Dispatched:
    """What ``make_attempt`` returns: a task that has been dispatched to a replica."""

    session_id: str
    admitted: TaskAdmitted
    task: Task
    """``GET /v1/tasks/{id}`` as first seen with an attempt."""

    @property
    def task_id(self) -> str:
        return self.admitted.task_id

    @property
    def attempt(self) -> Attempt:
        """The first attempt (dispatch) of the task."""
        return self.task.attempts[0]


MakeSession = Callable[..., "SessionCreated"]
"""``make_session(ttl_seconds=600, metadata=None) -> SessionCreated``."""
MakeTask = Callable[..., "TaskAdmitted"]
"""``make_task(prompt="hello", *, session_id=None, **submit_task_kwargs) -> TaskAdmitted``."""
MakeAttempt = Callable[..., Dispatched]
"""``make_attempt(prompt="hello", *, session_id=None, timeout=10.0, **submit_task_kwargs)``."""


@dataclass
class Factories:
    """The API factories on one client; :meth:`cleanup` deletes every session they made.

    The ``make_*`` fixtures are these on ``orch_target``; build one yourself for
    another target (``Factories(orch_serve(...).client())``).
    """

    client: OrchClient
    sessions: list[str] = field(default_factory=list)

    def cleanup(self) -> None:
        """Delete the sessions made here, newest first (their unfinished tasks are cancelled)."""
        from orchestrator.client import OrchClientError

        while self.sessions:
            with contextlib.suppress(OrchClientError):
                self.client.delete_session(self.sessions.pop())

    def session(self, ttl_seconds: int = 600, metadata: dict[str, Any] | None = None) -> Any:
        created = self.client.create_session(ttl_seconds=ttl_seconds, metadata=metadata)
        self.sessions.append(created.session_id)
        return created

    def task(self, prompt: str = "hello", *, session_id: str | None = None, **kwargs: Any) -> Any:
        if session_id is None:
            session_id = self.session().session_id
        return self.client.submit_task(session_id, prompt, **kwargs)

    def attempt(
        self,
        prompt: str = "hello",
        *,
        session_id: str | None = None,
        timeout: float = DISPATCH_TIMEOUT_S,
        **kwargs: Any,
    ) -> Dispatched:
        admitted = self.task(prompt, session_id=session_id, **kwargs)
        deadline = time.monotonic() + timeout
        while True:
            task = self.client.get_task(admitted.task_id)
            if task.attempts:
                return Dispatched(admitted.session_id, admitted, task)
            if task.state in TERMINAL_STATES:
                raise AssertionError(
                    f"make_attempt: task {admitted.task_id} ended {task.state!r} without ever "
                    "being dispatched (ORCH-0100: each dispatch is recorded as an attempt)"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"make_attempt: task {admitted.task_id} was not dispatched within "
                    f"{timeout} s (state {task.state!r}, no attempt in GET /v1/tasks/{{id}})"
                )
            time.sleep(0.01)


@pytest.fixture
def _orch_made(orch_target: Target) -> Iterator[Factories]:
    with orch_target.client() as client:
        made = Factories(client)
        yield made
        made.cleanup()


@pytest.fixture
def make_session(_orch_made: Factories) -> MakeSession:
    """``make_session(ttl_seconds=600, metadata=None) -> SessionCreated``, over the API.

    Every session is deleted at teardown (its unfinished tasks end ``cancelled``).
    """
    return _orch_made.session


@pytest.fixture
def make_task(_orch_made: Factories) -> MakeTask:
    """``make_task(prompt="hello", *, session_id=None, **submit_task_kwargs) -> TaskAdmitted``.

    Without ``session_id`` a new session is created first (parents first);
    keyword arguments are those of :meth:`OrchClient.submit_task`.
    """
    return _orch_made.task


@pytest.fixture
def make_attempt(_orch_made: Factories) -> MakeAttempt:
    """``make_attempt(prompt="hello", *, session_id=None, timeout=10.0, **kw) -> Dispatched``.

    Admits a task (creating its session unless given) and polls
    ``GET /v1/tasks/{id}`` until it has an attempt; returns the
    :class:`Dispatched` task (``.attempt`` is its first attempt). Fails if the
    task ends, or is still undispatched after ``timeout`` seconds.
    """
    return _orch_made.attempt


# ---------------------------------------------------------------- the harness's engine


@pytest.fixture(scope="session")
def _orch_engine_server() -> Iterator[EngineThread]:
    from harness.engine.mock import MockModel
    from harness.engine.server import EngineThread

    with EngineThread(MockModel()) as server:
        yield server


@pytest.fixture
def orch_engine(_orch_engine_server: EngineThread) -> Iterator[EngineControl]:
    """The harness's own engine: ``orchq engine serve --model mock``, no fault rule, empty ledger.

    An OpenAI-compatible server with orchestratord's deterministic token function;
    point a target's ``openai`` replicas at it
    (``orch_serve(pools=[engine_pool(orch_engine)])``), set fault rules per replica
    or prompt (``orch_engine.set_faults([...])``) and read what it generated
    (``orch_engine.requests(...)``). One server per process (an in-process thread,
    started once), its rules and ledger cleared before and after each test.
    """
    from harness.engine.control import EngineControl

    with EngineControl(_orch_engine_server.url) as control:
        control.reset()
        yield control
        control.reset()


# ---------------------------------------------------------------- store level


class OrchDB:
    """A real orchestratord store (SQLite, foreign keys ON) with parents-first factories.

    Rows go in through :class:`orchestrator.store.db.Store`'s own methods, so
    the schema's constraints apply exactly as in the server. Timestamps are a
    fixed counter, so rows are reproducible.
    """

    def __init__(self, path: Path) -> None:
        from orchestrator.store.db import Store

        self.path = path
        self.store: Store = Store(path)
        self._clock = 1_700_000_000_000

    def _now(self) -> int:
        self._clock += 1
        return self._clock

    def make_session(
        self,
        ttl_seconds: int = 600,
        metadata: dict[str, Any] | None = None,
        *,
        session_id: str | None = None,
    ) -> SessionRow:
        from orchestrator.store.db import SessionRow

        now = self._now()
        row = SessionRow(
            session_id or f"s_{uuid.uuid4().hex}",
            ttl_seconds,
            dict(metadata or {}),
            now,
            now + ttl_seconds * 1000,
            None,
        )
        self.store.insert_session(row)
        return row

    def make_task(
        self, prompt: str = "hello", *, session_id: str | None = None, **fields: Any
    ) -> TaskRow:
        """A queued task row; without ``session_id`` its session row is inserted first."""
        from orchestrator.store.db import TaskRow

        if session_id is None:
            session_id = self.make_session().session_id
        values: dict[str, Any] = {
            "task_id": f"t_{uuid.uuid4().hex}",
            "session_id": session_id,
            "admit_seq": self.store.next_admit_seq() + 1,
            "pool_id": "default",
            "priority": "interactive",
            "prompt": prompt,
            "max_tokens": 16,
            "params": {
                "determinism": "best_effort",
                "sampler_profile_version": "v1",
                "temperature": 1.0,
                "top_p": 1.0,
            },
            "seed": 1,
            "state": "queued",
            "replica_id": None,
            "engine": None,
            "engine_version": None,
            "tokens_out": 0,
            "finish_reason": None,
            "error": None,
            "created_ms": self._now(),
            "started_ms": None,
            "finished_ms": None,
        }
        values.update(fields)
        row = TaskRow(**values)
        self.store.insert_task(row)
        return row

    def make_attempt(
        self, *, task_id: str | None = None, replica_id: str = "r1", **fields: Any
    ) -> AttemptRow:
        """A running attempt; without ``task_id`` its task (and session) are inserted first."""
        from orchestrator.store.db import AttemptRow

        if task_id is None:
            task_id = self.make_task(state="running", replica_id=replica_id).task_id
        values: dict[str, Any] = {
            "task_id": task_id,
            "attempt": len(self.store.attempts(task_id)) + 1,
            "replica_id": replica_id,
            "state": "running",
            "error_kind": None,
            "started_ms": self._now(),
            "finished_ms": None,
        }
        values.update(fields)
        row = AttemptRow(**values)
        self.store.insert_attempt(row)
        return row

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def orch_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OrchDB]:
    """orchestratord's own SQLite store on a fresh file (FK ON), with parents-first ``make_*``.

    In-process only (it is the reference store, not the target): skipped
    against ``--orch-url``.
    """
    if live_url(request.config) is not None:
        pytest.skip(LIVE_TARGET_SKIP)
    db = OrchDB(tmp_path / "orch_db.sqlite")
    yield db
    db.close()
