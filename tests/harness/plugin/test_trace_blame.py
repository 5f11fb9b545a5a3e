"""Blame in the trace: only the requirement whose check failed becomes failing.

The four failures the issue reported as blamed on the wrong requirement, each
in a test citing several IDs: a resume gap inside a test that also checks the
stream format; a task left running by a session delete, seen as a timeout; a
client that refused an answer's schema; one failing fuzz case among many
checks. Run serially and under xdist, the traces must be byte-identical.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness.mutantkit import INDEX

pytest_plugins = ["pytester"]

SUITE = '''
import pytest

from harness.checks import RequirementFailure, expect, note_passed, orch_check, register_explainer


class SchemaError(Exception):
    """What a typed client raises for an answer that is not its operation's schema."""


register_explainer(lambda exc: ("ORCH-0051",) if isinstance(exc, SchemaError) else None)


@pytest.mark.req("ORCH-0071", "ORCH-0072", "ORCH-0083")
def test_resume_gap():
    expect(True, "ORCH-0071: every event has id, event and data")
    expect(True, "ORCH-0072: ids 1, 2, 3")
    with orch_check("ORCH-0083"):
        assert [5, 7] == [5, 6], "the resumed stream skipped event 6"


@pytest.mark.req("ORCH-0034", "ORCH-0060", "ORCH-0063")
def test_session_delete_left_a_task_running():
    with orch_check("ORCH-0034"):
        raise RequirementFailure(
            "ORCH-0060: every admitted task reaches a terminal state: not reached within 5 s",
            ["ORCH-0060"], default=True,
        )
    expect(True, "ORCH-0063: the stream closes with error CANCELLED")


@pytest.mark.req("ORCH-0029", "ORCH-0032")
def test_client_refused_the_answer():
    raise SchemaError("GET /v1/tasks/{id} answered a body that does not match Task")


@pytest.mark.req("ORCH-0001", "ORCH-0004", "ORCH-0014", "ORCH-0015", "ORCH-0017", "ORCH-0019")
def test_one_fuzz_case_fails():
    for _ in range(40):
        note_passed(["ORCH-0001", "ORCH-0004", "ORCH-0014", "ORCH-0015", "ORCH-0017", "ORCH-0019"])
    raise RequirementFailure("ORCH-0017: createTask: Server error (500)", ["ORCH-0017"])


@pytest.mark.req("ORCH-0088", "ORCH-0089")
def test_unattributed_failure_fails_every_cited_requirement():
    raise RuntimeError("the harness could not tell")


@pytest.mark.req("ORCH-0090")
def test_passing():
    pass
'''

EXPECTED = {
    "ORCH-0083": "failing",
    "ORCH-0071": "verified",
    "ORCH-0072": "verified",
    "ORCH-0034": "failing",
    "ORCH-0060": "skipped",
    "ORCH-0063": "skipped",
    "ORCH-0051": "failing",
    "ORCH-0029": "skipped",
    "ORCH-0032": "skipped",
    "ORCH-0017": "failing",
    "ORCH-0001": "verified",
    "ORCH-0004": "verified",
    "ORCH-0014": "verified",
    "ORCH-0015": "verified",
    "ORCH-0019": "verified",
    "ORCH-0088": "failing",
    "ORCH-0089": "failing",
    "ORCH-0090": "verified",
}
"""Each requirement's state: failing only where its own check failed; ORCH-0060 and
ORCH-0063 were not reached (the failure came first) and nothing else judges them."""


def _trace(pytester: pytest.Pytester, name: str, *args: str) -> tuple[dict[str, object], str]:
    result = pytester.runpytest_subprocess(
        "--orch-index", str(INDEX), "--orch-trace", name, "-p", "no:cacheprovider", *args
    )
    result.assert_outcomes(failed=5, passed=1)
    text = (pytester.path / name).read_text(encoding="utf-8")
    return json.loads(text), result.stdout.str()


@pytest.mark.slow
def test_only_the_requirement_whose_check_failed_becomes_failing(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_suite=SUITE)
    serial, output = _trace(pytester, "serial.json")
    states = {r["id"]: r["state"] for r in serial["requirements"]}  # type: ignore[attr-defined]
    assert {i: states[i] for i in EXPECTED} == EXPECTED
    tests = {t["nodeid"]: t for t in serial["tests"]}  # type: ignore[attr-defined]
    resume = tests["test_suite.py::test_resume_gap"]
    assert (resume["blamed"], resume["checked"]) == (["ORCH-0083"], ["ORCH-0071", "ORCH-0072"])
    assert (
        "blamed"
        not in tests["test_suite.py::test_unattributed_failure_fails_every_cited_requirement"]
    )
    assert "failed (its check failed):\nORCH-0083 (MUST" in output
    assert "also cited, not blamed:\nORCH-0071" in output
    pytester.makeini("[pytest]\n")
    _trace(pytester, "xdist.json", "-n", "2")
    assert (pytester.path / "serial.json").read_bytes() == (
        pytester.path / "xdist.json"
    ).read_bytes()


def test_a_trace_with_blame_reads_back_and_merges(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    from harness.trace.trace_reader import merge_traces, parse_trace

    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_suite=SUITE)
    pytester.runpytest_subprocess("--orch-index", str(INDEX), "--orch-trace", "t.json")
    text = (pytester.path / "t.json").read_text(encoding="utf-8")
    trace = parse_trace(text, "t.json")
    assert trace.render() == text
    assert trace.blame["test_suite.py::test_resume_gap"].failed == ("ORCH-0083",)
    merged = merge_traces([("a", trace), ("b", trace)])
    assert merged.render() == text
