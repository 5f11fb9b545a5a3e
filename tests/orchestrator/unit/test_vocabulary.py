"""orchestrator.vocabulary says what the spec says: error table, task states, stream events.

Every other module imports the wire's words from the vocabulary, so this is
where they are held against the normative text, read from the spec itself.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest

from orchestrator.vocabulary import (
    CLOSING_EVENTS,
    ERROR_KINDS,
    LIVE_STATES,
    PRIORITIES,
    TASK_ERROR_KINDS,
    TERMINAL_STATES,
    AttemptErrorKind,
    ErrorKind,
    ErrorKindInfo,
    StreamEvent,
    TaskState,
)

SPEC = Path(__file__).resolve().parents[3] / "specs" / "orchestrator-spec.md"
_ROW = re.compile(r"^\| `([A-Z_]+)` \| (\d{3}) \| (true|false) \|", re.MULTILINE)


def spec_error_table(spec: str) -> dict[str, ErrorKindInfo]:
    """Table 2.2: kind -> (status, retriable)."""
    section = spec.split("### 2.2 Error kinds", 1)[1].split("\n### ", 1)[0]
    return {
        kind: ErrorKindInfo(int(status), retriable == "true")
        for kind, status, retriable in _ROW.findall(section)
    }


def table_differences(spec_table: dict[str, ErrorKindInfo]) -> list[str]:
    problems = [f"{kind}: not in the spec" for kind in ERROR_KINDS if kind not in spec_table]
    for kind, expected in spec_table.items():
        got = ERROR_KINDS.get(kind)
        if got != expected:
            problems.append(f"{kind}: the spec says {expected}, the vocabulary {got}")
    return problems


def _between(spec: str, start: str, end: str) -> str:
    return spec.split(start, 1)[1].split(end, 1)[0]


@pytest.mark.req("ORCH-0019")
def test_the_error_table_is_the_specs() -> None:
    spec_table = spec_error_table(SPEC.read_text(encoding="utf-8"))
    assert len(spec_table) == len(ErrorKind)
    assert table_differences(spec_table) == []


def test_a_changed_row_of_the_spec_is_noticed() -> None:
    spec = SPEC.read_text(encoding="utf-8")
    changed = spec.replace(
        "| `ADMISSION_REJECT` | 429 | true |", "| `ADMISSION_REJECT` | 503 | true |"
    )
    assert changed != spec
    assert table_differences(spec_error_table(changed)) == [
        "ADMISSION_REJECT: the spec says ErrorKindInfo(status=503, retriable=True), "
        "the vocabulary ErrorKindInfo(status=429, retriable=True)"
    ]


@pytest.mark.req("ORCH-0059", "ORCH-0060")
def test_task_states_are_the_lifecycles() -> None:
    lifecycle = _between(SPEC.read_text(encoding="utf-8"), "### 4.5 Lifecycle", "- <a id=")
    paths = re.findall(r"`([^`]+)`", lifecycle)
    states = {state.strip() for path in paths for state in re.split(r"[→|]", path)}
    assert states == set(get_args(TaskState))
    assert states == LIVE_STATES | TERMINAL_STATES
    assert not LIVE_STATES & TERMINAL_STATES
    assert {"queued", "running"} == LIVE_STATES


@pytest.mark.req("ORCH-0062", "ORCH-0063", "ORCH-0064")
def test_task_error_kinds_are_those_that_end_a_task() -> None:
    spec = SPEC.read_text(encoding="utf-8")
    ending = set()
    for requirement in ("ORCH-0062", "ORCH-0063", "ORCH-0064"):
        sentence = spec.split(f"**{requirement}**", 1)[1].split("\n", 1)[0]
        ending |= set(re.findall(r"`([A-Z_]+)`", sentence))
    assert ending == TASK_ERROR_KINDS


@pytest.mark.req("ORCH-0076", "ORCH-0081")
def test_stream_events_are_the_specs() -> None:
    spec = SPEC.read_text(encoding="utf-8")
    table = _between(spec, "### 5.2 Events", "- <a id=")
    assert re.findall(r"^\| `([a-z]+)` \|", table, re.MULTILINE) == list(get_args(StreamEvent))
    closing = spec.split("**ORCH-0081**", 1)[1].split("\n", 1)[0]
    assert set(re.findall(r"`([a-z]+)`", closing)) == CLOSING_EVENTS


@pytest.mark.req("ORCH-0151")
def test_attempt_only_kinds_are_the_specs() -> None:
    sentence = SPEC.read_text(encoding="utf-8").split("**ORCH-0151**", 1)[1].split("\n", 1)[0]
    assert set(re.findall(r"`([A-Z_]+)`", sentence)) == set(AttemptErrorKind)
    assert not set(AttemptErrorKind) & set(ErrorKind)


def test_priorities_highest_first() -> None:
    assert PRIORITIES == ("interactive", "batch")
