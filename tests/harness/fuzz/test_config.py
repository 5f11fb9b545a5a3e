"""The fuzz suite reads the project's ``schemathesis.toml``, the file ``st run`` reads.

Spec: none directly; the expectations themselves are tested over the document
in ``tests/orchestrator/api/test_contract.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis

from harness import resources
from harness.fuzz import config
from harness.fuzz.document import contract_path
from harness.fuzz.runner import load_contract

REPO = Path(__file__).resolve().parents[3]


def test_the_committed_file_is_the_one_read() -> None:
    assert resources.path(resources.SCHEMATHESIS_CONFIG) == REPO / "schemathesis.toml"
    assert config.schemathesis_config().config_path == str(REPO / "schemathesis.toml")


def test_a_missing_file_is_an_error_not_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resources, "SCHEMATHESIS_CONFIG", "no-such-schemathesis.toml")
    with pytest.raises(FileNotFoundError, match=r"no-such-schemathesis\.toml"):
        config.schemathesis_config()


def test_the_contract_is_fuzzed_with_the_committed_expectations() -> None:
    schema = load_contract()
    assert schema.config.max_stream_events_for() == 4200
    assert schema.config.output.sanitization.enabled is False
    get_task = schema.find_operation_by_id("getTask")
    assert schema.config.checks_config_for(operation=get_task).use_after_free.enabled is False
    create_task = schema.find_operation_by_id("createTask")
    statuses = schema.config.checks_config_for(operation=create_task)
    assert "410" in statuses.positive_data_acceptance.expected_statuses
    assert "503" in statuses.not_a_server_error.expected_statuses


@pytest.mark.parametrize(("checks_option", "exception_holds"), [(None, True), (["all"], False)])
def test_the_exception_holds_unless_the_command_line_names_the_checks(
    checks_option: list[str] | None, exception_holds: bool
) -> None:
    """What ``st run`` does with ``--checks``: the command line outranks the file.

    So the documented command has no ``--checks`` (the file enables every check
    itself), and ``--checks all`` would turn the one exception back on.
    """
    loaded = config.schemathesis_config()
    loaded.projects.override.checks.update(included_check_names=checks_option)
    schema = schemathesis.openapi.from_path(contract_path(), config=loaded)
    get_task = schema.find_operation_by_id("getTask")
    enabled = schema.config.checks_config_for(operation=get_task, phase="stateful")
    assert enabled.use_after_free.enabled is not exception_holds
    get_session = schema.find_operation_by_id("getSession")
    assert schema.config.checks_config_for(operation=get_session).use_after_free.enabled
