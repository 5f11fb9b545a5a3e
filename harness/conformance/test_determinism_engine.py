"""Determinism judged against a known token function, not against the target itself.

The target's replicas are served by the harness's own engine, whose tokens are
a known function of (prompt, seed, temperature, top_p)
(:func:`harness.engine.mock.expected_tokens`). So beyond "the same inputs give
the same stream" (``test_determinism``), every strict stream must be exactly
the function's output for the task's own inputs, on either replica and at any
concurrency; and the engine's ledger shows which seed, ``max_tokens`` and
sampling knobs the target really sent for each task. A target that truncates
seeds, drops a sampling knob or reorders tokens passes a self-consistency check
but fails this one.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.engine.control import EngineControl, ServeOnEngine, unique_tag
from harness.engine.mock import expected_tokens
from harness.wire import expect, read_stream

pytestmark = pytest.mark.determinism

CASES: tuple[tuple[int, float, float], ...] = (
    (0, 1.0, 1.0),
    (7, 0.7, 0.9),
    (4242, 1.3, 0.5),
    (2**31 + 5, 1.0, 1.0),
    (2**32 + 1, 0.2, 1.0),
    (2**40 + 3, 1.0, 0.95),
    (2**53 + 1, 1.0, 1.0),
    (2**63 - 1, 0.9, 0.8),
)
"""(seed, temperature, top_p): small and large seeds (over 32 bits, over 2^53) and knobs."""
TOKENS = 24


@pytest.mark.req("ORCH-0113", "ORCH-0114", "ORCH-0115", "ORCH-0044", "ORCH-0117")
def test_strict_streams_are_the_known_token_function_on_every_replica(
    serve_on_engine: ServeOnEngine, orch_engine: EngineControl
) -> None:
    tag = unique_tag("determinism")
    wire = serve_on_engine({"max_attempts": 1}, replicas=("r1", "r2"), slots=2)
    session = str(wire.new_session()["session_id"])
    tasks: list[tuple[str, str, int, float, float]] = []
    for _ in range(2):  # every case twice, all admitted at once: both replicas, 4 at a time
        for number, (seed, temperature, top_p) in enumerate(CASES):
            prompt = f"{tag} case {number}"
            params = {
                "seed": seed,
                "determinism": "strict",
                "temperature": temperature,
                "top_p": top_p,
            }
            admitted = wire.admit(session, prompt=prompt, max_tokens=TOKENS, params=params)
            tasks.append((str(admitted["task_id"]), prompt, seed, temperature, top_p))
    problems: list[str] = []
    replicas: set[str] = set()
    provenance: set[tuple[Any, ...]] = set()
    for task_id, prompt, seed, temperature, top_p in tasks:
        capture = read_stream(wire, task_id)
        started = next((e.data for e in capture.events if e.event == "started"), None)
        tokens = [(e.data["text"], e.data["token_id"]) for e in capture.tokens()]
        if started is None:
            problems.append(f"ORCH-0117: task {task_id} (seed {seed}) streamed no `started` event")
            continue
        replicas.add(str(started.get("replica_id")))
        provenance.add(
            (
                started.get("engine"),
                started.get("engine_version"),
                started.get("sampler_profile_version"),
            )
        )
        want = expected_tokens(prompt, seed, TOKENS, temperature, top_p)
        if tokens != want:
            at = next(
                (i for i, (a, b) in enumerate(zip(tokens, want, strict=False)) if a != b),
                min(len(tokens), len(want)),
            )
            problems.append(
                f"ORCH-0113: seed {seed} (temperature {temperature}, top_p {top_p}) on replica "
                f"{started.get('replica_id')}: the stream differs from the engine's known tokens "
                f"at token {at} (got {tokens[at : at + 1]}, want {want[at : at + 1]}; "
                f"{len(tokens)} of {len(want)} tokens)"
            )
    expect(
        replicas == {"r1", "r2"},
        f"ORCH-0114: 16 strict tasks admitted at once on two replicas of two slots ran on "
        f"{sorted(replicas)} only",
    )
    expect(
        len(provenance) == 1,
        f"ORCH-0117: one engine and version serve every replica, but the `started` events name "
        f"{sorted(provenance, key=str)}",
    )
    sent = _requests_by_prompt(orch_engine, tag)
    for _, prompt, seed, temperature, top_p in tasks[: len(CASES)]:
        for request in sent.get(prompt, []):
            got = (request.seed, request.max_tokens, request.temperature, request.top_p)
            if got != (seed, TOKENS, temperature, top_p):
                problems.append(
                    f"ORCH-0044: the engine request for the task with seed {seed} carried "
                    f"(seed, max_tokens, temperature, top_p) = {got}; the task's are "
                    f"{(seed, TOKENS, temperature, top_p)}"
                )
                break
    expect(not problems, "\n".join(problems))


def _requests_by_prompt(engine: EngineControl, tag: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for request in engine.requests(tag):
        out.setdefault(request.prompt, []).append(request)
    return out
