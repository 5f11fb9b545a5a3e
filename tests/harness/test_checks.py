"""Blame the requirement, not the symptom: which IDs a failure is blamed on, and what passed."""

from __future__ import annotations

import pytest

from harness.checks import (
    RequirementFailure,
    blamed,
    expect,
    failure_blame,
    leading_ids,
    named_ids,
    orch_check,
    orch_checks,
    recording,
    register_explainer,
)


def test_ids_are_read_only_from_the_start_of_a_line() -> None:
    assert leading_ids("ORCH-0053/ORCH-0056: a queued task") == ("ORCH-0053", "ORCH-0056")
    assert leading_ids("LEDGER-0001: own prefix") == ("LEDGER-0001",)
    assert leading_ids("control for ORCH-0113: seeds") == ()
    assert leading_ids("ORCH-0135 setup: no retry") == ()
    assert named_ids("ORCH-0007: a\nORCH-0008: b\n  ORCH-0007: c\nassert x") == (
        "ORCH-0007",
        "ORCH-0008",
    )


def test_a_check_blames_what_fails_inside_it_and_records_what_passed() -> None:
    with recording() as record:
        with orch_check("ORCH-0072"):
            pass
        with pytest.raises(ZeroDivisionError) as caught, orch_check("ORCH-0083"):
            _ = 1 / 0
    assert blamed(caught.value) == ("ORCH-0083",)
    assert any("blamed on ORCH-0083" in note for note in caught.value.__notes__)
    assert record.passed == ["ORCH-0072"]


def test_a_wait_names_its_own_requirement_only_until_a_check_says_what_it_waited_for() -> None:
    timeout = RequirementFailure("ORCH-0060: not reached", ["ORCH-0060"], default=True)
    assert timeout.requirements == ("ORCH-0060",)
    with pytest.raises(RequirementFailure) as caught, orch_check("ORCH-0034"):
        raise timeout
    assert caught.value.requirements == ("ORCH-0034",)


def test_an_assertion_naming_its_requirement_keeps_it_inside_another_check() -> None:
    with pytest.raises(RequirementFailure) as caught, orch_check("ORCH-0034"):
        expect(False, "ORCH-0042: POST /v1/tasks must admit the task")
    assert caught.value.requirements == ("ORCH-0042",)


def test_expect_takes_ids_or_the_message_s_and_is_plain_without_any() -> None:
    with recording() as record:
        expect(True, "ORCH-0004: echoed")
        expect(True, "no id here")
        with pytest.raises(RequirementFailure) as named:
            expect(False, "bounds", "ORCH-0243")
        with pytest.raises(AssertionError) as plain:
            expect(False, "no id here")
    assert record.passed == ["ORCH-0004"]
    assert named.value.requirements == ("ORCH-0243",)
    assert type(plain.value) is AssertionError and blamed(plain.value) is None


def test_soft_checks_all_run_and_the_group_fails_on_every_failed_one() -> None:
    ran = []
    with (
        recording() as record,
        pytest.raises(RequirementFailure) as caught,
        orch_checks() as check,
    ):
        with check("ORCH-0140"):
            ran.append("0140")
            raise AssertionError("lost")
        with check("ORCH-0141"):
            ran.append("0141")
        with check("ORCH-0142"):
            ran.append("0142")
            raise TimeoutError("never ended")
    assert ran == ["0140", "0141", "0142"]
    assert caught.value.requirements == ("ORCH-0140", "ORCH-0142")
    assert "2 check(s) failed" in str(caught.value) and "never ended" in str(caught.value)
    assert record.passed == ["ORCH-0141"]


def test_a_failure_nobody_blamed_is_read_from_its_message_or_an_explainer() -> None:
    assert failure_blame(AssertionError("ORCH-0135: counted twice\nassert 2 == 1")) == (
        "ORCH-0135",
    )
    assert failure_blame(AssertionError("something else")) is None
    assert failure_blame(ValueError("ORCH-0135: not an assertion")) is None

    class ProtocolError(Exception):
        pass

    register_explainer(lambda exc: ("ORCH-0051",) if isinstance(exc, ProtocolError) else None)
    assert failure_blame(ProtocolError("GET /v1/tasks/{id}: not a Task")) == ("ORCH-0051",)
