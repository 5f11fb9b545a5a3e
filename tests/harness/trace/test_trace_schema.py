"""The published JSON Schema of ``orchq-trace/4`` accepts what orchq writes, refuses drift."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

import jsonschema_rs
import pytest

from harness.trace.report import SCHEMA, SCHEMA_FILE, STATES
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
