"""Evidence per requirement: each test's kind, the trace's ``evidence``, links, the gate's rules,
and ``orchq trace dod``.

A pytester project cites the fixture spec from tests of every kind: a suite
marker (``fuzz``, ``properties``, ``contract``), ``@pytest.mark.evidence``, a
test under an ``integration`` folder, one using a server fixture, a plain unit
test. The trace must name each test's kind, file and line, and each
requirement's evidence per kind; the reports must link requirements to the spec
and tests to their lines; a gate rule asking for a kind the requirement lacks
must refuse the run naming it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.exitcodes import SPEC_ERROR, TRACE_VIOLATION
from harness.trace.evidence import EvidenceRuleError, parse_rules
from tests.harness.trace.report_helpers import make_project, run_trace

pytest_plugins = ["pytester"]

_KINDS_SUITE = """
import pytest

@pytest.mark.req("ORCH-0001")
@pytest.mark.fuzz
def test_fuzzed():
    pass

@pytest.mark.req("ORCH-0001")
@pytest.mark.properties
def test_property():
    pass

@pytest.mark.req("ORCH-0001", "ORCH-0002")
@pytest.mark.evidence("cdc")
@pytest.mark.contract
def test_pact():
    pass

@pytest.mark.req("ORCH-0002")
def test_unit():
    assert 1 + 1 == 3, "two is not three"

@pytest.mark.req("ORCH-0008")
def test_with_a_server(server):
    pass
"""

_INTEGRATION = """
import pytest

@pytest.mark.req("ORCH-0008")
def test_in_the_integration_folder():
    pass
"""

_MARKERS = "markers =\n    fuzz: f\n    properties: p\n    contract: c\n    evidence(kind): e\n"


@pytest.fixture
def kinds(pytester: pytest.Pytester) -> pytest.Pytester:
    make_project(pytester, suspect=False, suite=False)
    pytester.makeini(f"[pytest]\norchq_index = requirements/index.yaml\n{_MARKERS}")
    pytester.makepyfile(test_kinds=_KINDS_SUITE)
    pytester.makeconftest("import pytest\n\n@pytest.fixture\ndef server():\n    return None\n")
    (pytester.path / "integration").mkdir()
    (pytester.path / "integration" / "test_flow.py").write_text(_INTEGRATION, encoding="utf-8")
    return pytester


def _trace(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, object]]:
    result = pytester.runpytest("-p", "no:cacheprovider", "--orch-report-dir", "out", *args)
    data = json.loads((pytester.path / "out" / "trace.json").read_text(encoding="utf-8"))
    return result, data


def test_each_test_has_its_kind_file_and_line(kinds: pytest.Pytester) -> None:
    _, data = _trace(kinds)
    tests = {t["nodeid"]: t for t in data["tests"]}  # type: ignore[attr-defined]
    assert {nodeid: t["evidence"] for nodeid, t in tests.items()} == {
        "integration/test_flow.py::test_in_the_integration_folder": "integration",
        "test_kinds.py::test_fuzzed": "fuzz",
        "test_kinds.py::test_pact": "cdc",
        "test_kinds.py::test_property": "property",
        "test_kinds.py::test_unit": "unit",
        "test_kinds.py::test_with_a_server": "integration",
    }
    assert (
        tests["test_kinds.py::test_unit"]["path"],
        tests["test_kinds.py::test_unit"]["line"],
    ) == (
        "test_kinds.py",
        19,  # where pytest places a test: its first decorator
    )
    assert tests["test_kinds.py::test_unit"]["failure"] == "AssertionError: two is not three"
    assert data["spec"] == "specs/orchestrator-spec.md"


def test_each_requirement_has_its_evidence_per_kind(kinds: pytest.Pytester) -> None:
    _, data = _trace(kinds)
    evidence = {r["id"]: r["evidence"] for r in data["requirements"]}  # type: ignore[attr-defined]
    assert evidence["ORCH-0001"] == {"cdc": "verified", "fuzz": "verified", "property": "verified"}
    assert evidence["ORCH-0002"] == {"cdc": "verified", "unit": "failing"}
    assert evidence["ORCH-0008"] == {"integration": "verified"}
    assert evidence["ORCH-0006"] == {}


def test_reports_link_requirements_to_the_spec_and_tests_to_their_lines(
    kinds: pytest.Pytester,
) -> None:
    _trace(kinds)
    md = (kinds.path / "out" / "COMPLIANCE.md").read_text(encoding="utf-8")
    assert "[ORCH-0002](../specs/orchestrator-spec.md#ORCH-0002)" in md
    assert "(../test_kinds.py#L19)" in md, "the failing test links to its file and line"
    assert "| cdc, unit \\(failing\\) |" in md
    html = (kinds.path / "out" / "report.html").read_text(encoding="utf-8")
    assert 'href="../specs/orchestrator-spec.md#ORCH-0001"' in html
    assert 'href="../test_kinds.py#L19"' in html
    assert "AssertionError: two is not three" in html
    assert html.count("<svg") == 1 and "http" not in html


def test_the_gate_refuses_a_requirement_without_the_kind_a_rule_asks_for(
    kinds: pytest.Pytester,
) -> None:
    result, _ = _trace(
        kinds, "-k", "not unit", "--orch-gate=must", "--orch-require-evidence", "MUST = property"
    )
    assert result.ret == TRACE_VIOLATION
    result.stdout.fnmatch_lines(
        [
            "*ORCH-0002 (MUST, 1 Tasks): no verified property evidence (has: cdc verified)*",
            "*ORCH-0008 (MUST NOT, *): no verified property evidence (has: integration verified)*",
        ]
    )
    assert "ORCH-0001 (MUST, 1 Tasks): no verified" not in result.stdout.str()


def test_a_malformed_rule_is_a_configuration_error(kinds: pytest.Pytester) -> None:
    result = kinds.runpytest("--orch-gate=must", "--orch-require-evidence", "MUST = proofs")
    assert result.ret == SPEC_ERROR
    result.stdout.fnmatch_lines(["*unknown kind 'proofs'*"])


def test_an_unknown_evidence_kind_is_a_collection_error(pytester: pytest.Pytester) -> None:
    make_project(pytester, suspect=False, suite=False)
    pytester.makepyfile(
        'import pytest\n\n@pytest.mark.req("ORCH-0001")\n@pytest.mark.evidence("vibes")\n'
        "def test_a():\n    pass\n"
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == SPEC_ERROR
    result.stdout.fnmatch_lines(["*evidence('vibes'): expected one of contract, cdc*"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("MUST = contract | property", [("MUST", ("contract", "property"))]),
        ("MUST NOT=unit;SHOULD = fuzz\n", [("MUST NOT", ("unit",)), ("SHOULD", ("fuzz",))]),
        ("", []),
    ],
)
def test_rules_parse(text: str, expected: list[tuple[str, tuple[str, ...]]]) -> None:
    assert [(r.level, r.kinds) for r in parse_rules(text)] == expected


@pytest.mark.parametrize("text", ["MUST contract", "OFTEN = unit", "MUST = "])
def test_malformed_rules_are_refused(text: str) -> None:
    with pytest.raises(EvidenceRuleError):
        parse_rules(text)


def test_trace_gate_applies_evidence_rules_to_a_trace(kinds: pytest.Pytester) -> None:
    _trace(kinds, "-k", "not unit")
    trace = str(kinds.path / "out" / "trace.json")
    refused = run_trace("gate", trace, "--require-evidence", "MUST = fuzz")
    assert refused.exit_code == TRACE_VIOLATION
    assert "ORCH-0002 (MUST, 1 Tasks): no verified fuzz evidence" in refused.output
    assert run_trace("gate", trace, "--require-evidence", "MUST = cdc | fuzz").exit_code in (
        0,
        TRACE_VIOLATION,
    )


def test_dod_fills_the_checklist_from_the_trace(kinds: pytest.Pytester, tmp_path: Path) -> None:
    _trace(kinds)
    trace = str(kinds.path / "out" / "trace.json")
    result = run_trace("dod", "ORCH-0002", "--trace", trace)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "ORCH-0002 — The server MUST reject a bad task (failing)."
    assert "- CDC: [x] Pact interactions recorded by the consumer: 1 of 1 test(s) passed" in lines
    assert any(line.startswith("- Properties: [ ] property tests: no test") for line in lines)
    assert "    failed: test_kinds.py::test_unit" not in lines  # unit is no checklist item
    assert lines[-1].startswith("- Compliance: [!] requirements/index.yaml maps it to 2 test(s)")
    missing = run_trace("dod", "ORCH-0999", "--trace", trace)
    assert missing.exit_code == SPEC_ERROR
    assert "no requirement ORCH-0999" in missing.output
