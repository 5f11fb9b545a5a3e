"""The published JSON Schema of ``orchq-trace/4`` accepts what orchq writes, refuses drift."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

import jsonschema_rs
import pytest

from harness.trace.states import SCHEMA, SCHEMA_FILE, STATES
from tests.harness.trace.report_helpers import load_json, make_project

pytest_plugins = ["pytester"]


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((files("harness.trace") / SCHEMA_FILE).read_text("utf-8"))
    return data


def test_the_schema_names_the_format_and_every_state(schema: dict[str, Any]) -> None:
    assert schema["properties"]["schema"]["const"] == SCHEMA
    assert schema["$defs"]["state"]["enum"] == list(STATES)


def test_a_real_trace_with_every_state_is_valid(
    schema: dict[str, Any], pytester: pytest.Pytester
) -> None:
    make_project(pytester)
    pytester.runpytest("-p", "no:cacheprovider", "--reruns", "1", "--orch-trace", "t.json")
    trace = load_json(pytester.path / "t.json")
    assert {r["state"] for r in trace["requirements"]} >= {"verified", "partly-skipped", "flaky"}
    validator = jsonschema_rs.validator_for(schema)
    errors = [str(e) for e in validator.iter_errors(trace)]
    assert not errors, errors
    trace["requirements"][0]["state"] = "skipped-only"  # an older orchq's state name
    assert not validator.is_valid(trace)
    del trace["title"]
    assert not validator.is_valid(trace)


def test_a_trace_with_a_blamed_failure_is_valid(
    schema: dict[str, Any], pytester: pytest.Pytester
) -> None:
    from tests.harness.mutantkit import INDEX

    pytester.makeini("[pytest]\n")
    pytester.makepyfile(
        "import pytest\n"
        "from harness.checks import expect, orch_check\n\n"
        '@pytest.mark.req("ORCH-0071", "ORCH-0072", "ORCH-0083")\n'
        "def test_gap():\n"
        '    expect(True, "ORCH-0072: ids")\n'
        '    with orch_check("ORCH-0083"):\n'
        "        assert False\n"
    )
    pytester.runpytest(
        "-p", "no:cacheprovider", "--orch-index", str(INDEX), "--orch-trace", "t.json"
    )
    trace = load_json(pytester.path / "t.json")
    outcomes = {r["id"]: [t["outcome"] for t in r["tests"]] for r in trace["requirements"]}
    assert outcomes["ORCH-0071"] == ["not-reached"] and outcomes["ORCH-0083"] == ["failed"]
    validator = jsonschema_rs.validator_for(schema)
    errors = [str(e) for e in validator.iter_errors(trace)]
    assert not errors, errors
    del trace["tests"][0]["checked"]
    assert not validator.is_valid(trace)
