"""Tasks run through the harness's engine with faults, and what the checks read of them.

A check sets fault rules that select its own prompts (a :func:`unique_tag`),
starts a target whose replicas are the engine's (``serve_on_engine``), runs one
task to its end and looks at the outcome over HTTP (task, attempts, stream)
and at the engine's ledger (what the target made it generate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.checks import expect, orch_check
from harness.engine.control import EngineControl, ServeOnEngine, rule, unique_tag
from harness.engine.faults import RequestRecord
from harness.wire.http import Wire
from harness.wire.stream import read_stream

__all__ = ["Faulty", "engine_calls", "faulty_task", "stream_error", "task_error"]


@dataclass(frozen=True)
class Faulty:
    """One task run through an engine that suffers ``faults`` for it."""

    wire: Wire
    tag: str
    prompt: str
    task_id: str
    task: dict[str, Any]
    """The task once terminal."""


def faulty_task(
    serve_on_engine: ServeOnEngine,
    engine: EngineControl,
    faults: dict[str, Any],
    pool_keys: dict[str, Any],
    *,
    times: int | None = None,
    replicas: tuple[str, ...] = ("r1", "r2"),
    config: dict[str, Any] | None = None,
    max_tokens: int = 6,
    req: str,
    **params: Any,
) -> Faulty:
    """Set ``faults`` for a fresh prompt, start a target (top-level ``config`` keys too), run
    one task with these ``params`` to its end. A task that never ends fails ``req``, the
    requirement that says how it must end."""
    tag = unique_tag()
    engine.set_faults([rule(faults, prompt_contains=tag, times=times)])
    wire = serve_on_engine(pool_keys, replicas=replicas, **(config or {}))
    prompt = f"{tag} task"
    admitted = wire.admit(prompt=prompt, max_tokens=max_tokens, params=params)
    task_id = str(admitted["task_id"])
    with orch_check(req):
        task = wire.wait_terminal(task_id, timeout=25)
    return Faulty(wire, tag, prompt, task_id, task)


def task_error(task: dict[str, Any], kind: str, req: str, state: str = "failed") -> None:
    """The task ended ``state`` with error ``kind`` (requirement ``req``)."""
    error = task.get("error") or {}
    expect(
        task.get("state") == state and error.get("kind") == kind,
        f"{req}: the task must end {state} with {kind}; got {task.get('state')!r} {error}",
    )


def stream_error(wire: Wire, task: dict[str, Any], kind: str, req: str) -> list[tuple[str, int]]:
    """The stream of a task that ended with error ``kind``: well formed, closed by an ``error``
    event of that kind (``req``) holding the task's error (ORCH-0020); returns its tokens."""
    task_id = str(task["task_id"])
    capture = read_stream(wire, task_id)
    problems = capture.format_problems()
    expect(not problems, f"stream of task {task_id}: " + "; ".join(problems))
    last = capture.events[-1] if capture.events else None
    expect(
        last is not None and last.event == "error" and last.data.get("kind") == kind,
        f"{req}: the stream must close with an `error` event of kind {kind}; got "
        f"{(last.event, last.data) if last else None}",
    )
    assert last is not None
    error = task.get("error") or {}
    held = {k: error.get(k) for k in ("kind", "message", "retriable")}
    expect(
        last.data == held,
        f"ORCH-0020: the stream's `error` event {last.data} must hold the task's error {held}",
    )
    return [(e.data["text"], e.data["token_id"]) for e in capture.tokens()]


def engine_calls(engine: EngineControl, tag: str) -> list[RequestRecord]:
    """The tag's engine requests once the engine serves none of them any more."""
    return engine.wait_finished(tag, timeout=10.0)
