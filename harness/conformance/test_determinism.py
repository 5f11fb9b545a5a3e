"""Conformance: strict determinism (spec section 7.5) and determinism snapshots.

A strict task's tokens must be byte-identical whatever served them: on every
replica (64 seeds x 2 replicas x 32 tokens, counted as unique outputs per seed,
which must be exactly 1), at concurrency 1, 8 and 32, after a restart on the
same database, through a resumed stream, and after a retry that followed a
replica reset. A control proves the checks can see drift: distinct seeds must
diverge; and ``strict`` without a seed is refused.
The snapshot test pins the engine's tokens per engine and version in the
top-level ``snapshots/`` folder (:mod:`harness.determinism.snapshot`).

Everything goes through the public client over HTTP, so it certifies any
OrchQueue v1 server at ``--orch-url``; the restart and retry checks need a
target they configure (a process they can kill, replicas on the harness's
engine) and skip against a live target. Against a live
target, the byte-exact check reports which replicas it saw and fails when only
one served while the pool has more ready. A target whose engine has no snapshot
yet fails the snapshot test until it is recorded with ``--snapshot-update``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import pytest

from harness.determinism.probe import (
    DEFAULT_PROMPT,
    Output,
    diverging_seeds,
    ready_replicas,
    run_many,
    run_strict,
    sweep,
)
from harness.determinism.snapshot import (
    SNAPSHOT_CASES,
    DeterminismSnapshotExtension,
    describe_drift,
    snapshot_document,
    snapshot_name,
)
from harness.engine.control import EngineControl, engine_pool, rule
from harness.plugin.target import ServeFactory, Target
from orchestrator.client import AsyncOrchClient, OrchError
from orchestrator.numerals import ascii_int

if TYPE_CHECKING:
    from syrupy.assertion import SnapshotAssertion

pytestmark = pytest.mark.determinism

T = TypeVar("T")
SEEDS = tuple(range(64))
TOKENS = 32


def _run(target: Target, work: Callable[[AsyncOrchClient], Awaitable[T]]) -> T:
    """Run ``work`` with an async client of the target on a private event loop."""

    async def main() -> T:
        async with target.async_client(timeout=60) as client:
            return await work(client)

    return asyncio.run(main())


async def _session(client: AsyncOrchClient) -> str:
    return (await client.create_session(ttl_seconds=3600)).session_id


def _table(outputs: list[Output]) -> str:
    return "\n".join(
        f"  seed {o.seed:>6}  {o.replica_id:<8} {o.digest}  {''.join(o.texts)[:48]!r}"
        for o in sorted(outputs, key=lambda o: o.seed)
    )


@pytest.mark.req("ORCH-0113", "ORCH-0114", "ORCH-0117")
def test_64_seeds_byte_exact_on_every_replica(orch_target: Target) -> None:
    """Each of 64 seeds runs on two replicas (as ``started`` names them): one output each."""
    ready = _run(orch_target, ready_replicas)
    if len(ready) < 2:
        pytest.skip(f"ORCH-0114 needs two ready replicas in pool 'default'; ready: {ready}")
    result = _run(orch_target, lambda c: sweep(c, seeds=SEEDS, replicas=2, tokens=TOKENS))
    print(result.summary())
    assert not result.replica_problems(), result.failure_report()


@pytest.mark.req("ORCH-0113")
def test_control_distinct_seeds_diverge(orch_target: Target) -> None:
    async def work(client: AsyncOrchClient) -> list[Output]:
        sid = await _session(client)
        return await run_many(client, sid, range(1000, 1064), concurrency=32, tokens=TOKENS)

    outputs = _run(orch_target, work)
    distinct = len({o.tokens for o in outputs})
    assert distinct >= 60, (
        f"control for ORCH-0113: 64 distinct seeds gave only {distinct} distinct outputs "
        f"(need >= 60): the seed does not reach the engine, so no check here can see drift\n"
        + _table(outputs)
    )


@pytest.mark.req("ORCH-0113", "ORCH-0117")
def test_sampler_profile_is_named_and_pins_the_tokens(orch_target: Target) -> None:
    """The ``started`` event names the profile asked for, and the same profile gives the same
    tokens. Whether another profile changes them is the engine's business (an OpenAI-compatible
    engine has no profile at all), so it is not asked here."""

    async def work(client: AsyncOrchClient) -> list[Output]:
        sid = await _session(client)
        return [
            await run_strict(client, sid, 77, tokens=TOKENS, sampler_profile_version=profile)
            for profile in ("v1", "v2", "v2")
        ]

    v1, v2, v2_again = _run(orch_target, work)
    assert (v1.sampler_profile_version, v2.sampler_profile_version) == ("v1", "v2"), (
        "ORCH-0117: the started event must name the sampler_profile_version that produced "
        f"the tokens; got {v1.sampler_profile_version!r} and {v2.sampler_profile_version!r}"
    )
    assert v2.tokens == v2_again.tokens, (
        f"ORCH-0113: seed 77 with profile v2 gave two outputs ({v2.digest} on {v2.replica_id}, "
        f"{v2_again.digest} on {v2_again.replica_id})"
    )


@pytest.mark.req("ORCH-0041")
def test_strict_without_seed_is_refused(orch_target: Target) -> None:
    async def work(client: AsyncOrchClient) -> OrchError | None:
        sid = await _session(client)
        try:
            await client.submit_task(sid, DEFAULT_PROMPT, determinism="strict")
        except OrchError as exc:
            return exc
        return None

    error = _run(orch_target, work)
    assert error is not None, "ORCH-0041: a strict task without a seed was admitted"
    assert (error.status, error.kind) == (400, "INVALID_PARAMS"), (
        f"ORCH-0041: strict without a seed must be 400 INVALID_PARAMS, got {error}"
    )


@pytest.mark.req("ORCH-0115")
def test_concurrency_1_8_32_give_equal_streams(orch_target: Target) -> None:
    seeds = range(200, 232)

    async def work(client: AsyncOrchClient) -> dict[int, list[Output]]:
        sid = await _session(client)
        return {
            n: await run_many(client, sid, seeds, concurrency=n, tokens=TOKENS) for n in (1, 8, 32)
        }

    runs = _run(orch_target, work)
    problems = [
        f"concurrency {n}: seeds {bad} differ from concurrency 1"
        for n in (8, 32)
        if (bad := diverging_seeds(runs[1], runs[n]))
    ]
    assert not problems, (
        "ORCH-0115: a strict task's tokens must not depend on the number of concurrent tasks; "
        + "; ".join(problems)
    )


async def _read_events(
    http: httpx.AsyncClient, url: str, *, last_event_id: int | None = None, limit: int | None = None
) -> list[tuple[int, str, dict[str, Any]]]:
    """Raw SSE events ``(id, event, data)``; stop (and drop the connection) after ``limit``."""
    from httpx_sse import EventSource

    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    events: list[tuple[int, str, dict[str, Any]]] = []
    async with http.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, f"stream answered {response.status_code}"
        async with contextlib.aclosing(EventSource(response).aiter_sse()) as sse_events:
            async for sse in sse_events:
                if not sse.data and sse.event == "message":
                    continue  # a bare ``retry:`` field dispatches an empty event
                seq = ascii_int(sse.id)
                assert seq is not None, f"ORCH-0083: event without a numeric id: {sse!r}"
                events.append((seq, sse.event, json.loads(sse.data)))
                if sse.event in ("end", "error") or (limit is not None and len(events) >= limit):
                    break
    return events


@pytest.mark.req("ORCH-0083", "ORCH-0113")
def test_resumed_stream_equals_an_uninterrupted_one(orch_target: Target) -> None:
    """Cut the stream after k events, resume with ``Last-Event-ID: k``: same tokens."""
    cuts = (1, 12, TOKENS + 1)  # after started; mid-stream; before end only

    async def work(client: AsyncOrchClient) -> list[str]:
        sid = await _session(client)
        problems: list[str] = []
        async with httpx.AsyncClient(
            base_url=orch_target.url, headers=orch_target.auth_headers(), timeout=60
        ) as http:
            for cut in cuts:
                seed = 300 + cut
                reference = await run_strict(client, sid, seed, tokens=TOKENS)
                admitted = await client.submit_task(
                    sid, DEFAULT_PROMPT, max_tokens=TOKENS, seed=seed, determinism="strict"
                )
                url = admitted.stream_url
                head = await _read_events(http, url, limit=cut)
                tail = await _read_events(http, url, last_event_id=head[-1][0])
                ids = [event_id for event_id, _, _ in head + tail]
                if ids != list(range(1, len(ids) + 1)):
                    problems.append(f"cut after {cut}: event ids {ids} (resumed at {tail[0][0]})")
                tokens = tuple(
                    (data["token_id"], data["text"])
                    for _, kind, data in head + tail
                    if kind == "token"
                )
                if tokens != reference.tokens or tail[-1][1] != "end":
                    problems.append(
                        f"cut after {cut} (seed {seed}): resumed stream gave "
                        f"{len(tokens)} tokens ending {tail[-1][1]!r}, differing from the "
                        "uninterrupted stream"
                    )
        return problems

    problems = _run(orch_target, work)
    assert not problems, (
        "ORCH-0083/ORCH-0113: a stream resumed with Last-Event-ID must continue at n + 1 and "
        "equal the uninterrupted stream: " + "; ".join(problems)
    )


@pytest.mark.req("ORCH-0116")
def test_tokens_are_the_same_after_a_restart(orch_process: ServeFactory) -> None:
    """Kill the target (SIGKILL), start it again on the same state and configuration: the
    same tokens for new tasks, and the old tasks' streams replay unchanged."""
    seeds = range(400, 416)
    before_target = orch_process()

    async def work(client: AsyncOrchClient) -> list[Output]:
        return await run_many(client, await _session(client), seeds, concurrency=8, tokens=TOKENS)

    before = _run(before_target, work)
    before_target.kill()
    after_target = before_target.restart()
    after = _run(after_target, work)

    async def replay(client: AsyncOrchClient) -> list[int]:
        bad = []
        for output in before:
            result = await client.collect_stream(output.task_id, reconnect=False)
            if tuple((t.token_id, t.text) for t in result.tokens) != output.tokens:
                bad.append(output.seed)
        return bad

    replay_bad = _run(after_target, replay)
    bad = diverging_seeds(before, after)
    assert (bad, replay_bad) == ([], []), (
        "ORCH-0116: a strict task's tokens must be the same before and after a restart; "
        f"new tasks differ for seeds {bad}, replayed streams of old tasks for {replay_bad}"
    )


@pytest.mark.req("ORCH-0104", "ORCH-0106")
def test_strict_retry_after_worker_reset_equals_an_undisturbed_run(
    orch_serve: ServeFactory, orch_engine: EngineControl
) -> None:
    """r1 dies after 5 tokens; the retry on r2 must reproduce and continue the stream."""
    orch_engine.set_faults([rule({"die_after_tokens": 5}, replica="r1")])
    target = orch_serve(
        pools=[
            engine_pool(orch_engine, "default", ("r1", "r2"), max_attempts=2),
            engine_pool(orch_engine, "healthy", ("h1",)),
        ]
    )
    seed = 4242

    async def work(client: AsyncOrchClient) -> tuple[Output, list[Output], list[Any]]:
        sid = await _session(client)
        reference = await run_strict(client, sid, seed, tokens=TOKENS, pool="healthy")
        runs: list[Output] = []
        for _ in range(6):  # routing rotates: a few tries until one starts on r1
            output = await run_strict(client, sid, seed, tokens=TOKENS)
            runs.append(output)
            if output.replica_id == "r1":
                task = await client.get_task(output.task_id)
                rows = [(a.replica_id, a.state, a.error_kind) for a in task.attempts]
                return reference, runs, rows
        return reference, runs, []

    reference, runs, attempts = _run(target, work)
    assert attempts, f"no run started on r1 in {len(runs)} tries: {[o.replica_id for o in runs]}"
    assert attempts == [("r1", "failed", "WORKER_RESET"), ("r2", "completed", None)], (
        f"ORCH-0104: the strict task must be retried on r2 after r1's reset; attempts {attempts}"
    )
    bad = [o for o in runs if o.tokens != reference.tokens]
    assert not bad, (
        "ORCH-0106: a strict retry after WORKER_RESET must reproduce the undisturbed stream "
        f"and continue it; differing runs:\n{_table(bad)}\nundisturbed:\n{_table([reference])}"
    )


@pytest.mark.req("ORCH-0113", "ORCH-0117")
def test_tokens_match_the_engine_snapshot(orch_target: Target, snapshot: SnapshotAssertion) -> None:
    """The pinned cases of the target's engine and version equal ``snapshots/``."""

    async def work(client: AsyncOrchClient) -> list[Output]:
        sid = await _session(client)
        return [
            await run_strict(
                client, sid, seed, prompt=prompt, tokens=TOKENS, sampler_profile_version=profile
            )
            for prompt, seed, profile in SNAPSHOT_CASES
        ]

    outputs = _run(orch_target, work)
    engines = sorted({(o.engine, o.engine_version) for o in outputs})
    assert len(engines) == 1, (
        f"ORCH-0117: a snapshot pins one engine and version; the started events named {engines}"
    )
    name = snapshot_name(*engines[0])
    document = snapshot_document(outputs, tokens=TOKENS)
    pinned = snapshot.use_extension(DeterminismSnapshotExtension)
    if pinned(name=name) == document:
        return
    location = DeterminismSnapshotExtension.get_location(
        test_location=pinned.test_location, index=name
    )
    try:
        with open(location, encoding="utf-8") as fh:
            stored: str | None = fh.read()
    except FileNotFoundError:
        stored = None
    drift = describe_drift(stored, document)
    pytest.fail(
        f"ORCH-0113: the strict tokens of {name} drifted from the snapshot {location} "
        f"(record a deliberate change with --snapshot-update):\n  " + "\n  ".join(drift),
        pytrace=False,
    )
