"""Helpers for the report tests: a pytester project built from ``fixtures/``.

The project is made the way a user makes one: the fixture spec is extracted
into an index with ``orchq spec extract``, accepted with ``orchq trace
accept``, then (for the ``suspect`` state) ORCH-0007's sentence is reworded and
extracted again, so its hash no longer matches the lock.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from harness.trace.index import Index, Requirement, normalise_text, text_sha256
from harness.trace.report import Trace, build_trace
from harness.trace.spec_cli import spec_group
from harness.trace.trace_cli import trace_group

FIXTURES = Path(__file__).parent / "fixtures"
SPEC = "specs/orchestrator-spec.md"
INDEX = "requirements/index.yaml"
LOCK = "requirements/accepted.lock.yaml"
OPENAPI = "contracts/openapi/orchqueue.yaml"
NEW_TEXT = "The server MUST keep FIFO order within a priority (suspect)."
OLD_TEXT = "The server MUST keep FIFO order within each priority (suspect)."

EXPECTED_STATES = {
    "ORCH-0001": "failing",  # also cited by test_failing
    "ORCH-0002": "failing",
    "ORCH-0003": "flaky",
    "ORCH-0004": "skipped",
    "ORCH-0005": "xfail",
    "ORCH-0006": "untested",
    "ORCH-0007": "suspect",
    "ORCH-0008": "verified",
    "ORCH-0009": "partly-skipped",
}


def run_spec(*args: str) -> Result:
    result = CliRunner().invoke(spec_group, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def run_trace(*args: str) -> Result:
    """``orchq trace ...`` in-process; never a traceback."""
    result = CliRunner().invoke(trace_group, list(args), catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def make_project(pytester: pytest.Pytester, suspect: bool = True, suite: bool = True) -> None:
    """Spec, index, lock and OpenAPI in ``pytester.path`` (the cwd); the states suite if asked."""
    pytester.makeini("[pytest]\norchq_index = requirements/index.yaml\n")  # opted in
    spec = pytester.path / SPEC
    spec.parent.mkdir(parents=True, exist_ok=True)
    text = (FIXTURES / "spec.md").read_text(encoding="utf-8")
    assert NEW_TEXT in text
    if suspect:
        spec.write_text(text.replace(NEW_TEXT, OLD_TEXT), encoding="utf-8")
        run_spec("extract", "--spec", SPEC, "--index", INDEX)
        run_trace("accept", "--index", INDEX, "--lock", LOCK)
    spec.write_text(text, encoding="utf-8")
    run_spec("extract", "--spec", SPEC, "--index", INDEX)
    if not suspect:
        run_trace("accept", "--index", INDEX, "--lock", LOCK)
    api = pytester.path / OPENAPI
    api.parent.mkdir(parents=True, exist_ok=True)
    api.write_text((FIXTURES / "openapi.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    if suite:
        pytester.makepyfile(test_states=(FIXTURES / "suite_states.py").read_text(encoding="utf-8"))


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def synthetic_trace(
    outcomes: dict[str, tuple[tuple[str, ...], str]],
    levels: dict[int, str] | None = None,
    texts: dict[int, str] | None = None,
    accepted: dict[str, str] | None = None,
) -> Trace:
    """A trace over a small in-memory index (no pytest run), for renderer and CLI tests."""
    levels = levels or {1: "MUST", 2: "MUST", 3: "SHOULD", 4: "MAY"}
    reqs = []
    for number, level in levels.items():
        text = (texts or {}).get(number, f"The server {level} do thing {number}.")
        reqs.append(
            Requirement(
                id=f"ORCH-{number:04d}",
                level=level,
                section="1 Basics" if number % 2 else "2 <More> & | more",
                text=normalise_text(text),
                sha256=text_sha256(text),
                line=number,
            )
        )
    index = Index.from_requirements("spec.md", reqs)
    return build_trace(index, "requirements/index.yaml", outcomes, accepted, "lock.yaml")
