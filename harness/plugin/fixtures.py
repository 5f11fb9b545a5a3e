"""Session-first factory fixtures: parents first, every time.

A row inserted before its parent (a task before its session) fails far from its
cause; these fixtures make that impossible (docs/design/test-isolation.md):

**Parents first.** ``orch_make_task()`` without a ``session_id`` creates its
session; ``orch_make_attempt()`` brings its task and session and waits until
the task was dispatched; ``orch_make_run()`` registers its definition and creates
its session. They go over the public API, so they work against any target
(in-process or ``--orch-url``); every session they create is deleted at teardown,
which aborts its running runs (ORCH-0333). Definitions cannot be removed
(ORCH-0313): ``orch_make_definition`` names each one uniquely, so tests never share
one. ``orch_db`` is the same at the store level: a real orchestratord SQLite store
(foreign keys ON) whose ``make_*`` insert rows parents-first through the store's own
API.

The other two ways one test hurts another are :mod:`harness.plugin.persisted`'s job
(a persisted setting leaking between workers) and
:mod:`harness.plugin.scripted`'s (a late call consuming the next test's
scripted response).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.plugin.target import (
    LIVE_TARGET_SKIP,
    Target,
    live_url,
    target_mode,
    webhook_address,
)

if TYPE_CHECKING:
    from harness.engine.control import EngineControl
    from harness.engine.server import EngineThread
    from harness.managed.engine import EngineProcess
    from harness.webhooks import Receiver
    from orchestrator.client import OrchClient
    from orchestrator.schemas import Attempt, Definition, Run, SessionCreated, Task, TaskAdmitted
    from orchestrator.store.db import AttemptRow, SessionRow, Store, TaskRow

__all__ = [
    "Dispatched",
    "Factories",
    "MakeAttempt",
    "MakeDefinition",
    "MakeRun",
    "MakeSession",
    "MakeTask",
    "OrchDB",
]

DISPATCH_TIMEOUT_S = 10.0
ONE_STEP: dict[str, Any] = {"steps": [{"id": "answer", "prompt": "hello", "max_tokens": 4}]}
"""The definition ``orch_make_definition()`` registers when given none."""


# ---------------------------------------------------------------- API factories


@dataclass(frozen=True)
class Dispatched:
    """What ``orch_make_attempt`` returns: a task that has been dispatched to a replica."""

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
"""``orch_make_session(ttl_seconds=600, metadata=None) -> SessionCreated``."""
MakeTask = Callable[..., "TaskAdmitted"]
"""``orch_make_task(prompt="hello", *, session_id=None, **submit_task_kwargs) -> TaskAdmitted``."""
MakeAttempt = Callable[..., Dispatched]
"""``orch_make_attempt(prompt="hello", *, session_id=None, timeout=10.0, **submit_task_kwargs)``."""
MakeDefinition = Callable[..., "Definition"]
"""``orch_make_definition(document=None, **keys) -> Definition``."""
MakeRun = Callable[..., "Run"]
"""``orch_make_run(definition=None, *, session_id=None, inputs=None, **create_run_kw) -> Run``."""


@dataclass
class Factories:
    """The API factories on one client; :meth:`cleanup` deletes every session and webhook
    subscription they made.

    The ``orch_make_*`` fixtures are these on ``orch_target``; build one yourself for
    another target (``Factories(orch_serve(...).client())``).
    """

    client: OrchClient
    sessions: list[str] = field(default_factory=list)
    webhooks: list[str] = field(default_factory=list)
    webhook_urls: set[str] = field(default_factory=set)
    """URLs whose subscriptions made through the API :meth:`cleanup` deletes too, whoever
    made them (a request under test, not a factory)."""

    def cleanup(self) -> None:
        """Delete the webhook subscriptions made here or to :attr:`webhook_urls`, then the
        sessions, newest first (their unfinished tasks are cancelled); one already gone is
        no error."""
        from orchestrator.client import OrchClientError

        if self.webhook_urls:
            with contextlib.suppress(OrchClientError):
                self.webhooks.extend(
                    webhook.webhook_id
                    for webhook in self.client.list_webhooks().webhooks
                    if webhook.source == "api" and webhook.url in self.webhook_urls
                )
        while self.webhooks:
            with contextlib.suppress(OrchClientError):
                self.client.delete_webhook(self.webhooks.pop())
        while self.sessions:
            with contextlib.suppress(OrchClientError):
                self.client.delete_session(self.sessions.pop())

    def webhook(self, url: str, events: list[str], secret: str) -> Any:
        """A subscription made through the API, deleted by :meth:`cleanup`."""
        created = self.client.create_webhook(url, events, secret)
        self.webhooks.append(created.webhook_id)
        return created

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
        from orchestrator.vocabulary import TERMINAL_STATES

        admitted = self.task(prompt, session_id=session_id, **kwargs)
        deadline = time.monotonic() + timeout
        while True:
            task = self.client.get_task(admitted.task_id)
            if task.attempts:
                return Dispatched(admitted.session_id, admitted, task)
            if task.state in TERMINAL_STATES:
                raise AssertionError(
                    f"orch_make_attempt: task {admitted.task_id} ended {task.state!r} without ever "
                    "being dispatched (ORCH-0100: each dispatch is recorded as an attempt)"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"orch_make_attempt: task {admitted.task_id} was not dispatched within "
                    f"{timeout} s (state {task.state!r}, no attempt in GET /v1/tasks/{{id}})"
                )
            time.sleep(0.01)

    def definition(self, document: Mapping[str, Any] | None = None, **keys: Any) -> Any:
        body = {**(ONE_STEP if document is None else document), **keys}
        body.setdefault("name", f"orchq-{uuid.uuid4().hex[:16]}")
        body.setdefault("version", "1")
        return self.client.register_definition(body)

    def run(
        self,
        definition: Definition | Mapping[str, Any] | None = None,
        *,
        session_id: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        from orchestrator import schemas

        if isinstance(definition, schemas.Definition):
            registered = definition
        else:
            registered = self.definition(definition)
        if session_id is None:
            session_id = self.session().session_id
        return self.client.create_run(
            session_id, registered.name, registered.version, inputs=inputs, **kwargs
        )


@pytest.fixture
def _orch_made(orch_target: Target) -> Iterator[Factories]:
    with orch_target.client() as client:
        made = Factories(client)
        yield made
        made.cleanup()


@pytest.fixture
def orch_make_session(_orch_made: Factories) -> MakeSession:
    """``orch_make_session(ttl_seconds=600, metadata=None) -> SessionCreated``, over the API.

    Every session is deleted at teardown (its unfinished tasks end ``cancelled``).
    """
    return _orch_made.session


@pytest.fixture
def orch_make_task(_orch_made: Factories) -> MakeTask:
    """``orch_make_task(prompt="hello", *, session_id=None, **submit_task_kwargs) -> TaskAdmitted``.

    Without ``session_id`` a new session is created first (parents first);
    keyword arguments are those of :meth:`OrchClient.submit_task`.
    """
    return _orch_made.task


@pytest.fixture
def orch_make_attempt(_orch_made: Factories) -> MakeAttempt:
    """``orch_make_attempt(prompt="hello", *, session_id=None, timeout=10.0, **kw) -> Dispatched``.

    Admits a task (creating its session unless given) and polls
    ``GET /v1/tasks/{id}`` until it has an attempt; returns the
    :class:`Dispatched` task (``.attempt`` is its first attempt). Fails if the
    task ends, or is still undispatched after ``timeout`` seconds.
    """
    return _orch_made.attempt


# ---------------------------------------------------------------- the harness's engine


@pytest.fixture
def orch_make_definition(_orch_made: Factories) -> MakeDefinition:
    """``orch_make_definition(document=None, **keys) -> Definition``, registered over the API.

    ``document`` defaults to one step; ``keys`` override its top-level keys. A document
    without ``name`` gets a unique one (and ``version`` ``"1"``): definitions stay
    registered for good, so two tests, or two workers, never collide on a name.
    """
    return _orch_made.definition


@pytest.fixture
def orch_make_run(_orch_made: Factories) -> MakeRun:
    """``orch_make_run(definition=None, *, session_id=None, inputs=None, **kw) -> Run``.

    **Parents first**: ``definition`` is a registered :class:`Definition`, or a document
    (or ``None``) that is registered first as ``orch_make_definition`` does; without
    ``session_id`` a new session is created. Keyword arguments are those of
    :meth:`OrchClient.create_run` (``seed``, ``max_parallel``). Returns the run as
    created; its session is deleted at teardown, which aborts it if it still runs.
    """
    return _orch_made.run


@pytest.fixture(scope="session")
def _orch_engine_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EngineThread | EngineProcess]:
    from harness.engine.mock import MockModel
    from harness.engine.server import EngineThread
    from harness.managed.engine import EngineProcess

    server: EngineThread | EngineProcess
    if target_mode(request.config) == "managed":
        server = EngineProcess(tmp_path_factory.mktemp("engine") / "engine.log")
    else:
        server = EngineThread(MockModel())
    with server:
        yield server


@pytest.fixture
def orch_engine(_orch_engine_server: EngineThread) -> Iterator[EngineControl]:
    """The harness's own engine: ``orchq engine serve --model mock``, no fault rule, empty ledger.

    An OpenAI-compatible server with orchestratord's deterministic token function;
    point a target's ``openai`` replicas at it
    (``orch_serve(pools=[engine_pool(orch_engine)])``), set fault rules per replica
    or prompt (``orch_engine.set_faults([...])``) and read what it generated
    (``orch_engine.requests(...)``). One server per worker, started on first use (a
    thread of this process; with ``--orch-serve-cmd``, an ``orchq engine serve --model
    mock`` process of its own), its rules and ledger cleared before and after each test.
    """
    from harness.engine.control import EngineControl

    with EngineControl(_orch_engine_server.url) as control:
        control.reset()
        yield control
        control.reset()


# ---------------------------------------------------------------- webhooks


@pytest.fixture
def orch_webhook_receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    """A real webhook receiver (spec section 12.9): HTTP on an ephemeral port, for this test.

    Subscribe ``orch_webhook_receiver.url`` with ``orch_webhook_receiver.secret``
    (random per test). It verifies each delivery with :func:`harness.webhooks.verify`,
    records it (``records()``, ``accepted()``, ``attempts(delivery_id)``) with its
    verdict, answers a replayed delivery id without processing it again, and
    misbehaves on demand (``fail_next(n, status)``, ``delay_next(n, seconds)``).
    ``wait_for(event, run_id, timeout)`` returns the accepted delivery or fails naming
    the rule broken; ``assert_all_verified()`` fails on any rejected request.

    It listens on 127.0.0.1 unless ``--orch-webhook-bind`` says otherwise; a remote
    ``--orch-url`` target needs an address it can reach (``--orch-webhook-bind
    0.0.0.0 --orch-webhook-host <this machine>``). Costs one thread, no process.
    """
    from harness.webhooks import Receiver

    bind, host = webhook_address(request.config)
    with Receiver(bind=bind, host=host) as receiver:
        yield receiver


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
