"""``orchq trace report/merge/diff/accept`` on synthetic traces, and every kind of bad input:
one line naming the file, exit code 7, no traceback, no output file written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.exitcodes import SPEC_ERROR, TRACE_VIOLATION
from harness.trace.lock import parse_lock, render_lock
from harness.trace.report import Trace
from harness.trace.trace_reader import merge_traces, parse_trace
from tests.harness.trace.report_helpers import run_trace, synthetic_trace

_OUTCOMES = {
    "t.py::test_a": (("ORCH-0001",), "passed"),
    "t.py::test_b": (("ORCH-0002", "ORCH-0003"), "failed"),
}


def _write(path: Path, trace: Trace) -> Path:
    path.write_text(trace.render(), encoding="utf-8")
    return path


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    return _write(tmp_path / "t.json", synthetic_trace(_OUTCOMES))


@pytest.mark.parametrize("command", [[], ["report"], ["merge"], ["diff"], ["accept"], ["gate"]])
def test_every_command_has_help(command: list[str]) -> None:
    result = run_trace(*command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_report_writes_markdown_and_html(trace_file: Path, tmp_path: Path) -> None:
    md, html = tmp_path / "C.md", tmp_path / "r.html"
    result = run_trace("report", str(trace_file), "--md", str(md), "--html", str(html))
    assert result.exit_code == 0, result.output
    assert "verified 1, failing 2" in result.output
    text = md.read_text(encoding="utf-8")
    assert text.startswith("# OrchQueue v1 compliance")
    assert "| failing | 1 | 0 | 1 | 0 | 0 | 2 |" in text  # ORCH-0002 MUST, ORCH-0003 SHOULD
    assert "## 2 \\<More\\> &amp; \\| more" in text
    first = (md.read_bytes(), html.read_bytes())
    run_trace("report", str(trace_file), "--md", str(md), "--html", str(html))
    assert (md.read_bytes(), html.read_bytes()) == first


def test_parse_trace_round_trips(trace_file: Path) -> None:
    text = trace_file.read_text(encoding="utf-8")
    assert parse_trace(text, "t.json").render() == text


_BAD_TRACES = {
    "not JSON": ("{", "malformed trace: not JSON"),
    "old schema": ('{"schema": "orchq-trace/2"}', "an older orchq's format"),
    "a list": ("[]", "schema must be 'orchq-trace/4' (got None)"),
    "wrong type": (None, "tests[0].nodeid must be a string"),
    "bad outcome": (None, "tests[0].outcome must be one of"),
    "missing key": (None, "requirements[0]: missing key 'text'"),
    "edited state": (None, "ORCH-0002: state, tests or evidence do not follow"),
    "edited summary": (None, "summary does not follow"),
    "unknown ID": (None, "is not a requirement of this trace"),
}


def _mutate(case: str, data: dict[str, object]) -> None:
    tests = data["tests"]
    reqs = data["requirements"]
    assert isinstance(tests, list)
    assert isinstance(reqs, list)
    if case == "wrong type":
        tests[0]["nodeid"] = 3
    elif case == "bad outcome":
        tests[0]["outcome"] = "rerun"
    elif case == "missing key":
        del reqs[0]["text"]
    elif case == "edited state":
        reqs[1]["state"] = "verified"
    elif case == "edited summary":
        data["summary"]["states"]["verified"] = 9  # type: ignore[index]
    elif case == "unknown ID":
        tests[0]["requirements"] = ["ORCH-0042"]


@pytest.mark.parametrize("case", sorted(_BAD_TRACES))
@pytest.mark.parametrize("command", ["report", "merge", "diff"])
def test_malformed_trace_is_one_line_error(
    trace_file: Path, tmp_path: Path, case: str, command: str
) -> None:
    content, message = _BAD_TRACES[case]
    bad = tmp_path / "bad.json"
    if content is None:
        data = json.loads(trace_file.read_text(encoding="utf-8"))
        _mutate(case, data)
        content = json.dumps(data)
    bad.write_text(content, encoding="utf-8")
    out = tmp_path / "out"
    args = {
        "report": ["report", str(bad), "--md", str(out)],
        "merge": ["merge", str(trace_file), str(bad), "-o", str(out)],
        "diff": ["diff", str(trace_file), str(bad), "-o", str(out)],
    }[command]
    result = run_trace(*args)
    assert result.exit_code == SPEC_ERROR
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"error: {bad}")
    assert message in lines[0]
    assert not out.exists()


def test_missing_trace_is_one_line_error(tmp_path: Path) -> None:
    result = run_trace("report", str(tmp_path / "nope.json"))
    assert result.exit_code == SPEC_ERROR
    assert result.output.strip() == f"error: {tmp_path / 'nope.json'}: trace not found"


# ---------------------------------------------------------------- merge


def test_merge_keeps_the_worse_outcome_of_a_test_in_two_shards(tmp_path: Path) -> None:
    a = synthetic_trace({"t.py::x": (("ORCH-0001",), "passed")})
    b = synthetic_trace(
        {"t.py::x": (("ORCH-0001",), "flaky"), "t.py::y": (("ORCH-0002",), "skipped")}
    )
    result = run_trace(
        "merge",
        str(_write(tmp_path / "a.json", a)),
        str(_write(tmp_path / "b.json", b)),
        "-o",
        str(tmp_path / "m.json"),
    )
    assert result.exit_code == 0, result.output
    merged = parse_trace((tmp_path / "m.json").read_text(encoding="utf-8"), "m.json")
    assert merged.tests == {
        "t.py::x": (("ORCH-0001",), "flaky"),
        "t.py::y": (("ORCH-0002",), "skipped"),
    }
    assert merge_traces([("b", b), ("a", a)]).render() == merged.render()  # order-independent


def test_merge_refuses_shards_of_different_indexes(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.json", synthetic_trace({}))
    b = _write(tmp_path / "b.json", synthetic_trace({}, texts={2: "The server MUST do another."}))
    result = run_trace("merge", str(a), str(b), "-o", str(tmp_path / "m.json"))
    assert result.exit_code == SPEC_ERROR
    assert f"error: {b}: built from a different requirements index than {a}" in result.output
    assert not (tmp_path / "m.json").exists()


def test_merge_refuses_shards_with_different_locks(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.json", synthetic_trace({}))
    b = _write(tmp_path / "b.json", synthetic_trace({}, accepted={"ORCH-0001": "0" * 64}))
    result = run_trace("merge", str(a), str(b), "-o", str(tmp_path / "m.json"))
    assert result.exit_code == SPEC_ERROR
    assert "requirement ORCH-0001 differs" in result.output


# ---------------------------------------------------------------- diff


def test_diff_reports_every_kind_of_change(tmp_path: Path) -> None:
    base = synthetic_trace(
        {"t.py::a": (("ORCH-0001", "ORCH-0002"), "passed"), "t.py::b": (("ORCH-0003",), "failed")},
        levels={1: "MUST", 2: "MUST", 3: "SHOULD", 4: "MAY"},
    )
    head = synthetic_trace(
        {"t.py::a": (("ORCH-0001",), "failed"), "t.py::b": (("ORCH-0003",), "passed")},
        levels={1: "MUST", 2: "MUST", 3: "SHOULD", 5: "MUST"},
        texts={3: "The server SHOULD do it | differently."},
    )
    out = tmp_path / "comment.md"
    result = run_trace(
        "diff",
        str(_write(tmp_path / "b.json", base)),
        str(_write(tmp_path / "h.json", head)),
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert "### Status regressions (2)" in text
    assert "| ORCH-0001 | MUST | verified → failing |" in text
    assert "| ORCH-0002 | MUST | verified → untested |" in text
    assert "### Newly uncovered MUSTs (2)" in text  # 0002 lost its test, 0005 is new and untested
    assert "### New requirements (1)" in text and "| ORCH-0005 | MUST | untested |" in text
    assert "### Removed requirements (1)" in text and "| ORCH-0004 | MAY | untested |" in text
    assert "### Changed texts (1)" in text and "do it \\| differently." in text
    assert "### Status improvements (1)" in text and "failing → verified" in text
    stdout = run_trace("diff", str(tmp_path / "b.json"), str(tmp_path / "h.json"))
    assert stdout.output == text


def test_diff_of_equal_traces_says_nothing_changed(trace_file: Path) -> None:
    result = run_trace("diff", str(trace_file), str(trace_file))
    assert result.exit_code == 0
    assert "No requirement changed its text or state." in result.output


# ---------------------------------------------------------------- accept and the lock


def _index_and_lock(tmp_path: Path) -> tuple[Path, Path]:
    from harness.trace.index import Index, Requirement, normalise_text, text_sha256
    from harness.trace.index_file import render_index

    reqs = [
        Requirement(f"ORCH-{n:04d}", "MUST", "1 A", normalise_text(t), text_sha256(t), n)
        for n, t in (
            (1, "The server MUST a."),
            (2, "The server MUST b."),
            (3, "The server MUST c."),
        )
    ]
    index = tmp_path / "index.yaml"
    index.write_text(render_index(Index.from_requirements("spec.md", reqs)), encoding="utf-8")
    return index, tmp_path / "accepted.lock.yaml"


def test_accept_records_every_active_requirement(tmp_path: Path) -> None:
    index, lock = _index_and_lock(tmp_path)
    result = run_trace("accept", "--index", str(index), "--lock", str(lock))
    assert result.exit_code == 0, result.output
    accepted = parse_lock(lock.read_text(encoding="utf-8"), "lock")
    assert sorted(accepted) == ["ORCH-0001", "ORCH-0002", "ORCH-0003"]
    before = lock.read_bytes()
    run_trace("accept", "--index", str(index), "--lock", str(lock))
    assert lock.read_bytes() == before


def test_accept_with_a_trace_only_takes_requirements_whose_tests_all_passed(
    tmp_path: Path,
) -> None:
    from harness.trace.index_file import load_index
    from harness.trace.report import build_trace

    index, lock = _index_and_lock(tmp_path)
    old = {"ORCH-0002": "1" * 64, "ORCH-0003": "2" * 64, "ORCH-0009": "3" * 64}
    lock.write_text(render_lock(old), encoding="utf-8")
    trace = build_trace(
        load_index(index),
        "index.yaml",
        {"t::a": (("ORCH-0001",), "passed"), "t::b": (("ORCH-0002",), "failed")},
    )
    tfile = _write(tmp_path / "t.json", trace)
    result = run_trace("accept", "--index", str(index), "--lock", str(lock), "--trace", str(tfile))
    assert result.exit_code == 0, result.output
    accepted = parse_lock(lock.read_text(encoding="utf-8"), "lock")
    active = {r.id: r.sha256 for r in load_index(index).active()}
    # 0001 passed: accepted; 0002 failed and 0003 untested: kept; 0009 left the spec: dropped.
    assert accepted == {
        "ORCH-0001": active["ORCH-0001"],
        "ORCH-0002": "1" * 64,
        "ORCH-0003": "2" * 64,
    }


def test_accept_refuses_a_trace_of_another_index(tmp_path: Path) -> None:
    index, lock = _index_and_lock(tmp_path)
    other = _write(tmp_path / "t.json", synthetic_trace({}))
    result = run_trace("accept", "--index", str(index), "--lock", str(lock), "--trace", str(other))
    assert result.exit_code == SPEC_ERROR
    assert "made from another requirements index" in result.output
    assert not lock.exists()


@pytest.mark.parametrize("content", ["version: 1\naccepted: [\n", "just text\n", "version: 1\n"])
def test_accept_refuses_a_malformed_lock_and_keeps_it(tmp_path: Path, content: str) -> None:
    index, lock = _index_and_lock(tmp_path)
    lock.write_text(content, encoding="utf-8")
    result = run_trace("accept", "--index", str(index), "--lock", str(lock), "--trace", str(index))
    assert result.exit_code == SPEC_ERROR
    assert (
        result.output.startswith(f"error: {lock}") and "malformed acceptance lock" in result.output
    )
    assert lock.read_text(encoding="utf-8") == content


def test_accept_with_missing_index_is_one_line_error(tmp_path: Path) -> None:
    result = run_trace("accept", "--index", str(tmp_path / "i.yaml"), "--lock", str(tmp_path / "l"))
    assert result.exit_code == SPEC_ERROR
    assert result.output.strip() == f"error: {tmp_path / 'i.yaml'}: requirements index not found"


def test_lock_text_is_canonical_and_quotes_digit_hashes() -> None:
    accepted = {"ORCH-10000": "a" * 64, "ORCH-0002": "1" * 64}
    text = render_lock(accepted)
    assert text.index("ORCH-0002") < text.index("ORCH-10000")
    assert f'ORCH-0002: "{"1" * 64}"' in text
    assert parse_lock(text, "l") == accepted
    assert parse_lock(render_lock({}), "l") == {}


def test_gate_of_a_trace_names_each_unverified_requirement(trace_file: Path) -> None:
    must = run_trace("gate", str(trace_file))
    assert must.exit_code == TRACE_VIOLATION, must.output
    assert "ORCH-0002 (MUST, 2 <More> & | more): failing" in must.output
    assert "ORCH-0003" not in must.output  # a SHOULD: not gated at --level must
    should = run_trace("gate", str(trace_file), "--level", "should")
    assert should.exit_code == TRACE_VIOLATION
    assert "ORCH-0003 (SHOULD" in should.output


def test_gate_passes_a_merged_trace_whose_gated_requirements_are_verified(
    tmp_path: Path,
) -> None:
    shard_a = _write(tmp_path / "a.json", synthetic_trace({"a.py::t": (("ORCH-0001",), "passed")}))
    shard_b = _write(tmp_path / "b.json", synthetic_trace({"b.py::t": (("ORCH-0002",), "passed")}))
    merged = tmp_path / "merged.json"
    assert run_trace("merge", str(shard_a), str(shard_b), "-o", str(merged)).exit_code == 0
    assert run_trace("gate", str(shard_a)).exit_code == TRACE_VIOLATION  # ORCH-0002 untested
    result = run_trace("gate", str(merged))
    assert result.exit_code == 0, result.output
    assert "gate 'must' passed" in result.output


def test_trace_group_is_mounted_on_orchq() -> None:
    from click.testing import CliRunner

    from harness.cli import main

    result = CliRunner().invoke(main, ["trace", "--help"])
    assert result.exit_code == 0
    for command in ("accept", "diff", "merge", "report"):
        assert command in result.output
