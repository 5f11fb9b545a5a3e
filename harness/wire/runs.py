"""Runs over raw HTTP (spec section 12): register a definition, start a run, wait for its end.

Each helper asserts the answer the spec promises and names the requirement it
relies on, so a check that merely needs a finished run blames the right ID when
the target cannot even give it one.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import ValidationError

from harness.checks import RequirementFailure, expect, leading_ids
from harness.engine.control import unique_tag
from harness.wire.http import Wire
from harness.wire.stream import SseCapture, SseEvent, read_stream
from orchestrator.schemas import RUN_EVENT_MODELS
from orchestrator.vocabulary import RUN_TERMINAL_STATES

__all__ = [
    "definition",
    "read_run_events",
    "register",
    "run_event_problems",
    "start_run",
    "step",
    "steps_by_id",
    "task_text",
    "unique_name",
    "wait_run",
]


def definition(name: str, steps: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    """A definition document named ``name`` at version ``1``."""
    return {"name": name, "version": "1", "steps": steps, **more}


def step(step_id: str, prompt: str = "hello", **more: Any) -> dict[str, Any]:
    return {"id": step_id, "prompt": prompt, "max_tokens": 4, **more}


def register(wire: Wire, document: dict[str, Any]) -> dict[str, Any]:
    response = wire.post_json("/v1/definitions", document)
    expect(
        response.status_code == 201,
        f"ORCH-0312: POST /v1/definitions of a valid definition must answer 201; got "
        f"{response.status_code}: {response.text[:300]}",
    )
    registered: dict[str, Any] = response.json()
    return registered


def start_run(
    wire: Wire, name: str, session_id: str | None = None, version: str = "1", **body: Any
) -> dict[str, Any]:
    """Start a run of ``name``@``version`` (in a new session unless given)."""
    if session_id is None:
        session_id = str(wire.new_session()["session_id"])
    document = {"session_id": session_id, "definition": name, "version": version, **body}
    response = wire.post_json("/v1/runs", document)
    expect(
        response.status_code == 202,
        f"ORCH-0317: POST /v1/runs must answer 202; got {response.status_code}: "
        f"{response.text[:300]}",
    )
    run: dict[str, Any] = response.json()
    return run


def get_run(wire: Wire, run_id: str) -> dict[str, Any]:
    response = wire.http.get(f"/v1/runs/{run_id}")
    expect(
        response.status_code == 200,
        f"ORCH-0320: GET /v1/runs/{run_id} must answer 200; got {response.status_code}: "
        f"{response.text[:300]}",
    )
    run: dict[str, Any] = response.json()
    return run


def wait_run(
    wire: Wire,
    run_id: str,
    what: str = "ORCH-0325: every run reaches a terminal state",
    timeout: float = 20.0,
) -> dict[str, Any]:
    """Poll the run until it ended; fail naming ``what`` (its IDs first)."""
    deadline = time.monotonic() + timeout
    while True:
        run = get_run(wire, run_id)
        if run.get("state") in RUN_TERMINAL_STATES:
            return run
        if time.monotonic() > deadline:
            steps = {s.get("step_id"): s.get("state") for s in run.get("steps", [])}
            raise RequirementFailure(
                f"{what}: not reached within {timeout:.0f} s; run {run_id} is "
                f"{run.get('state')!r}, its steps {steps}: {json.dumps(run)[:600]}",
                leading_ids(what),
                default=True,
            )
        time.sleep(0.01)


def steps_by_id(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(s.get("step_id")): s for s in run.get("steps", [])}


def read_run_events(
    wire: Wire, run_id: str, *, last_event_id: int | None = None, timeout: float = 30.0
) -> SseCapture:
    """The run's event stream, read until the server closes it."""
    return read_stream(
        wire,
        run_id,
        last_event_id=last_event_id,
        timeout=timeout,
        path=f"/v1/runs/{run_id}/events",
    )


def run_event_problems(event: SseEvent) -> list[str]:
    """How ``event`` breaks the table of section 12.5 (ORCH-0351): an unknown name, or
    ``data`` without exactly its fields and their JSON types; empty when it does not."""
    model = RUN_EVENT_MODELS.get(event.event)  # type: ignore[call-overload]
    if model is None:
        return [f"{event.event!r} is not a run event"]
    try:
        # Strict and from JSON text: "1" is no integer, "queued" may stand for its enum.
        model.model_validate_json(json.dumps(event.data), strict=True)
    except ValidationError as exc:
        return [
            f"{'.'.join(map(str, error['loc'])) or 'data'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        ]
    return []


def unique_name(what: str) -> str:
    """A definition name no other run of the suite uses (the target keeps definitions)."""
    return unique_tag(what)[1:-1].replace(" ", "-")


def task_text(wire: Wire, task_id: str) -> str:
    """The texts of a task's ``token`` events, in order: what a step's output must be."""
    capture = read_stream(wire, task_id)
    return "".join(str(event.data["text"]) for event in capture.tokens())
