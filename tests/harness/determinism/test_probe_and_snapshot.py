"""Unit tests of the counting and snapshot logic, on hand-made outputs (no server)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any, cast

import pytest

from harness.determinism.probe import (
    Output,
    ProbeError,
    SeedRow,
    Sweep,
    TokenSeq,
    diverging_seeds,
    run_strict,
)
from harness.determinism.snapshot import (
    DeterminismSnapshotExtension,
    describe_drift,
    documents_match,
    render_document,
    snapshot_document,
)
from orchestrator.client import AsyncOrchClient, StreamResult
from orchestrator.schemas import EndData


def out(seed: int, replica: str, tokens: TokenSeq, seconds: float = 0.01) -> Output:
    return Output(
        seed, "p", "v1", replica, "mock", "mock-1", f"t-{seed}-{replica}", tokens, seconds
    )


def toks(*ids: int) -> TokenSeq:
    return tuple((i, f" w{i}") for i in ids)


def sweep_of(rows: dict[int, list[Output]], ready: tuple[str, ...] = ("r1", "r2")) -> Sweep:
    return Sweep(tuple(SeedRow(s, tuple(o)) for s, o in rows.items()), 2, ready, 2)


def test_one_output_per_seed_on_both_replicas_is_ok() -> None:
    result = sweep_of({s: [out(s, "r1", toks(s, 1)), out(s, "r2", toks(s, 1))] for s in range(16)})
    assert result.ok
    assert result.diverging == [] and result.distinct_outputs == 16


def test_drift_between_replicas_names_orch_0114_and_within_one_orch_0113() -> None:
    rows = {s: [out(s, "r1", toks(s)), out(s, "r2", toks(s))] for s in range(16)}
    rows[3] = [out(3, "r1", toks(3)), out(3, "r2", toks(99))]
    rows[5] = [out(5, "r1", toks(5)), out(5, "r1", toks(98)), out(5, "r2", toks(5))]
    problems = sweep_of(rows).replica_problems()
    assert any(p.startswith("ORCH-0114") and p.endswith(": 3") for p in problems), problems
    assert any(p.startswith("ORCH-0113") and p.endswith(": 5") for p in problems), problems
    table = sweep_of(rows).seed_table(only_failing=True)
    assert [line.split()[0] for line in table.splitlines()[1:]] == ["3", "5"]


def test_only_one_replica_serving_is_reported() -> None:
    result = sweep_of({s: [out(s, "r1", toks(s)), out(s, "r1", toks(s))] for s in range(4)})
    assert result.replica_problems() == [
        "ORCH-0114 not verifiable: only replica(s) r1 served, the pool has 2 ready (r1, r2)"
    ]


def test_control_needs_15_of_16_distinct_seeds() -> None:
    same = {s: [out(s, "r1", toks(1)), out(s, "r2", toks(1))] for s in range(64)}
    assert sweep_of(same).control_problems()[0].startswith("control for ORCH-0113")
    assert not sweep_of(same).ok


def test_control_names_seeds_that_gave_no_token_rather_than_blaming_the_seed() -> None:
    rows = {s: [out(s, "r1", toks(s)), out(s, "r2", toks(s))] for s in range(64)}
    blind = sweep_of(rows | {s: [out(s, "r1", ()), out(s, "r2", ())] for s in range(8)})
    [problem] = blind.control_problems()
    assert "57 distinct outputs" in problem, problem
    assert "8 seed(s) gave no token at all (0, 1, 2, 3, 4, 5, 6, 7)" in problem, problem
    assert "--prompt" in problem and "does not reach the engine" not in problem, problem


class _EndsWithoutStarted:
    """A client whose server completes a task but never sends its ``started`` event."""

    async def submit_task(self, session_id: str, prompt: str, **_: Any) -> SimpleNamespace:
        return SimpleNamespace(task_id="task_x")

    async def collect_stream(self, task_id: str, **_: Any) -> StreamResult:
        end = EndData(tokens_out=0, finish_reason="stop", seed=5)
        return StreamResult(task_id, None, [], end, None, 1, [])


def test_a_completed_task_without_started_is_named_as_breaking_orch_0077() -> None:
    client = cast(AsyncOrchClient, _EndsWithoutStarted())
    with pytest.raises(ProbeError) as caught:
        asyncio.run(run_strict(client, "sess_x", 5))
    message = str(caught.value)
    assert "seed 5: task task_x ended without its `started` event" in message, message
    assert "ORCH-0077" in message, message


def test_diverging_seeds_compares_by_seed() -> None:
    a = [out(1, "r1", toks(1)), out(2, "r1", toks(2))]
    b = [out(2, "r2", toks(2)), out(1, "r2", toks(7))]
    assert diverging_seeds(a, b) == [1]


def test_snapshot_text_is_byte_stable_and_timing_is_not_compared() -> None:
    fast = snapshot_document([out(2, "r1", toks(1, 2), 0.001), out(1, "r2", toks(3), 0.001)])
    slow = snapshot_document([out(1, "r2", toks(3), 9.0), out(2, "r1", toks(1, 2), 9.0)])
    assert [c["seed"] for c in fast["cases"]] == [1, 2]
    assert render_document(fast) != render_document(slow)
    assert documents_match(render_document(fast), render_document(slow))
    ext = DeterminismSnapshotExtension()
    assert ext.matches(serialized_data=ext.serialize(fast), snapshot_data=render_document(slow))
    text = render_document(fast)
    assert text.endswith("}\n") and json.loads(text) == fast


def test_drift_is_described_per_case() -> None:
    stored = render_document(snapshot_document([out(1, "r1", toks(3, 4, 5))]))
    drifted = snapshot_document([out(1, "r1", toks(3, 9, 5))])
    assert describe_drift(stored, drifted) == [
        "seed 1 (profile v1, prompt 'p'): token 1 stored (4, ' w4'), got (9, ' w9')"
    ]
    assert not documents_match(stored, render_document(drifted))
    assert describe_drift(None, drifted) == ["no snapshot stored yet"]
