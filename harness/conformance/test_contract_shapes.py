"""Conformance: the shape of every kind of answer, pinned by syrupy snapshots.

The admission answer, session info, task view, pools view, every error envelope
(those any client can provoke, those of a configured server, and the error
kinds that end a running task) and one stream transcript, read live and
replayed, are compared with the snapshots under ``snapshots/conformance/
test_contract_shapes/`` after :func:`harness.wire.shapes.volatile` replaced
what legitimately varies (IDs, timestamps, jitter, messages, the engine's
tokens, configured sizes). A renamed, removed or added field fails with
syrupy's diff; ``--snapshot-update`` records a deliberate change.

The answers any OrchQueue v1 server gives to its public API run against
``--orch-url`` too; those that need a configured server (a token, a full queue,
faulty replicas) run on a target the harness configures and skip as NOT
VERIFIABLE live; the ``INTERNAL`` shape needs orchestratord in-process.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from harness.engine.control import EngineControl
from harness.pact.states import STATES, serve_group
from harness.plugin.fixtures import Factories
from harness.plugin.target import ServeFactory, Target
from harness.wire import Wire
from harness.wire.shapes import ShapeSnapshotExtension, answer, transcript
from harness.wire.stream import read_stream

if TYPE_CHECKING:
    from syrupy.assertion import SnapshotAssertion

pytestmark = pytest.mark.contract

_STRICT: dict[str, Any] = {"max_tokens": 3, "params": {"seed": 7, "determinism": "strict"}}


@pytest.fixture
def shape(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """syrupy's ``snapshot`` in ``snapshots/``, volatile values replaced."""
    return snapshot.use_extension(ShapeSnapshotExtension)


@pytest.mark.req("ORCH-0026", "ORCH-0027", "ORCH-0029", "ORCH-0033")
def test_session_shapes(wire: Wire, shape: SnapshotAssertion) -> None:
    created = wire.post_json("/v1/sessions", {"ttl_seconds": 600, "metadata": {"user": "alice"}})
    session_id = created.json()["session_id"]
    read = wire.http.get(f"/v1/sessions/{session_id}")
    deleted = wire.http.delete(f"/v1/sessions/{session_id}")
    assert {
        "created": answer(created),
        "read": answer(read),
        "deleted": answer(deleted),
        "read after delete": answer(wire.http.get(f"/v1/sessions/{session_id}")),
    } == shape


@pytest.mark.req("ORCH-0042", "ORCH-0051", "ORCH-0052", "ORCH-0100", "ORCH-0069")
def test_admission_and_task_shapes(wire: Wire, shape: SnapshotAssertion) -> None:
    session_id = wire.new_session()["session_id"]
    admitted = wire.post_json("/v1/tasks", {"session_id": session_id, "prompt": "hi", **_STRICT})
    task_id = admitted.json()["task_id"]
    wire.wait_terminal(task_id)
    assert {
        "admitted": answer(admitted),
        "completed": answer(wire.http.get(f"/v1/tasks/{task_id}")),
        "cancel after the end": answer(wire.http.delete(f"/v1/tasks/{task_id}")),
    } == shape


@pytest.mark.req("ORCH-0119", "ORCH-0120", "ORCH-0121")
def test_pools_shape(wire: Wire, shape: SnapshotAssertion) -> None:
    listed = wire.http.get("/v1/pools")
    pool_id = listed.json()["pools"][0]["pool_id"]
    assert {
        "list": answer(listed),
        "one": answer(wire.http.get(f"/v1/pools/{pool_id}")),
        "unknown": answer(wire.http.get("/v1/pools/no-such-pool")),
    } == shape


@pytest.mark.req(
    "ORCH-0014", "ORCH-0019", "ORCH-0002", "ORCH-0011", "ORCH-0010", "ORCH-0013", "ORCH-0031"
)
def test_error_envelope_shapes_of_the_public_api(wire: Wire, shape: SnapshotAssertion) -> None:
    """Every error kind a client can provoke on any server, whatever its configuration."""
    session_id = wire.new_session()["session_id"]
    expiring = wire.new_session(ttl_seconds=1)["session_id"]
    answers = {
        "INVALID_PARAMS": wire.post_json("/v1/sessions", {"ttl_seconds": 0}),
        "INVALID_PARAMS strict without seed": wire.post_json(
            "/v1/tasks",
            {"session_id": session_id, "prompt": "hi", "params": {"determinism": "strict"}},
        ),
        "NOT_FOUND session": wire.http.get("/v1/sessions/no-such-session"),
        "NOT_FOUND task": wire.http.get("/v1/tasks/no-such-task"),
        "NOT_FOUND path": wire.http.get("/v1/no-such-path"),
        "METHOD_NOT_ALLOWED": wire.http.delete("/v1/pools"),
        "UNSUPPORTED_MEDIA_TYPE": wire.http.post(
            "/v1/sessions", content=b"ttl_seconds=600", headers={"Content-Type": "text/plain"}
        ),
        "PAYLOAD_TOO_LARGE": wire.post_json(
            "/v1/tasks", {"session_id": session_id, "prompt": "x" * (1 << 20)}
        ),
    }
    time.sleep(1.1)  # the shortest TTL the API allows
    answers["SESSION_EXPIRED"] = wire.http.get(f"/v1/sessions/{expiring}")
    assert {name: answer(response) for name, response in answers.items()} == shape


@pytest.mark.req("ORCH-0014", "ORCH-0019", "ORCH-0021", "ORCH-0007")
def test_error_envelope_shapes_of_a_configured_server(
    orch_serve: ServeFactory, orch_engine: EngineControl, shape: SnapshotAssertion
) -> None:
    """The kinds only a configured server answers: a token, full queues, unready pools."""
    shapes: dict[str, Any] = {}
    secured = serve_group("auth", orch_serve, orch_engine)
    with Wire(secured.url, {"Authorization": "Bearer wrong-token"}) as wrong:
        shapes["UNAUTHORIZED"] = answer(wrong.http.get("/v1/pools"))
    constrained = serve_group("constrained", orch_serve, orch_engine)
    with constrained.client() as client, Wire(constrained.url) as wire:
        made = Factories(client)
        try:
            full = STATES["the queue of pool default is full"][1](made)["session_id"]
            lru = STATES["the queue of pool lru is full of interactive tasks"][1](made)
            for name, pool, priority, session_id in (
                ("ADMISSION_REJECT", "default", "interactive", full),
                ("QUEUE_FULL_DROP_LRU", "lru", "batch", lru["session_id"]),
                ("POOL_UNREADY", "warming", "interactive", full),
                ("POOL_UNAVAILABLE", "down", "interactive", full),
            ):
                body = {"session_id": session_id, "prompt": "hi", "pool": pool, **_STRICT}
                shapes[name] = answer(wire.post_json("/v1/tasks", {**body, "priority": priority}))
        finally:
            made.cleanup()
    assert shapes == shape


def _failed_task_shapes(target: Target, kinds: tuple[str, ...]) -> dict[str, Any]:
    shapes: dict[str, Any] = {}
    with target.client() as client, Wire(target.url) as wire:
        made = Factories(client)
        try:
            for kind in kinds:
                task_id = STATES[f"a task failed with {kind}"][1](made)["task_id"]
                shapes[kind] = {
                    "task": answer(wire.http.get(f"/v1/tasks/{task_id}")),
                    "stream": transcript(read_stream(wire, task_id)),
                }
        finally:
            made.cleanup()
    return shapes


@pytest.mark.req("ORCH-0062", "ORCH-0020", "ORCH-0082", "ORCH-0019")
def test_shapes_of_the_error_kinds_that_end_a_task(
    orch_serve: ServeFactory, orch_engine: EngineControl, shape: SnapshotAssertion
) -> None:
    """WORKER_RESET, REPLICA_EXHAUSTED and DECODE_TIMEOUT: the failed task and its stream,
    on replicas whose engine dies or hangs (the pact's ``faulty`` server)."""
    target = serve_group("faulty", orch_serve, orch_engine)
    kinds = ("WORKER_RESET", "REPLICA_EXHAUSTED", "DECODE_TIMEOUT")
    assert _failed_task_shapes(target, kinds) == shape


@pytest.mark.orch_reference_code
@pytest.mark.req("ORCH-0062", "ORCH-0020", "ORCH-0082", "ORCH-0019")
def test_shape_of_an_internal_failure(
    orch_serve: ServeFactory, orch_engine: EngineControl, shape: SnapshotAssertion
) -> None:
    """INTERNAL, a bug no configuration produces: orchestratord with an engine that breaks
    the engine protocol (the pact's ``crashing`` server, in-process only)."""
    target = serve_group("crashing", orch_serve, orch_engine)
    assert _failed_task_shapes(target, ("INTERNAL",)) == shape


@pytest.mark.req("ORCH-0070", "ORCH-0071", "ORCH-0073", "ORCH-0076", "ORCH-0084", "ORCH-0085")
def test_stream_transcript_live_and_replayed(wire: Wire, shape: SnapshotAssertion) -> None:
    """One task's stream read as it runs, then replayed from storage: the same transcript."""
    admitted = wire.admit(prompt="hi", **_STRICT)
    live = transcript(read_stream(wire, admitted["task_id"]))
    wire.wait_terminal(admitted["task_id"])
    replayed = transcript(read_stream(wire, admitted["task_id"]))
    assert live == replayed, "ORCH-0085: a replay must yield exactly the sequence sent live"
    assert {"live": live, "replayed": replayed} == shape
