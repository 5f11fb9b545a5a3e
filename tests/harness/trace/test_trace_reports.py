"""The plugin's reports end to end: every state (suspect and flaky included) from one real run,
failure sections naming requirements, the gate on each violation, byte-identity
(twice, and serial vs ``-n 2``), and shards merged by ``orchq trace merge``."""

from __future__ import annotations

import pytest

from harness.exitcodes import SPEC_ERROR, TRACE_VIOLATION
from harness.trace.states import SCHEMA
from tests.harness.trace.report_helpers import (
    EXPECTED_STATES,
    LOCK,
    OPENAPI,
    load_json,
    make_project,
    run_trace,
)

pytest_plugins = ["pytester"]

_FILES = ("trace.json", "COMPLIANCE.md", "report.html")
_BASE = ("-p", "no:cacheprovider", "--reruns", "1")


@pytest.fixture
def states(pytester: pytest.Pytester) -> pytest.Pytester:
    make_project(pytester)
    return pytester


def _outputs(pytester: pytest.Pytester, directory: str) -> dict[str, bytes]:
    return {name: (pytester.path / directory / name).read_bytes() for name in _FILES}


def test_one_run_produces_every_state(states: pytest.Pytester) -> None:
    result = states.runpytest(*_BASE, "--orch-report-dir", "out")
    assert result.ret == 1
    report = load_json(states.path / "out" / "trace.json")
    assert report["schema"] == SCHEMA
    assert report["lock"] == LOCK
    assert report["openapi"] == OPENAPI
    reqs = {r["id"]: r for r in report["requirements"]}
    assert {i: r["state"] for i, r in reqs.items()} == EXPECTED_STATES
    assert report["summary"]["states"] == {
        "failing": 2,
        "flaky": 1,
        "partly-skipped": 1,
        "skipped": 1,
        "suspect": 1,
        "untested": 1,
        "verified": 1,
        "xfail": 1,
    }
    outcomes = {t["nodeid"]: t["outcome"] for t in report["tests"]}
    assert outcomes["test_states.py::test_flaky"] == "flaky"
    assert outcomes["test_states.py::test_failing"] == "failed"
    assert "test_states.py::test_cites_nothing" not in outcomes
    assert reqs["ORCH-0001"]["operations"] == ["POST /v1/tasks"]
    assert reqs["ORCH-0008"]["operations"] == ["GET /v1/tasks/{task_id}"]
    assert reqs["ORCH-0007"]["accepted_sha256"] != reqs["ORCH-0007"]["sha256"]
    assert reqs["ORCH-0008"]["accepted_sha256"] == reqs["ORCH-0008"]["sha256"]
    assert reqs["ORCH-0008"]["text"] == "The server MUST NOT lose an admitted task (verified)."
    assert reqs["ORCH-0008"]["level"] == "MUST NOT"
    assert reqs["ORCH-0005"]["section"] == "2 Queue & <Escaping>"
    md = (states.path / "out" / "COMPLIANCE.md").read_text(encoding="utf-8")
    assert "| suspect | 1 | 0 | 0 | 0 | 0 | 1 |" in md
    html = (states.path / "out" / "report.html").read_text(encoding="utf-8")
    assert "<script>alert" not in html
    assert 'data-state="flaky"' in html


def test_without_reruns_the_flaky_test_fails(states: pytest.Pytester) -> None:
    states.runpytest("--orch-trace", "t.json")
    reqs = {r["id"]: r["state"] for r in load_json(states.path / "t.json")["requirements"]}
    assert reqs["ORCH-0003"] == "failing"


def _assert_failure_names_requirements(result: pytest.RunResult) -> None:
    assert result.ret == 1
    out = result.stdout.str()
    block = out[out.index("_ test_failing _") :]
    assert "orchq requirements" in block
    assert "ORCH-0002 (MUST, 1 Tasks): The server MUST reject a bad task (failing)." in block
    assert "ORCH-0001 (MUST, 1 Tasks): The server MUST accept a task (verified)." in block


@pytest.mark.parametrize("extra", [(), ("--show-capture=no",)])
def test_a_failure_names_every_requirement_it_breaks(
    states: pytest.Pytester, extra: tuple[str, ...]
) -> None:
    _assert_failure_names_requirements(states.runpytest(*extra))


def test_junit_failure_text_names_the_requirement(states: pytest.Pytester) -> None:
    states.runpytest("--junitxml=j.xml")
    xml = (states.path / "j.xml").read_text(encoding="utf-8")
    assert "ORCH-0002 (MUST, 1 Tasks): The server MUST reject a bad task" in xml


@pytest.mark.slow
def test_reports_are_byte_identical_twice_and_under_xdist_with_named_failures(
    states: pytest.Pytester,
) -> None:
    states.runpytest(*_BASE, "--orch-report-dir", "a")
    states.runpytest(*_BASE, "--orch-report-dir", "b")
    xdist = states.runpytest_subprocess(*_BASE, "-p", "xdist", "-n", "2", "--orch-report-dir", "c")
    _assert_failure_names_requirements(xdist)  # the section survives xdist's serialisation
    first = _outputs(states, "a")
    assert first == _outputs(states, "b")
    assert first == _outputs(states, "c")
    assert str(states.path).encode() not in b"".join(first.values())


def test_merged_shards_equal_the_unsharded_report(states: pytest.Pytester) -> None:
    states.runpytest(*_BASE, "--orch-trace", "full.json")
    # test_verified runs in both shards; the rest is split between them.
    states.runpytest(*_BASE, "-k", "verified or failing or flaky", "--orch-trace", "a.json")
    states.runpytest(*_BASE, "-k", "verified or not (failing or flaky)", "--orch-trace", "b.json")
    a = load_json(states.path / "a.json")
    assert {r["id"]: r["state"] for r in a["requirements"]} != EXPECTED_STATES
    result = run_trace("merge", "a.json", "b.json", "-o", "merged.json")
    assert result.exit_code == 0, result.output
    assert (states.path / "merged.json").read_bytes() == (states.path / "full.json").read_bytes()


# ---------------------------------------------------------------- the gate, one violation each

_GATED = ["ORCH-0001", "ORCH-0002", "ORCH-0003", "ORCH-0004", "ORCH-0006", "ORCH-0007", "ORCH-0008"]

_VARIANTS = {
    "failing": ("ORCH-0002", "def test_x():\n    assert False\n"),
    "flaky": ("ORCH-0003", "def test_x(seen=[]):\n    seen.append(1)\n    assert len(seen) > 1\n"),
    "skipped": ("ORCH-0004", "@pytest.mark.skip(reason='later')\ndef test_x():\n    pass\n"),
    "partly-skipped": (
        "ORCH-0004",
        "@pytest.mark.parametrize('ok', [True, False])\n"
        "def test_x(ok):\n    if not ok:\n        pytest.skip('later')\n",
    ),
    "xfail": ("ORCH-0006", "@pytest.mark.xfail(reason='bug')\ndef test_x():\n    assert 0\n"),
    "untested": ("ORCH-0006", None),
    "suspect": ("ORCH-0007", "def test_x():\n    pass\n"),
}


def _gate_suite(req_id: str, variant: str | None) -> str:
    others = ", ".join(f'"{i}"' for i in _GATED if i != req_id)
    source = f"import pytest\n\n@pytest.mark.req({others})\ndef test_base():\n    pass\n\n"
    if variant is not None:
        source += f'@pytest.mark.req("{req_id}")\n' + variant
    return source


@pytest.mark.parametrize("state", sorted(_VARIANTS))
def test_gate_refuses_each_unverified_state_naming_the_id(
    pytester: pytest.Pytester, state: str
) -> None:
    req_id, variant = _VARIANTS[state]
    make_project(pytester, suspect=state == "suspect", suite=False)
    pytester.makepyfile(test_gate=_gate_suite(req_id, variant))
    result = pytester.runpytest("--reruns", "1", "--orch-gate=should")
    assert result.ret == (1 if state == "failing" else TRACE_VIOLATION)
    result.stdout.fnmatch_lines(["*orchq traceability gate (should)*", f"*{req_id} (*): {state}"])
    gate = result.stdout.str().split("orchq traceability gate")[1]
    assert gate.count("ORCH-") == 1, gate  # exactly the one violation


def test_gate_passes_when_everything_gated_is_verified(pytester: pytest.Pytester) -> None:
    make_project(pytester, suspect=False, suite=False)
    pytester.makepyfile(test_gate=_gate_suite("ORCH-0005", None))  # MAY: never gated
    result = pytester.runpytest("--orch-gate=should")
    assert result.ret == 0
    assert "traceability gate" not in result.stdout.str()


# ---------------------------------------------------------------- broken inputs


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("version: 1\naccepted: [\n", "malformed acceptance lock: invalid YAML"),
        ("version: 2\naccepted: {}\n", "malformed acceptance lock: unsupported version 2"),
        ("version: 1\naccepted:\n  ORCH-1: abc\n", "malformed requirement ID 'ORCH-1'"),
        ('version: 1\naccepted:\n  ORCH-0001: "xyz"\n', "ORCH-0001: sha256 must be 64"),
        (None, "cannot read acceptance lock: it is a directory"),
    ],
)
def test_broken_lock_is_one_line_spec_error_before_tests(
    pytester: pytest.Pytester, content: str | None, message: str
) -> None:
    make_project(pytester, suspect=False)
    lock = pytester.path / LOCK
    lock.unlink()
    if content is None:
        lock.mkdir()
    else:
        lock.write_text(content, encoding="utf-8")
    result = pytester.runpytest("--orch-trace", "t.json")
    assert result.ret == SPEC_ERROR
    err = result.stderr.str() + result.stdout.str()
    assert f"{LOCK}" in err
    assert message in err
    assert "Traceback" not in err
    assert " passed" not in result.stdout.str()
    assert not (pytester.path / "t.json").exists()


def test_missing_lock_means_no_suspects(pytester: pytest.Pytester) -> None:
    make_project(pytester)
    (pytester.path / LOCK).unlink()
    pytester.runpytest("--orch-trace", "t.json")
    report = load_json(pytester.path / "t.json")
    assert report["lock"] is None
    assert report["summary"]["states"]["suspect"] == 0
    assert {r["id"]: r["state"] for r in report["requirements"]}["ORCH-0007"] == "verified"


@pytest.mark.parametrize(
    ("x_req_id", "message"),
    [
        ('["ORCH-0099"]', "POST /v1/tasks: unknown requirement ID ORCH-0099"),
        ('["orch-1"]', "POST /v1/tasks: malformed requirement ID 'orch-1'"),
        ('"ORCH-0001"', "POST /v1/tasks: x-req-id must be a non-empty list"),
    ],
)
def test_bad_openapi_x_req_id_is_spec_error(
    pytester: pytest.Pytester, x_req_id: str, message: str
) -> None:
    make_project(pytester, suspect=False)
    api = pytester.path / OPENAPI
    api.write_text(
        api.read_text(encoding="utf-8").replace('["ORCH-0001", "ORCH-0002"]', x_req_id),
        encoding="utf-8",
    )
    result = pytester.runpytest("--orch-report-dir", "out")
    assert result.ret == SPEC_ERROR
    assert f"{OPENAPI}: bad x-req-id: {message}" in result.stderr.str() + result.stdout.str()
    assert not (pytester.path / "out").exists()


def test_unwritable_report_dir_is_one_line_error(states: pytest.Pytester) -> None:
    (states.path / "out").write_text("a file, not a directory", encoding="utf-8")
    result = states.runpytest("--orch-report-dir", "out")
    assert result.ret == SPEC_ERROR
    assert "ERROR: out/trace.json: cannot write" in result.stderr.str()
