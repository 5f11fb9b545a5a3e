"""Every OpenAPI operation cites the ORCH requirements it implements (``x-req-id``).

The IDs are declared where the routes are (``openapi_extra`` in
``orchestrator/api/routes/``) and validated against ``requirements/index.yaml``
by ``orchq openapi regen`` (exit 7, one line): these tests prove the committed
document passes and that the validation really refuses an unknown, deleted,
malformed, unsorted or missing ID.

Spec: none. The x-req-id links to the spec are checked, not a requirement of it.
"""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import exitcodes
from harness.orchestrator_cli import req_id_problems
from harness.trace.index import Index
from harness.trace.index_file import load_index, render_index
from orchestrator.api.openapi import DEFAULT_PATH, openapi_document

REPO = Path(__file__).resolve().parents[3]
INDEX = REPO / "requirements" / "index.yaml"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document()


@pytest.fixture(scope="module")
def index() -> Index:
    return load_index(INDEX)


def operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def orchq(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_every_operation_cites_active_requirements(document: dict[str, Any], index: Index) -> None:
    assert req_id_problems(document, index) == []
    for where, operation in operations(document):
        ids = operation["x-req-id"]
        assert ids, where
        assert all(not index.is_tombstone(i) and i in index for i in ids), where


def test_the_committed_document_carries_the_same_ids(document: dict[str, Any]) -> None:
    committed = yaml.safe_load((REPO / DEFAULT_PATH).read_text(encoding="utf-8"))
    declared = {w: op["x-req-id"] for w, op in operations(document)}
    assert {w: op.get("x-req-id") for w, op in operations(committed)} == declared
    assert len(declared) == 30


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda op: op.pop("x-req-id"), "GET /healthz (healthz): no x-req-id"),
        (lambda op: op.__setitem__("x-req-id", []), "non-empty list of ORCH IDs"),
        (lambda op: op.__setitem__("x-req-id", "ORCH-0129"), "non-empty list of ORCH IDs"),
        (lambda op: op["x-req-id"].append("ORCH-9999"), "unknown requirement ORCH-9999"),
        (lambda op: op["x-req-id"].append("ORCH-12"), "malformed ID 'ORCH-12'"),
        (lambda op: op["x-req-id"].reverse(), "sorted and without duplicates"),
        (lambda op: op["x-req-id"].append("ORCH-0129"), "sorted and without duplicates"),
    ],
)
def test_validation_refuses_a_bad_x_req_id(
    document: dict[str, Any], index: Index, mutate: Any, expected: str
) -> None:
    broken = copy.deepcopy(document)
    mutate(broken["paths"]["/healthz"]["get"])
    problems = req_id_problems(broken, index)
    assert len(problems) == 1, problems
    assert expected in problems[0], problems


def tombstoned(index: Index, req_id: str) -> Index:
    requirements = dict(index.requirements)
    requirements[req_id] = dataclasses.replace(requirements[req_id], deleted=True)
    return Index.from_requirements(index.spec, requirements.values(), index.version)


def test_validation_refuses_a_deleted_requirement(document: dict[str, Any], index: Index) -> None:
    problems = req_id_problems(document, tombstoned(index, "ORCH-0124"))
    assert problems == [
        "GET /v1/admin/routing (getRouting): x-req-id cites deleted requirement ORCH-0124"
    ]


def test_regen_exits_7_in_one_line_and_writes_nothing(index: Index, tmp_path: Path) -> None:
    bad_index = tmp_path / "index.yaml"
    bad_index.write_text(render_index(tombstoned(index, "ORCH-0129")), encoding="utf-8")
    output = tmp_path / "openapi.yaml"
    for extra in ((), ("--check",)):
        result = orchq(
            "openapi", "regen", *extra, "--output", str(output), "--index", str(bad_index)
        )
        assert result.returncode == exitcodes.SPEC_ERROR, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert "GET /healthz (healthz): x-req-id cites deleted requirement ORCH-0129" in lines[0]
        assert "Traceback" not in result.stderr
        assert not output.exists()
    missing = orchq("openapi", "regen", "--output", str(output), "--index", str(tmp_path / "no"))
    assert missing.returncode == exitcodes.SPEC_ERROR
    assert "requirements index not found" in missing.stderr
    ok = orchq("openapi", "regen", "--output", str(output), "--index", str(INDEX))
    assert ok.returncode == 0, ok.stderr
    assert "x-req-id" in output.read_text(encoding="utf-8")
