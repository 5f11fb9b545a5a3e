"""Self-tests of the pact <-> OpenAPI cross-validation: each wrong claim fails, naming it.

Each test breaks one interaction of the committed pact the way a consumer's pact
drifts from the provider's document (a typo in a path, a status nobody declared,
a renamed field) and checks that ``orchq pact check`` reports exactly that
interaction with its ORCH IDs, and exits 1; the control is the committed pact,
which agrees. The same command works on a team's own files: a pact of the
specification 3 format against an OpenAPI 3.0 document.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness import resources
from harness.pact.crosscheck import check_pact
from harness.pact.interactions import by_description
from harness.pact.model import PACT_FILE
from harness.pact.openapi_document import load_openapi, load_pact_file
from harness.pact.plugin import committed_pact_dir

pytestmark = pytest.mark.contract

PACT = committed_pact_dir() / PACT_FILE
OPENAPI = resources.path(resources.OPENAPI)

Mutation = Callable[[dict[str, Any]], None]


def _interaction(pact: dict[str, Any], description: str) -> dict[str, Any]:
    return next(i for i in pact["interactions"] if i["description"] == description)


def _findings(description: str, mutate: Mutation) -> list[str]:
    pact = copy.deepcopy(load_pact_file(PACT))
    mutate(_interaction(pact, description))
    report = check_pact(pact, load_openapi(OPENAPI), PACT_FILE)
    return [finding.line() for finding in report.findings]


def _path(interaction: dict[str, Any]) -> None:
    interaction["request"]["path"] = "/v1/pool"


def _method(interaction: dict[str, Any]) -> None:
    interaction["request"]["method"] = "PATCH"


def _status(interaction: dict[str, Any]) -> None:
    interaction["response"]["status"] = 418


def _field(interaction: dict[str, Any]) -> None:
    interaction["response"]["body"]["content"]["position"] = 0


def _type(interaction: dict[str, Any]) -> None:
    interaction["response"]["body"]["content"]["queue_position"] = "0"


def _header(interaction: dict[str, Any]) -> None:
    interaction["response"]["headers"]["X-Retry-In"] = ["1"]


def _header_type(interaction: dict[str, Any]) -> None:
    interaction["response"]["headers"]["X-Backoff-Ms"] = ["soon"]


def _request_field(interaction: dict[str, Any]) -> None:
    interaction["request"]["body"]["content"]["params"]["beam_width"] = 4


def _event(interaction: dict[str, Any]) -> None:
    content = interaction["response"]["body"]["content"]
    interaction["response"]["body"]["content"] = content.replace('"index":0', '"position":0')


@pytest.mark.parametrize(
    ("description", "mutate", "expected"),
    [
        ("list pools", _path, "path /v1/pool matches no path of the OpenAPI document"),
        ("check health", _method, "method PATCH is not declared for /healthz (declared: GET)"),
        ("get an unknown task", _status, "status 418 is not declared for GET /v1/tasks/{task_id}"),
        ("submit a strict task with a seed", _field, "'position' was unexpected"),
        ("submit a strict task with a seed", _type, '"0" is not of type "integer"'),
        (
            "submit a task while the queue of pool default is full",
            _header,
            "429 response of POST /v1/tasks (createTask): header X-Retry-In is not declared",
        ),
        (
            "submit a task while the queue of pool default is full",
            _header_type,
            "header X-Backoff-Ms = 'soon' does not validate",
        ),
        ("submit a strict task with a seed", _request_field, "'beam_width' was unexpected"),
        ("stream a completed task", _event, "event 2 (token) does not validate"),
    ],
    ids=["path", "method", "status", "field", "type", "header", "header-type", "request", "event"],
)
def test_a_claim_the_document_does_not_declare_is_named(
    description: str, mutate: Mutation, expected: str
) -> None:
    findings = _findings(description, mutate)
    ids = ", ".join(by_description()[description].req)
    assert findings, (
        f"a pact claiming what the OpenAPI document does not declare passed: {expected}"
    )
    assert all(f"{description!r} ({ids})" in line for line in findings), findings
    assert any(expected in line for line in findings), findings


def test_the_committed_pact_agrees_with_the_committed_document() -> None:
    """The control: unmutated, the same check finds nothing, so the findings above are real."""
    report = check_pact(load_pact_file(PACT), load_openapi(OPENAPI), PACT_FILE)
    assert report.checked == len(by_description())
    assert [f.line() for f in report.findings] == []


def test_refusals_of_what_is_not_declared_may_be_pinned() -> None:
    """405 for an undeclared method and 415 for an undeclared media type are agreement, but
    their error body must still be the document's error envelope."""
    assert _findings("delete the pool list, a method its path does not support", _noop) == []
    assert _findings("create a session with a body that is not JSON", _noop) == []

    def wrong_envelope(interaction: dict[str, Any]) -> None:
        interaction["response"]["body"]["content"] = {"detail": "Method Not Allowed"}

    findings = _findings("delete the pool list, a method its path does not support", wrong_envelope)
    assert any("the error body refusing an undeclared method" in f for f in findings), findings


def _noop(interaction: dict[str, Any]) -> None:
    return None


# ---------------------------------------------------------------- the command


def _orchq(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "pact", "check", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        timeout=120,
    )


def test_check_exits_0_on_the_shipped_files() -> None:
    done = _orchq()
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""
    assert "interaction(s) checked against" in done.stderr and "all agree" in done.stderr


def test_check_exits_1_with_one_line_per_finding(tmp_path: Path) -> None:
    pact = copy.deepcopy(load_pact_file(PACT))
    _path(_interaction(pact, "list pools"))
    _status(_interaction(pact, "get an unknown task"))
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(pact), encoding="utf-8")
    done = _orchq("--pact", str(broken))
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2, lines
    assert "'list pools' (ORCH-0119, ORCH-0120, ORCH-0121)" in lines[1]
    assert "'get an unknown task' (ORCH-0058)" in lines[0]
    assert "2 finding(s)" in done.stderr


@pytest.mark.parametrize(
    ("option", "content", "expected"),
    [
        ("--pact", "{", "not JSON"),
        ("--pact", '{"interactions": 1}', "not a pact file"),
        ("--openapi", "openapi: 3.1.0\n", "not an OpenAPI document"),
        ("--openapi", "swagger: '2.0'\npaths: {}\n", "expected 3.0, 3.1 or 3.2"),
    ],
)
def test_check_exits_2_on_unreadable_input(
    tmp_path: Path, option: str, content: str, expected: str
) -> None:
    bad = tmp_path / "bad"
    bad.write_text(content, encoding="utf-8")
    done = _orchq(option, str(bad))
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


_TEAM_OPENAPI = """\
openapi: 3.0.3
info: {title: Ledger, version: "1"}
paths:
  /accounts/{id}:
    get:
      operationId: getAccount
      x-req-id: [LEDGER-0002]
      parameters:
        - {in: path, name: id, required: true, schema: {type: string}}
      responses:
        "200":
          description: the account
          content:
            application/json:
              schema:
                type: object
                additionalProperties: false
                required: [id, balance, closed_at]
                properties:
                  id: {type: string}
                  balance: {type: integer, minimum: 0, exclusiveMinimum: false}
                  closed_at: {type: string, nullable: true}
"""


def _team_pact(balance: object) -> dict[str, Any]:
    return {
        "consumer": {"name": "web"},
        "provider": {"name": "ledger"},
        "metadata": {"pactSpecification": {"version": "3.0.0"}},
        "interactions": [
            {
                "description": "get an open account",
                "providerState": "account a1 exists",
                "request": {"method": "GET", "path": "/accounts/a1"},
                "response": {
                    "status": 200,
                    "headers": {"Content-Type": "application/json"},
                    "body": {"id": "a1", "balance": balance, "closed_at": None},
                },
            }
        ],
    }


def test_check_reads_a_teams_own_pact_and_openapi_30(tmp_path: Path) -> None:
    """A V3 pact (plain body, string headers) against OpenAPI 3.0 (``nullable``): the IDs
    at stake come from the operation's ``x-req-id`` when the pact names none."""
    openapi = tmp_path / "ledger.yaml"
    openapi.write_text(_TEAM_OPENAPI, encoding="utf-8")
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(_team_pact(10)), encoding="utf-8")
    bad.write_text(json.dumps(_team_pact(-1)), encoding="utf-8")

    agreed = _orchq("--pact", str(good), "--openapi", str(openapi), cwd=tmp_path)
    assert agreed.returncode == 0, agreed.stdout + agreed.stderr
    assert "good.json: 1 interaction(s) checked against ledger.yaml: all agree" in agreed.stderr

    refused = _orchq("--pact", str(bad), "--openapi", str(openapi), cwd=tmp_path)
    assert refused.returncode == 1, refused.stderr
    assert refused.stdout.startswith("bad.json: 'get an open account' (LEDGER-0002): ")
    assert "at /balance: -1 is less than the minimum of 0" in refused.stdout
