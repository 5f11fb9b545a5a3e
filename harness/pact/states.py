"""Provider states of the pact, built through the public API of the server under test.

Setups use the session-first factories of :mod:`harness.plugin.fixtures`
(:class:`~harness.plugin.fixtures.Factories`: parents first, every session they
made deleted at teardown) on a client of the target.

The verifier POSTs ``{"state", "params", "action"}`` to a small loopback HTTP
server (:class:`StateServer`); setup answers a JSON object of the IDs it made
(``session_id``, ``task_id``, ``run_id``, a fresh ``definition`` name), which the
verifier injects into the interaction's ``ProviderState`` generators. The URL form
is used rather than pact-python's dict of functions because that one cannot return
values, and it is faster.

Every state belongs to a *server group*. ``default`` states only need an
OrchQueue v1 server and its public API, so they are verifiable against any
``--orch-url``. ``constrained``, ``faulty`` and ``auth`` states need a server
configured in a particular way (a tiny queue with a stalled replica, a warming
pool, a 1 KiB body limit, replicas whose engine dies or hangs, a token): those
are verified on a target the harness configures (:func:`server_group`:
in-process, or started with ``--orch-serve-cmd``), and reported as not
verifiable against a live target. The ``crashing`` group's server is an
in-process orchestratord only (:data:`IN_PROCESS_GROUPS`).
The state handlers of those groups check that the server really is in the
stated condition, so a misconfiguration fails the state, not the contract.

A setup that fails is answered with a 4xx the verifier does not retry (it
retries a 5xx, 429 or 408 seven times with doubling pauses, about two minutes,
rerunning a setup that is not idempotent), after deleting what it made. Its
:class:`StateFailure` names the requirement the server's answer broke when the
typed client refused that answer (:func:`harness.wire.blame.client_blame`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from harness.checks import blamed
from harness.engine.control import EngineControl, engine_pool, engine_replica, rule
from harness.pact.examples import (
    CREATED_WEBHOOK_URL,
    DECIDED_BY,
    GATE_CHECKPOINT,
    PACT_DEFINITION,
    PACT_WEBHOOK_SECRET,
    PACT_WEBHOOK_URL,
    definition_document,
    gate_document,
)
from harness.pact.faults import CRASHING_REPLICA_PREFIX, crashing_engine_factory
from harness.plugin.fixtures import Factories
from harness.wire.blame import client_blame
from orchestrator.client import OrchClient, OrchError
from orchestrator.schemas import TaskAdmitted
from orchestrator.vocabulary import RUN_TERMINAL_STATES

if TYPE_CHECKING:
    from harness.plugin.target import ServeFactory, Target

__all__ = [
    "GROUPS",
    "IN_PROCESS_GROUPS",
    "LIVE_GROUPS",
    "STATES",
    "ServerGroup",
    "StateFailure",
    "StateServer",
    "group_of",
    "serve_group",
    "server_group",
    "state_server",
]

Values = dict[str, Any]
Setup = Callable[[Factories], Values]

LIVE_GROUPS = frozenset({"default"})
"""Groups whose states the public API of any server can set up."""


@dataclass(frozen=True)
class ServerGroup:
    """The target a group of states needs: its configuration (spec section 11 keys), the
    engine's fault rules, and the pools that become ready (``None``: all of them)."""

    config: dict[str, Any]
    faults: list[dict[str, Any]]
    ready: tuple[str, ...] | None = None


def server_group(group: str, engine: EngineControl | str) -> ServerGroup:
    """The configuration of a server group, with its replicas on the harness's ``engine``.

    ``constrained``: pools ``default`` (``reject``) and ``lru`` (``drop_lru``) with a
    one-task queue and a replica that stalls after one token (the engine hangs), a pool
    ``warming`` still warming up and a pool ``down`` whose engine refuses to serve; a
    1 KiB body limit. ``faulty``: pools whose replica dies after one token (``reset``),
    dies before any (``exhausted``, two attempts) or hangs after one (``stalled``, a 300 ms
    decode timeout). ``crashing`` (:data:`IN_PROCESS_GROUPS`): a pool whose engine breaks
    the engine protocol, through ``engine_factory``. ``auth``: an API token.
    ``default``: nothing chosen.
    """
    if group == "constrained":
        stalled = {"queue_capacity": 1, "decode_timeout_ms": 600_000}
        return ServerGroup(
            config={
                "max_body_bytes": 1024,
                "pools": [
                    engine_pool(engine, "default", ("r1",), overflow_policy="reject", **stalled),
                    engine_pool(engine, "lru", ("r1",), overflow_policy="drop_lru", **stalled),
                    {
                        "pool_id": "warming",
                        "replicas": [engine_replica(engine, "w1", warmup_ms=3_600_000)],
                    },
                    engine_pool(engine, "down", ("d1",)),
                ],
            },
            faults=[
                rule({"hang_after_tokens": 1}, replica="r1"),
                rule({"unavailable": True}, replica="d1"),
            ],
            ready=("default", "lru"),
        )
    if group == "faulty":
        return ServerGroup(
            config={
                "pools": [
                    engine_pool(engine, "reset", ("x1",)),
                    engine_pool(engine, "exhausted", ("e1",), max_attempts=2),
                    engine_pool(engine, "stalled", ("s1",), decode_timeout_ms=300),
                ],
            },
            faults=[
                rule({"die_after_tokens": 1}, replica="x1"),
                rule({"die_after_tokens": 0}, replica="e1"),
                rule({"hang_after_tokens": 1}, replica="s1"),
            ],
        )
    if group == "crashing":
        replica = {"replica_id": f"{CRASHING_REPLICA_PREFIX}1"}
        return ServerGroup(
            config={
                "engine_factory": crashing_engine_factory,
                "pools": [{"pool_id": "crashing", "replicas": [replica]}],
            },
            faults=[],
        )
    if group == "auth":
        return ServerGroup(config={"auth_token": "contract-token"}, faults=[])
    if group == "default":
        return ServerGroup(config={}, faults=[])
    raise KeyError(f"unknown server group {group!r}")


def serve_group(group: str, serve: ServeFactory, engine: EngineControl, **keywords: Any) -> Target:
    """A started target of ``group`` (``serve`` is ``orch_serve``), the engine's fault
    rules set for it first; ``keywords`` go to ``serve`` as well (``wrap_app=`` mutants)."""
    setup = server_group(group, engine)
    engine.set_faults(setup.faults)
    return serve(**setup.config, ready=setup.ready, **keywords)


GROUPS = ("default", "constrained", "auth", "faulty", "crashing")
"""Every server group a provider state may belong to."""

IN_PROCESS_GROUPS = frozenset({"crashing"})
"""Groups only an in-process orchestratord can be: ``INTERNAL`` is a bug no configuration
or engine fault produces, so its server breaks the engine protocol from inside."""

_WAIT_S = 15.0
_POLL_S = 0.01


def _wait(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + _WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"provider state not reached within {_WAIT_S:.0f} s: {what}")
        time.sleep(_POLL_S)


def _strict_task(made: Factories, **kwargs: Any) -> TaskAdmitted:
    task: TaskAdmitted = made.task("hello", max_tokens=2, seed=7, determinism="strict", **kwargs)
    return task


def _a_session(made: Factories) -> Values:
    return {"session_id": made.session().session_id}


def _a_deleted_session(made: Factories) -> Values:
    session_id = made.session().session_id
    made.client.delete_session(session_id)
    return {"session_id": session_id}


def _an_expired_session(made: Factories) -> Values:
    session_id = made.session(ttl_seconds=1).session_id

    def expired() -> bool:
        try:
            made.client.get_session(session_id)
        except OrchError as exc:
            if exc.kind == "SESSION_EXPIRED":
                return True
            raise
        return False

    time.sleep(1.0)  # the shortest TTL the API allows
    _wait(f"session {session_id} expired", expired)
    return {"session_id": session_id}


def _a_completed_task(made: Factories) -> Values:
    admitted = _strict_task(made)
    task_id = admitted.task_id
    _wait(f"task {task_id} completed", lambda: made.client.get_task(task_id).state == "completed")
    return {"session_id": admitted.session_id, "task_id": task_id}


def _a_running_task(made: Factories) -> Values:
    admitted = _strict_task(made)
    task_id = admitted.task_id
    # The stalled replica has sent one token: the task runs until cancelled.
    _wait(f"task {task_id} running", lambda: made.client.get_task(task_id).tokens_out == 1)
    return {"session_id": admitted.session_id, "task_id": task_id}


def _full_queue(pool: str) -> Setup:
    def setup(made: Factories) -> Values:
        session_id = made.session().session_id
        running = _strict_task(made, session_id=session_id, pool=pool)
        _wait(
            f"task {running.task_id} running",
            lambda: made.client.get_task(running.task_id).state == "running",
        )
        _strict_task(made, session_id=session_id, pool=pool)
        depth = made.client.get_pool(pool).queue_depth
        if depth.interactive + depth.batch != 1:
            raise RuntimeError(f"pool {pool!r} should hold exactly one queued task, has {depth}")
        return {"session_id": session_id}

    return setup


def _pool_check(pool: str, replica_state: str) -> Setup:
    def setup(made: Factories) -> Values:
        states = {replica.state for replica in made.client.get_pool(pool).replicas}
        if states != {replica_state}:
            raise RuntimeError(f"pool {pool!r} replicas should all be {replica_state}: {states}")
        return {}

    return setup


def _wait_terminal(made: Factories, task_id: str) -> str:
    terminal = {"completed", "failed", "cancelled", "dropped"}
    _wait(f"task {task_id} ended", lambda: made.client.get_task(task_id).state in terminal)
    return made.client.get_task(task_id).state


def _failed_with(kind: str, pool: str, determinism: str) -> Setup:
    """A task of ``pool`` (a fault-knob pool of the ``faulty`` group) that failed with ``kind``."""

    def setup(made: Factories) -> Values:
        admitted = made.task("hello", max_tokens=2, seed=7, determinism=determinism, pool=pool)
        _wait_terminal(made, admitted.task_id)
        error = made.client.get_task(admitted.task_id).error
        if error is None or error.kind != kind:
            raise RuntimeError(f"task on pool {pool!r} should fail with {kind}, got {error}")
        return {"session_id": admitted.session_id, "task_id": admitted.task_id}

    return setup


def _a_cancelled_task(made: Factories) -> Values:
    values = _a_running_task(made)
    made.client.cancel_task(values["task_id"])
    return values


def _an_evicted_task(made: Factories) -> Values:
    """A queued ``batch`` task of pool ``lru`` evicted by an ``interactive`` newcomer."""
    session_id = made.session().session_id
    running = _strict_task(made, session_id=session_id, pool="lru")
    _wait(
        f"task {running.task_id} running",
        lambda: made.client.get_task(running.task_id).state == "running",
    )
    evicted = _strict_task(made, session_id=session_id, pool="lru", priority="batch")
    _strict_task(made, session_id=session_id, pool="lru")
    if _wait_terminal(made, evicted.task_id) != "dropped":
        raise RuntimeError(f"task {evicted.task_id} should have been evicted")
    return {"session_id": session_id, "task_id": evicted.task_id}


def _register(made: Factories, name: str = PACT_DEFINITION) -> str:
    """Register :func:`~harness.pact.examples.definition_document` as ``name`` (again: 200)."""
    made.client.register_definition(definition_document(name))
    return name


def _own_definition_name(made: Factories) -> str:
    """A definition name nothing is registered under yet."""
    name = f"{PACT_DEFINITION}-{uuid.uuid4().hex[:12]}"
    try:
        made.client.get_definition(name, "1")
    except OrchError as exc:
        if exc.status == HTTPStatus.NOT_FOUND:
            return name
        raise
    raise RuntimeError(f"definition {name}@1 should not exist")


def _a_free_definition_name(made: Factories) -> Values:
    return {"definition": _own_definition_name(made)}


def _the_pact_definition(made: Factories) -> Values:
    _register(made)
    return {}


def _a_session_and_the_pact_definition(made: Factories) -> Values:
    _register(made)
    return _a_session(made)


def _run(made: Factories, definition: str) -> Values:
    session_id = made.session().session_id
    run_id = made.client.create_run(session_id, definition, "1").run_id
    return {"session_id": session_id, "run_id": run_id}


def _completed_run(made: Factories, definition: str) -> Values:
    values = _run(made, definition)
    run_id = values["run_id"]
    _wait(f"run {run_id} ended", lambda: made.client.get_run(run_id).state in RUN_TERMINAL_STATES)
    state = made.client.get_run(run_id).state
    if state != "completed":
        raise RuntimeError(f"run {run_id} of {definition} should complete, ended {state}")
    return values


def _a_completed_run(made: Factories) -> Values:
    return _completed_run(made, _register(made))


def _a_completed_run_of_its_own(made: Factories) -> Values:
    name = _register(made, _own_definition_name(made))
    return {**_completed_run(made, name), "definition": name}


def _a_running_run(made: Factories) -> Values:
    """A run whose first step's task runs on the stalled replica until cancelled."""
    values = _run(made, _register(made))
    run_id = values["run_id"]

    def stalled() -> bool:
        task_id = made.client.get_run(run_id).steps[0].task_id
        return task_id is not None and made.client.get_task(task_id).tokens_out == 1

    _wait(f"run {run_id} running its first step", stalled)
    return values


def _a_run_at_its_checkpoint(made: Factories) -> Values:
    """A run of the gated definition, its step waiting at its ``before`` checkpoint."""
    made.client.register_definition(gate_document())
    values = _run(made, str(gate_document()["name"]))
    run_id = values["run_id"]

    def waiting() -> bool:
        pending = made.client.list_approvals(state="pending", run_id=run_id).approvals
        return [a.checkpoint_id for a in pending] == [GATE_CHECKPOINT]

    _wait(f"run {run_id} waiting at checkpoint {GATE_CHECKPOINT}", waiting)
    return values


def _a_run_whose_checkpoint_was_decided(made: Factories) -> Values:
    values = _a_run_at_its_checkpoint(made)
    made.client.decide_checkpoint(values["run_id"], GATE_CHECKPOINT, "continue", DECIDED_BY)
    return values


def _created_subscriptions_removed(made: Factories) -> Values:
    """No subscription to :data:`CREATED_WEBHOOK_URL` exists; the one the interaction creates
    is deleted at teardown."""
    made.webhook_urls.add(CREATED_WEBHOOK_URL)
    made.cleanup()
    return {}


def _a_subscription(made: Factories) -> Values:
    webhook = made.webhook(PACT_WEBHOOK_URL, ["run.started"], PACT_WEBHOOK_SECRET)
    return {"webhook_id": webhook.webhook_id}


def _a_subscription_retrying_a_delivery(made: Factories) -> Values:
    """A subscription to ``run.started`` whose delivery of a new run was attempted once at
    least: nothing answers at :data:`PACT_WEBHOOK_URL`."""
    values = _a_subscription(made)
    run_id = _run(made, _register(made))["run_id"]

    def attempted() -> bool:
        listed = made.client.list_deliveries(values["webhook_id"], run_id=run_id).deliveries
        return len(listed) == 1 and listed[0].attempts >= 1

    _wait(f"the delivery of run {run_id}'s run.started attempted", attempted)
    return {**values, "run_id": run_id}


def _nothing(made: Factories) -> Values:
    """A condition the server group's configuration provides (checked by its interaction)."""
    return {}


STATES: dict[str, tuple[str, Setup]] = {
    "a session exists": ("default", _a_session),
    "a deleted session exists": ("default", _a_deleted_session),
    "an expired session exists": ("default", _an_expired_session),
    "a completed task exists": ("default", _a_completed_task),
    "a running task exists": ("constrained", _a_running_task),
    "the queue of pool default is full": ("constrained", _full_queue("default")),
    "the queue of pool lru is full of interactive tasks": ("constrained", _full_queue("lru")),
    "pool warming is still warming": ("constrained", _pool_check("warming", "warming")),
    "pool down has no replica that can become ready": (
        "constrained",
        _pool_check("down", "down"),
    ),
    "the request body limit is 1024 bytes": ("constrained", _nothing),
    "an API token is required": ("auth", _nothing),
    "a cancelled task exists": ("constrained", _a_cancelled_task),
    "a task was evicted from the drop_lru queue of pool lru": ("constrained", _an_evicted_task),
    "a task failed with WORKER_RESET": (
        "faulty",
        _failed_with("WORKER_RESET", "reset", "best_effort"),
    ),
    "a task failed with REPLICA_EXHAUSTED": (
        "faulty",
        _failed_with("REPLICA_EXHAUSTED", "exhausted", "strict"),
    ),
    "a task failed with DECODE_TIMEOUT": (
        "faulty",
        _failed_with("DECODE_TIMEOUT", "stalled", "strict"),
    ),
    "a task failed with INTERNAL": ("crashing", _failed_with("INTERNAL", "crashing", "strict")),
    "no definition is registered under the name to register": ("default", _a_free_definition_name),
    "the pact's definition is registered": ("default", _the_pact_definition),
    "a session exists and the pact's definition is registered": (
        "default",
        _a_session_and_the_pact_definition,
    ),
    "a completed run exists": ("default", _a_completed_run),
    "a completed run of a definition of its own exists": ("default", _a_completed_run_of_its_own),
    "a running run exists": ("constrained", _a_running_run),
    "a run of the pact's gated definition waits at its checkpoint": (
        "default",
        _a_run_at_its_checkpoint,
    ),
    "a run of the pact's gated definition had its checkpoint decided continue": (
        "default",
        _a_run_whose_checkpoint_was_decided,
    ),
    "no webhook subscription to the pact's created URL exists": (
        "default",
        _created_subscriptions_removed,
    ),
    "a webhook subscription exists": ("default", _a_subscription),
    "a webhook subscription is retrying the delivery of a run's run.started": (
        "default",
        _a_subscription_retrying_a_delivery,
    ),
}
"""Provider state name -> (server group, setup through the public API)."""


def group_of(states: tuple[str, ...]) -> str:
    """The server group an interaction needs: the one non-default group among its states."""
    groups = {STATES[state][0] for state in states} - {"default"}
    if len(groups) > 1:
        raise ValueError(f"states {states} need incompatible servers: {sorted(groups)}")
    return groups.pop() if groups else "default"


_FAILED_STATE = HTTPStatus.UNPROCESSABLE_ENTITY
"""The answer to a state change that failed: a 4xx, which the pact verifier reports at once."""


@dataclass(frozen=True)
class StateFailure:
    """A provider state change that failed.

    ``requirements``: those the server under test broke on the way (its answer refused
    by the typed client), or ``()`` when the failure names none (the server answered
    correctly but is not in the stated condition).
    """

    state: str
    error: str
    requirements: tuple[str, ...] = ()

    @classmethod
    def of(cls, state: str, exc: Exception) -> StateFailure:
        requirements = blamed(exc) or client_blame(exc) or ()
        return cls(state, f"{type(exc).__name__}: {exc}", requirements)

    def line(self) -> str:
        """One line, led by the requirements (``ORCH-0042: ...``) so a check blames them."""
        lead = f"{'/'.join(self.requirements)}: " if self.requirements else ""
        return f"{lead}provider state {self.state!r} failed: {self.error}"


class StateServer:
    """A loopback HTTP endpoint the pact verifier calls to set up and tear down states.

    ``failures`` lists every state change that failed, in order.
    """

    def __init__(self, client_factory: Callable[[], OrchClient]) -> None:
        self._client_factory = client_factory
        self._client: OrchClient | None = None
        self._made: dict[str, Factories] = {}
        self.failures: list[StateFailure] = []
        handler = self._handler_class()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_port}/_pact/state"

    def start(self) -> StateServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        if self._client is not None:
            self._client.close()

    def change(self, request: Mapping[str, Any]) -> Values:
        """Apply one state change request; answer the values to inject."""
        state = str(request.get("state", ""))
        action = str(request.get("action", "setup"))
        if state not in STATES:
            raise ValueError(f"unknown provider state {state!r}")
        if self._client is None:
            # One client for all changes: building an httpx client (its TLS context)
            # costs more than the state change itself.
            self._client = self._client_factory()
        if action == "teardown":
            made = self._made.pop(state, None)
            if made is not None:
                made.cleanup()  # deletes the sessions this state made, newest first
            return {}
        made = self._made.setdefault(state, Factories(self._client))
        try:
            return STATES[state][1](made)
        except Exception:
            # The verifier sends no teardown after a failed setup.
            self._made.pop(state, None)
            made.cleanup()
            raise

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request: Any = {}
                try:
                    request = json.loads(self.rfile.read(length) or b"{}")
                    values = owner.change(request)
                    status, body = HTTPStatus.OK, json.dumps(values).encode()
                except Exception as exc:  # reported to the verifier and to the test
                    state = request.get("state") if isinstance(request, dict) else None
                    failure = StateFailure.of(str(state or ""), exc)
                    owner.failures.append(failure)
                    status, body = _FAILED_STATE, json.dumps({"error": failure.line()}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # the verifier reports; keep test output clean

        return Handler


@contextmanager
def state_server(client_factory: Callable[[], OrchClient]) -> Iterator[StateServer]:
    """A started :class:`StateServer`, stopped on exit."""
    server = StateServer(client_factory).start()
    try:
        yield server
    finally:
        server.stop()
