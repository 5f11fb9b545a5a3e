"""The gate of ``orchq verify``: judged over the conformance suite's scope.

``pytest --orch-gate`` judges a project's own test suite, which must cover the
whole spec. The conformance suite certifies an implementation over the wire,
so some requirements lie outside it by design (how ``orchq serve`` parses its
flags, say): a requirement no conformance test cites is reported as *outside
the suite*, not as a violation. Against ``--target``, tests that need an
in-process orchestratord are skipped; a requirement whose every citing test
was skipped for that reason is *not verifiable against a live target* and is
listed, never counted as passed nor as a violation; one whose other citing
tests ran is judged on those alone. A requirement whose every citing test was skipped
because the target does not claim its profile (``--profile core``) is *not claimed*:
listed, never counted as passed nor as a violation. Everything else follows
the plugin's states: a gated requirement that is not ``verified`` refuses the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.conformance import NOT_CLAIMED, NOT_VERIFIABLE_LIVE
from harness.trace.states import GATE_LEVELS, requirement_state

__all__ = ["NOT_CLAIMED_STATE", "OUTSIDE", "REMOTE_UNVERIFIABLE", "Judgement", "judge"]

OUTSIDE = "not in the suites run"
NOT_CLAIMED_STATE = "not claimed"
REMOTE_UNVERIFIABLE = "not verifiable live"


@dataclass(frozen=True)
class Judgement:
    category: dict[str, str]
    """requirement ID -> its state, or OUTSIDE / REMOTE_UNVERIFIABLE."""
    violations: list[dict[str, Any]]
    """Gated requirements (trace entries) that refuse the run, in ID order."""


def judge(
    requirements: Sequence[Mapping[str, Any]],
    skip_reasons: Mapping[str, str],
    *,
    gate: str,
    live: bool,
) -> Judgement:
    levels = GATE_LEVELS[gate]
    category: dict[str, str] = {}
    violations: list[dict[str, Any]] = []
    for req in requirements:
        tests = req.get("tests", [])
        state = str(req["state"])
        if not tests:
            category[req["id"]] = OUTSIDE
            continue
        if all(
            t.get("outcome") == "skipped"
            and skip_reasons.get(t["nodeid"], "").startswith(NOT_CLAIMED)
            for t in tests
        ):
            category[req["id"]] = NOT_CLAIMED_STATE
            continue
        if live:
            runnable = [
                t
                for t in tests
                if not (
                    t.get("outcome") == "skipped"
                    and skip_reasons.get(t["nodeid"], "").startswith(NOT_VERIFIABLE_LIVE)
                )
            ]
            if not runnable:
                category[req["id"]] = REMOTE_UNVERIFIABLE
                continue
            if len(runnable) < len(tests) and state in ("skipped", "partly-skipped"):
                # The plugin saw skips; judged on the tests a live target can run.
                state = requirement_state([str(t["outcome"]) for t in runnable])
        category[req["id"]] = state
        if req["level"] in levels and state != "verified":
            violations.append(dict(req))
    return Judgement(category, violations)
