"""The traceability pytest plugin (harness.plugin.trace), driven through ``pytester``.

Each test builds a tiny requirements index in pytester's directory so the
plugin is exercised exactly as a user's suite would exercise it: marker
validation at collection, per-case outcomes, requirement states, the JSON
report and its byte-identity (also across xdist).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.exitcodes import SPEC_ERROR, TRACE_VIOLATION
from harness.trace.index import Index, Requirement, normalise_text, text_sha256
from harness.trace.index_file import render_index
from harness.trace.states import SCHEMA, requirement_state

pytest_plugins = ["pytester"]

# ORCH-0003 is a tombstone; ORCH-0006 is never cited (untested).
_LEVELS = {1: "MUST", 2: "MUST", 3: "SHOULD", 4: "SHOULD", 5: "MAY", 6: "MUST", 7: "MUST", 8: "MAY"}

STATES_SOURCE = """
import pytest

@pytest.mark.req("ORCH-0001")
@pytest.mark.parametrize("x", [1, 2])
def test_verified(x):
    pass

@pytest.mark.req("ORCH-0002")
@pytest.mark.parametrize("x", [1, 2])
def test_one_case_fails(x):
    assert x == 1

@pytest.mark.req("ORCH-0002", "ORCH-0001")
def test_also_cites_two():
    pass

@pytest.mark.req("ORCH-0004")
@pytest.mark.skip(reason="not today")
def test_skipped():
    pass

@pytest.mark.req("ORCH-0005")
@pytest.mark.xfail(reason="known bug")
def test_xfailed():
    assert False

@pytest.mark.req("ORCH-0008")
@pytest.mark.xfail(reason="maybe fixed")
def test_xpassed():
    pass

@pytest.fixture
def broken():
    raise RuntimeError("setup blew up")

@pytest.mark.req("ORCH-0007")
def test_setup_error(broken):
    pass

def test_cites_nothing():
    pass
"""


def _write_index(directory: Path, name: str = "requirements/index.yaml") -> None:
    """A canonical index with eight requirements, ORCH-0003 deleted."""
    reqs = []
    for number, level in _LEVELS.items():
        text = f"The orchestrator {level} do thing number {number}."
        reqs.append(
            Requirement(
                id=f"ORCH-{number:04d}",
                level=level,
                section="1 Basics" if number < 5 else "2 More",
                text=normalise_text(text),
                sha256=text_sha256(text),
                line=number,
                deleted=number == 3,
            )
        )
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_index(Index.from_requirements("spec.md", reqs)), encoding="utf-8")


OPTED_IN = "[pytest]\norchq_index = requirements/index.yaml\n"
"""An ini that pins the rootdir and opts in to traceability."""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester project that opts in (ini ``orchq_index``), with the fixture index."""
    pytester.makeini(OPTED_IN)
    _write_index(pytester.path)
    return pytester


def _report(pytester: pytest.Pytester, name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((pytester.path / name).read_text(encoding="utf-8"))
    return data


# ---------------------------------------------------------------- registration


def test_marker_is_registered_with_help(pytester: pytest.Pytester) -> None:
    pytester.makeini(OPTED_IN)
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.req(*ids): the test verifies *"])


def test_options_have_their_own_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        ["orchq traceability:", "  --orch-index=PATH*", "  --orch-trace=PATH*"]
    )


def test_inert_without_markers_even_without_an_index(pytester: pytest.Pytester) -> None:
    """No citation and no --orch-trace: the index is never read (it does not exist here)."""
    pytester.makeini("[pytest]\naddopts = --strict-markers\n")
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert result.ret == 0


def test_cited_marker_passes_strict_markers(project: pytest.Pytester) -> None:
    project.makepyfile('import pytest\n\n@pytest.mark.req("ORCH-0001")\ndef test_a():\n    pass\n')
    result = project.runpytest("--strict-markers")
    result.assert_outcomes(passed=1)


# ---------------------------------------------------------------- collection errors


def test_unknown_id_is_a_collection_error(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_x='import pytest\n\n@pytest.mark.req("ORCH-9999")\ndef test_a():\n    pass\n'
    )
    result = project.runpytest("--collect-only")
    assert result.ret == SPEC_ERROR
    result.stdout.fnmatch_lines(
        ["test_x.py::test_a: unknown requirement ID ORCH-9999 (not in requirements/index.yaml)"]
    )
    assert "Traceback" not in result.stdout.str()


def test_tombstone_id_is_refused(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_x='import pytest\n\n@pytest.mark.req("ORCH-0003")\ndef test_a():\n    pass\n'
    )
    result = project.runpytest("--collect-only")
    assert result.ret == SPEC_ERROR
    result.stdout.fnmatch_lines(
        ["test_x.py::test_a: requirement ID ORCH-0003 was deleted (tombstone in *index.yaml)*"]
    )


@pytest.mark.parametrize("bad", ["'orch-1'", "'ORCH-0000'", "'ORCH-01'", "12"])
def test_malformed_id_is_refused(project: pytest.Pytester, bad: str) -> None:
    project.makepyfile(
        test_x=f"import pytest\n\n@pytest.mark.req({bad})\ndef test_a():\n    pass\n"
    )
    result = project.runpytest("--collect-only")
    assert result.ret == SPEC_ERROR
    result.stdout.fnmatch_lines(["test_x.py::test_a: malformed requirement ID *"])


def test_empty_marker_is_refused(project: pytest.Pytester) -> None:
    project.makepyfile(test_x="import pytest\n\n@pytest.mark.req()\ndef test_a():\n    pass\n")
    result = project.runpytest("--collect-only")
    assert result.ret == SPEC_ERROR
    result.stdout.fnmatch_lines(["test_x.py::test_a: @pytest.mark.req needs at least one *"])


def test_bad_citation_stops_before_any_test_runs(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_good="def test_fine():\n    pass\n",
        test_x='import pytest\n\n@pytest.mark.req("ORCH-9999")\ndef test_a():\n    pass\n',
    )
    result = project.runpytest()
    assert result.ret == SPEC_ERROR
    assert result.parseoutcomes().get("passed", 0) == 0


def test_missing_index_is_one_line_spec_error(pytester: pytest.Pytester) -> None:
    pytester.makeini(OPTED_IN)
    pytester.makepyfile('import pytest\n\n@pytest.mark.req("ORCH-0001")\ndef test_a():\n    pass\n')
    result = pytester.runpytest("--collect-only")
    assert result.ret == SPEC_ERROR
    result.stdout.fnmatch_lines(["requirements/index.yaml: requirements index not found"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_malformed_index_names_the_file(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    (pytester.path / "idx.yaml").write_text("version: 1\nspec: [\n", encoding="utf-8")
    pytester.makepyfile('import pytest\n\n@pytest.mark.req("ORCH-0001")\ndef test_a():\n    pass\n')
    result = pytester.runpytest("--orch-index", "idx.yaml")
    assert result.ret == SPEC_ERROR
    result.stdout.fnmatch_lines(["idx.yaml:*malformed index*"])


def test_missing_index_with_trace_fails_before_tests(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("--orch-trace", "out.json")
    assert result.ret == SPEC_ERROR
    assert "requirements/index.yaml: requirements index not found" in result.stderr.str()
    assert not (pytester.path / "out.json").exists()


def test_orch_index_option_is_used(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    _write_index(pytester.path, "elsewhere/reqs.yaml")
    pytester.makepyfile('import pytest\n\n@pytest.mark.req("ORCH-0001")\ndef test_a():\n    pass\n')
    result = pytester.runpytest("--orch-index", "elsewhere/reqs.yaml", "--orch-trace", "t.json")
    assert result.ret == 0
    assert _report(pytester, "t.json")["index"] == "elsewhere/reqs.yaml"


# ---------------------------------------------------------------- outcomes and states


def test_states_and_outcomes_in_the_json_report(project: pytest.Pytester) -> None:
    project.makepyfile(test_states=STATES_SOURCE)
    result = project.runpytest("--orch-trace", "trace.json")
    assert result.ret == 1  # pytest's own code for failing tests passes through
    report = _report(project, "trace.json")
    assert report["schema"] == SCHEMA
    assert report["index"] == "requirements/index.yaml"
    reqs = {r["id"]: r for r in report["requirements"]}  # type: ignore[attr-defined]
    assert list(reqs) == [f"ORCH-{n:04d}" for n in (1, 2, 4, 5, 6, 7, 8)]  # no tombstone
    assert {i: r["state"] for i, r in reqs.items()} == {
        "ORCH-0001": "verified",
        "ORCH-0002": "failing",
        "ORCH-0004": "skipped",
        "ORCH-0005": "xfail",
        "ORCH-0006": "untested",
        "ORCH-0007": "failing",
        "ORCH-0008": "xfail",
    }
    first = reqs["ORCH-0001"]
    assert first["tests"] == [
        {"nodeid": "test_states.py::test_also_cites_two", "outcome": "passed"},
        {"nodeid": "test_states.py::test_verified[1]", "outcome": "passed"},
        {"nodeid": "test_states.py::test_verified[2]", "outcome": "passed"},
    ]
    assert (first["level"], first["section"], first["text"]) == (
        "MUST",
        "1 Basics",
        "The orchestrator MUST do thing number 1.",
    )
    assert first["sha256"] == text_sha256(first["text"])
    assert (first["accepted_sha256"], first["operations"]) == (None, [])  # no lock, no OpenAPI
    assert reqs["ORCH-0002"]["tests"] == [
        {"nodeid": "test_states.py::test_also_cites_two", "outcome": "passed"},
        {"nodeid": "test_states.py::test_one_case_fails[1]", "outcome": "passed"},
        {"nodeid": "test_states.py::test_one_case_fails[2]", "outcome": "failed"},
    ]
    assert reqs["ORCH-0007"]["tests"] == [
        {"nodeid": "test_states.py::test_setup_error", "outcome": "failed"}
    ]
    assert reqs["ORCH-0008"]["tests"] == [
        {"nodeid": "test_states.py::test_xpassed", "outcome": "xpassed"}
    ]
    assert reqs["ORCH-0006"]["tests"] == []
    assert report["summary"]["states"] == {
        "failing": 2,
        "flaky": 0,
        "partly-skipped": 0,
        "skipped": 1,
        "suspect": 0,
        "untested": 1,
        "verified": 1,
        "xfail": 2,
    }
    assert report["summary"]["by_level"]["MUST"]["failing"] == 2
    tests = {t["nodeid"]: t for t in report["tests"]}  # type: ignore[attr-defined]
    assert tests["test_states.py::test_also_cites_two"] == {
        "evidence": "unit",
        "failure": None,
        "line": 13,
        "nodeid": "test_states.py::test_also_cites_two",
        "outcome": "passed",
        "path": "test_states.py",
        "requirements": ["ORCH-0001", "ORCH-0002"],
    }
    failing = tests["test_states.py::test_one_case_fails[2]"]
    assert failing["failure"] == "assert 2 == 1", failing
    assert "test_states.py::test_cites_nothing" not in tests


def test_teardown_error_makes_the_case_failed(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest

        @pytest.fixture
        def leaky():
            yield
            raise RuntimeError("teardown blew up")

        @pytest.mark.req("ORCH-0001")
        def test_a(leaky):
            pass
        """
    )
    project.runpytest("--orch-trace", "t.json")
    reqs = _report(project, "t.json")["requirements"]
    assert reqs[0]["state"] == "failing"  # type: ignore[index]


def test_strict_xpass_is_failed(project: pytest.Pytester) -> None:
    project.makepyfile(
        'import pytest\n\n@pytest.mark.req("ORCH-0001")\n'
        "@pytest.mark.xfail(strict=True)\ndef test_a():\n    pass\n"
    )
    project.runpytest("--orch-trace", "t.json")
    first = _report(project, "t.json")["requirements"][0]  # type: ignore[index]
    assert first["tests"] == [
        {"nodeid": "test_strict_xpass_is_failed.py::test_a", "outcome": "failed"}
    ]


def test_class_marker_applies_to_methods(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest

        @pytest.mark.req("ORCH-0001")
        class TestThing:
            @pytest.mark.req("ORCH-0002")
            def test_a(self):
                pass
        """
    )
    project.runpytest("--orch-trace", "t.json")
    reqs = _report(project, "t.json")["requirements"]
    assert [r["state"] for r in reqs[:2]] == ["verified", "verified"]  # type: ignore[index]


def test_report_is_canonical_and_byte_identical(project: pytest.Pytester) -> None:
    project.makepyfile(test_states=STATES_SOURCE)
    project.runpytest("--orch-trace", "a.json")
    project.runpytest("-p", "no:randomly", "--orch-trace", "b.json")
    first = (project.path / "a.json").read_bytes()
    assert first == (project.path / "b.json").read_bytes()
    text = first.decode("utf-8")
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"
    assert str(project.path) not in text


def test_junit_xml_carries_the_ids(project: pytest.Pytester) -> None:
    project.makepyfile(
        'import pytest\n\n@pytest.mark.req("ORCH-0002", "ORCH-0001", "ORCH-0001")\n'
        "def test_a():\n    pass\n"
    )
    project.runpytest("--junitxml=j.xml")
    xml = (project.path / "j.xml").read_text(encoding="utf-8")
    assert '<property name="requirements" value="ORCH-0001,ORCH-0002" />' in xml


def test_xdist_report_matches_serial(project: pytest.Pytester) -> None:
    project.makepyfile(test_states=STATES_SOURCE)
    serial = project.runpytest_subprocess("-p", "no:cacheprovider", "--orch-trace", "serial.json")
    parallel = project.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "xdist", "-n", "2", "--orch-trace", "xdist.json"
    )
    assert serial.ret == parallel.ret == 1
    assert (project.path / "serial.json").read_bytes() == (project.path / "xdist.json").read_bytes()


def test_xdist_bad_citation_is_spec_error(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_x='import pytest\n\n@pytest.mark.req("ORCH-9999")\ndef test_a():\n    pass\n'
    )
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-p", "xdist", "-n", "2")
    assert result.ret == SPEC_ERROR
    result.stdout.fnmatch_lines(["test_x.py::test_a: unknown requirement ID ORCH-9999 *"])


# ---------------------------------------------------------------- state rule


@pytest.mark.parametrize(
    ("outcomes", "state"),
    [
        ([], "untested"),
        (["passed"], "verified"),
        (["passed", "passed"], "verified"),
        (["passed", "failed"], "failing"),
        (["skipped", "failed"], "failing"),
        (["skipped"], "skipped"),
        (["skipped", "passed"], "partly-skipped"),
        (["xfailed"], "xfail"),
        (["xpassed", "skipped"], "xfail"),
        (["xfailed", "passed"], "xfail"),
        (["flaky", "passed"], "flaky"),
        (["flaky", "failed"], "failing"),
        (["flaky", "skipped"], "flaky"),
    ],
)
def test_requirement_state(outcomes: list[str], state: str) -> None:
    assert requirement_state(outcomes) == state


def test_unknown_phase_outcomes_are_ignored(pytestconfig: pytest.Config) -> None:
    """A plugin's extra outcome (pytest-rerunfailures' ``rerun``) must not crash the
    recorder; only the final attempt's outcome counts, and passing after a rerun is flaky."""
    from harness.plugin.trace_recorder import TraceRecorder
    from harness.plugin.trace_settings import PROPERTY, Tracing

    recorder = TraceRecorder(pytestconfig, Tracing(None))

    def report(outcome: str) -> pytest.TestReport:
        rep = pytest.TestReport(
            "t.py::test_a",
            ("t.py", 1, "test_a"),
            {},
            "passed",
            None,
            "call",
            user_properties=[(PROPERTY, "ORCH-0001")],
        )
        rep.outcome = outcome  # type: ignore[assignment]  # what such a plugin does
        return rep

    recorder.pytest_runtest_logreport(report("rerun"))
    assert recorder.outcomes == {}
    recorder.pytest_runtest_logreport(report("passed"))
    assert recorder.outcomes == {"t.py::test_a": (("ORCH-0001",), "passed")}
    assert recorder.final_outcomes() == {"t.py::test_a": (("ORCH-0001",), "flaky")}


GATE_SOURCE = """
import pytest

@pytest.mark.req("ORCH-0001", "ORCH-0002", "ORCH-0006", "ORCH-0007")
def test_all_musts():
    pass

@pytest.mark.req("ORCH-0004")
def test_one_should():
    pass
"""


def test_gate_must_passes_when_every_must_is_verified(project: pytest.Pytester) -> None:
    project.makepyfile(test_gate=GATE_SOURCE)
    result = project.runpytest("--orch-gate=must")
    assert result.ret == 0
    assert "traceability gate" not in result.stdout.str()


def test_gate_must_fails_with_exit_6_naming_each_unverified_must(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_gate=GATE_SOURCE.replace('"ORCH-0006", ', ""))
    result = project.runpytest("--orch-gate=must")
    assert result.ret == TRACE_VIOLATION
    result.stdout.fnmatch_lines(
        ["*orchq traceability gate (must)*", "*ORCH-0006 (MUST, *): untested*"]
    )
    assert "ORCH-0004" not in result.stdout.str()  # SHOULD: not gated at this level


def test_gate_should_also_requires_shoulds(project: pytest.Pytester) -> None:
    only_musts = GATE_SOURCE.split('@pytest.mark.req("ORCH-0004")')[0]
    project.makepyfile(test_gate=only_musts)
    assert project.runpytest("--orch-gate=must").ret == 0
    result = project.runpytest("--orch-gate=should")
    assert result.ret == TRACE_VIOLATION
    result.stdout.fnmatch_lines(["*ORCH-0004 (SHOULD, *): untested*"])
    assert "ORCH-0003" not in result.stdout.str()  # a tombstone is never gated


def test_gate_keeps_pytests_own_exit_code_when_tests_fail(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_gate=GATE_SOURCE.replace(
            "def test_all_musts():\n    pass", "def test_all_musts():\n    assert False"
        )
    )
    result = project.runpytest("--orch-gate=must")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*ORCH-0001 (MUST, *): failing*"])


def test_gate_none_never_changes_the_exit_code(project: pytest.Pytester) -> None:
    project.makepyfile(test_gate="def test_nothing_cited():\n    pass\n")
    assert project.runpytest("--orch-gate=none").ret == 0


def test_gate_works_under_xdist(project: pytest.Pytester) -> None:
    project.makepyfile(test_gate=GATE_SOURCE.replace('"ORCH-0006", ', ""))
    result = project.runpytest_subprocess("-p", "xdist", "-n", "2", "--orch-gate=must")
    assert result.ret == TRACE_VIOLATION
    result.stdout.fnmatch_lines(["*ORCH-0006 (MUST, *): untested*"])
