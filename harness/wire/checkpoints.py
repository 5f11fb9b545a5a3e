"""Checkpoints and the audit log over raw HTTP (spec sections 12.6, 12.7).

Like :mod:`harness.wire.runs`, each helper asserts what the spec promises and
names the requirement it relies on, so a check waiting for a checkpoint blames
the right ID when the target never requests one.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from harness.checks import RequirementFailure, expect, leading_ids
from harness.wire.http import Wire
from orchestrator.vocabulary import RUN_TERMINAL_STATES

__all__ = ["approvals", "audit", "decide", "wait_checkpoint"]


def approvals(wire: Wire, **params: Any) -> dict[str, Any]:
    """``GET /v1/approvals`` with ``params``; asserts 200 (ORCH-0365)."""
    response = wire.http.get("/v1/approvals", params=params)
    expect(
        response.status_code == 200,
        f"ORCH-0365: GET /v1/approvals must answer 200; got {response.status_code}: "
        f"{response.text[:300]}",
    )
    listed: dict[str, Any] = response.json()
    return listed


def wait_checkpoint(
    wire: Wire,
    run_id: str,
    checkpoint_id: str,
    what: str,
    timeout: float = 20.0,
) -> dict[str, Any]:
    """Poll the run's pending checkpoints until ``checkpoint_id`` is one; fail naming ``what``
    as soon as the run ended without it, or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        listed = approvals(wire, run_id=run_id, state="pending")
        for approval in listed.get("approvals", []):
            if approval.get("checkpoint_id") == checkpoint_id:
                return dict(approval)
        run = wire.http.get(f"/v1/runs/{run_id}")
        ended = run.status_code == 200 and run.json().get("state") in RUN_TERMINAL_STATES
        if ended or time.monotonic() > deadline:
            why = "the run ended" if ended else f"not pending within {timeout:.0f} s"
            raise RequirementFailure(
                f"{what}: checkpoint {checkpoint_id} of run {run_id}: {why}; pending: "
                f"{json.dumps(listed)[:300]}; the run: {run.text[:400]}",
                leading_ids(what),
                default=True,
            )
        time.sleep(0.01)


def decide(
    wire: Wire,
    run_id: str,
    checkpoint_id: str,
    decision: str,
    decided_by: str = "harness",
    **more: Any,
) -> httpx.Response:
    """``POST /v1/runs/{run_id}/checkpoints/{checkpoint_id}``: the raw answer."""
    body = {"decision": decision, "decided_by": decided_by, **more}
    return wire.post_json(f"/v1/runs/{run_id}/checkpoints/{checkpoint_id}", body)


def audit(wire: Wire, run_id: str) -> list[dict[str, Any]]:
    """The run's audit entries; asserts 200 (ORCH-0380)."""
    response = wire.http.get(f"/v1/runs/{run_id}/audit")
    expect(
        response.status_code == 200,
        f"ORCH-0380: GET /v1/runs/{run_id}/audit must answer 200; got "
        f"{response.status_code}: {response.text[:300]}",
    )
    entries: list[dict[str, Any]] = response.json().get("entries", [])
    return entries
