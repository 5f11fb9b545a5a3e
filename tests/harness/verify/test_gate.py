"""The verify gate: judged over the conformance suite's scope, never lenient inside it."""

from __future__ import annotations

from typing import Any

from harness.conformance import NOT_CLAIMED
from harness.plugin.target import LIVE_TARGET_SKIP
from harness.verify.gate import NOT_CLAIMED_STATE, OUTSIDE, REMOTE_UNVERIFIABLE, judge


def _req(req_id: str, level: str, state: str, *nodeids: str) -> dict[str, Any]:
    outcome = {"verified": "passed", "failing": "failed", "skipped": "skipped"}.get(state, "passed")
    return {
        "id": req_id,
        "level": level,
        "state": state,
        "tests": [{"nodeid": n, "outcome": outcome} for n in nodeids],
    }


REQS = [
    _req("ORCH-0001", "MUST", "verified", "a"),
    _req("ORCH-0002", "MUST", "untested"),
    _req("ORCH-0003", "MUST", "skipped", "b"),
    _req("ORCH-0004", "SHOULD", "failing", "c"),
    _req("ORCH-0005", "MUST", "xfail", "d"),
]


def test_requirements_no_conformance_test_cites_are_outside_not_violations() -> None:
    judgement = judge(REQS, {}, gate="must", live=False)
    assert judgement.category["ORCH-0002"] == OUTSIDE
    assert [r["id"] for r in judgement.violations] == ["ORCH-0003", "ORCH-0005"]


def test_live_only_skips_are_not_verifiable_live_but_other_skips_violate() -> None:
    live = judge(REQS, {"b": LIVE_TARGET_SKIP}, gate="must", live=True)
    assert live.category["ORCH-0003"] == REMOTE_UNVERIFIABLE
    assert [r["id"] for r in live.violations] == ["ORCH-0005"]
    other = judge(REQS, {"b": "some other reason"}, gate="must", live=True)
    assert "ORCH-0003" in [r["id"] for r in other.violations]
    in_process = judge(REQS, {"b": LIVE_TARGET_SKIP}, gate="must", live=False)
    assert "ORCH-0003" in [r["id"] for r in in_process.violations]


def test_gate_levels() -> None:
    assert judge(REQS, {}, gate="none", live=False).violations == []
    should = judge(REQS, {}, gate="should", live=False)
    assert [r["id"] for r in should.violations] == ["ORCH-0003", "ORCH-0004", "ORCH-0005"]


def test_suite_of_module_names() -> None:
    from harness.verify.progress import suite_of

    assert suite_of("harness/conformance/test_fuzz.py::test_x[a-b]") == "fuzz"
    assert suite_of("harness/conformance/test_contract_http.py::T::test_y") == "contract"
    assert suite_of("harness/conformance/test_e2e.py::test_haiku") == "e2e"


def test_live_target_judges_a_requirement_on_the_tests_it_can_run() -> None:
    mixed = {
        "id": "ORCH-0009",
        "level": "MUST",
        "state": "skipped",
        "tests": [
            {"nodeid": "ran", "outcome": "passed"},
            {"nodeid": "configured", "outcome": "skipped"},
        ],
    }
    other_skip = {**mixed, "id": "ORCH-0010"}
    reasons = {"configured": LIVE_TARGET_SKIP}
    live = judge([mixed], reasons, gate="must", live=True)
    assert live.category["ORCH-0009"] == "verified"
    assert live.violations == []
    # In-process, the same skip is a real gap; live, a skip for another reason is one too.
    assert judge([mixed], reasons, gate="must", live=False).violations
    assert judge([other_skip], {"configured": "flaky network"}, gate="must", live=True).violations


def test_a_profile_the_target_does_not_claim_is_not_claimed_and_nothing_else_is() -> None:
    reason = f"{NOT_CLAIMED}: the runs profile (--orch-profile core)"
    for live in (False, True):
        core = judge(REQS, {"b": reason}, gate="must", live=live)
        assert core.category["ORCH-0003"] == NOT_CLAIMED_STATE
        assert [r["id"] for r in core.violations] == ["ORCH-0005"]
    partly = _req("ORCH-0009", "MUST", "partly-skipped", "b", "e")
    partly["tests"][1]["outcome"] = "passed"
    judged = judge([partly], {"b": reason}, gate="must", live=False)
    assert judged.category["ORCH-0009"] == "partly-skipped"
    assert judged.violations
