"""The linked fuzz workflow walks sessions and tasks only, whatever else the contract gains."""

from __future__ import annotations

import yaml

from harness.fuzz.document import contract_path
from harness.fuzz.runner import load_contract
from harness.fuzz.stateful import OTHER_TAGS, WORKFLOW_TAGS


def test_every_tag_of_the_contract_is_either_walked_or_excluded() -> None:
    document = yaml.safe_load(contract_path().read_text(encoding="utf-8"))
    tags = {
        tag
        for methods in document["paths"].values()
        for operation in methods.values()
        for tag in operation.get("tags", [])
    }
    assert tags == {*WORKFLOW_TAGS, *OTHER_TAGS}


def test_the_workflow_holds_only_session_and_task_operations() -> None:
    workflow = load_contract().exclude(tag=list(OTHER_TAGS))
    labels = sorted(operation.ok().label for operation in workflow.get_all_operations())
    assert labels == [
        "DELETE /v1/sessions/{session_id}",
        "DELETE /v1/tasks/{task_id}",
        "GET /v1/sessions/{session_id}",
        "GET /v1/tasks/{task_id}",
        "GET /v1/tasks/{task_id}/stream",
        "POST /v1/sessions",
        "POST /v1/tasks",
    ]
