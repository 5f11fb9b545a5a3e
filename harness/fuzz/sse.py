"""The stream format of ORCH section 5, checked on the raw ``text/event-stream`` body.

Schemathesis can only say a stream is a string; these checks read it the way an
EventSource does (WHATWG framing) and name the requirement each problem breaks.
A run's stream (section 12.5) follows the same format with its own events
(:data:`RUN_STREAM`); its problems name the run stream's requirements.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.numerals import ascii_int
from orchestrator.schemas import RUN_EVENT_MODELS
from orchestrator.vocabulary import CLOSING_EVENTS as TERMINAL
from orchestrator.vocabulary import RUN_CLOSING_EVENTS

EVENT_FIELDS: dict[str, frozenset[str]] = {
    "started": frozenset(
        {"task_id", "replica_id", "engine", "engine_version", "seed", "sampler_profile_version"}
    ),
    "token": frozenset({"index", "text", "token_id"}),
    "end": frozenset({"tokens_out", "finish_reason", "seed"}),
    "error": frozenset({"kind", "message", "retriable"}),
}
"""ORCH-0076: the data fields of each event (spec table 5.2)."""


@dataclass(frozen=True)
class StreamRules:
    """A kind of stream: its events' data fields, its closing events, and the requirement
    each kind of problem breaks."""

    fields: Mapping[str, frozenset[str]]
    closing: frozenset[str]
    retry: str
    framing: str
    numbering: str
    data: str
    closing_rule: str


TASK_STREAM = StreamRules(
    EVENT_FIELDS, TERMINAL, "ORCH-0073", "ORCH-0071", "ORCH-0072", "ORCH-0076", "ORCH-0081"
)
RUN_STREAM = StreamRules(
    {name: frozenset(model.model_fields) for name, model in RUN_EVENT_MODELS.items()},
    RUN_CLOSING_EVENTS,
    "ORCH-0350",
    "ORCH-0350",
    "ORCH-0350",
    "ORCH-0351",
    "ORCH-0352",
)
"""A run's stream follows the task stream's format (ORCH-0350) with the events of the
table of section 12.5 (ORCH-0351), closed by one of its closing events (ORCH-0352)."""


@dataclass
class Event:
    """One dispatched event: its field lines as sent (a field may repeat)."""

    fields: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class ParsedStream:
    retry_lines: int
    retry_before_first_event: bool
    events: list[Event]


def parse(body: str) -> ParsedStream:
    """Split ``body`` into events; comments (``:``) are dropped, ``retry:`` counted."""
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    events: list[Event] = []
    current = Event()
    retry_lines = 0
    retry_before = False
    for line in lines:
        if line == "":
            if current.fields:
                events.append(current)
                current = Event()
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "retry":
            retry_lines += 1
            retry_before = retry_before or (not events and not current.fields)
            continue
        current.fields.setdefault(name, []).append(value)
    if current.fields:
        events.append(current)
    return ParsedStream(retry_lines, retry_before, events)


def stream_problems(
    body: str, *, after: int = 0, complete: bool = True, rules: StreamRules = TASK_STREAM
) -> list[str]:
    """Every way ``body`` breaks the stream format of ``rules``, each prefixed with its ORCH ID.

    ``after`` is the ``Last-Event-ID`` the request sent: the first event must
    then be ``after + 1``, and a resume past the end may legitimately be empty.
    ``complete=False`` says the reader stopped early: the closing event is not
    checked then, everything before it is.
    """
    parsed = parse(body)
    problems: list[str] = []
    if parsed.retry_lines != 1 or not parsed.retry_before_first_event:
        problems.append(
            f"{rules.retry}: `retry:` must come once, before any event; got {parsed.retry_lines} "
            f"retry line(s){'' if parsed.retry_before_first_event else ', not first'}"
        )
    names: list[str] = []
    expected_id = after + 1
    for position, event in enumerate(parsed.events, start=1):
        where = f"event #{position}"
        for name in ("id", "event", "data"):
            count = len(event.fields.get(name, []))
            if count != 1:
                problems.append(
                    f"{rules.framing}: {where} has {count} `{name}:` line(s), expected 1"
                )
        unknown = sorted(set(event.fields) - {"id", "event", "data"})
        if unknown:
            problems.append(f"{rules.framing}: {where} has unexpected field(s) {unknown}")
        ids = event.fields.get("id", [])
        if ids and expected_id > 0:
            if ascii_int(ids[0]) == expected_id:
                expected_id += 1
            else:
                problems.append(
                    f"{rules.numbering}: {where} has id {ids[0]!r}, expected {expected_id} "
                    "(ids 1, 2, 3 ... without gap or repetition)"
                )
                expected_id = 0  # one numbering problem is reported, not its echoes
        kinds = event.fields.get("event", [])
        kind = kinds[0] if kinds else ""
        names.append(kind)
        if kind not in rules.fields:
            problems.append(
                f"{rules.framing}: {where} has event {kind!r}, not one of {sorted(rules.fields)}"
            )
        datas = event.fields.get("data", [])
        if datas:
            problems.extend(_data_problems(where, kind, datas[0], rules))
    terminals = [i for i, name in enumerate(names) if name in rules.closing]
    if not complete or (not names and after > 0):
        return problems
    if len(terminals) != 1 or terminals[0] != len(names) - 1:
        closing = " or ".join(f"`{name}`" for name in sorted(rules.closing))
        problems.append(
            f"{rules.closing_rule}: exactly one {closing} event must close the stream as its "
            f"last event; events were {names}"
        )
    return problems


def _data_problems(where: str, kind: str, data: str, rules: StreamRules) -> list[str]:
    try:
        value: Any = json.loads(data)
    except ValueError:
        return [f"{rules.framing}: {where} `data:` is not JSON: {data[:120]!r}"]
    if not isinstance(value, dict):
        return [f"{rules.framing}: {where} `data:` is not a JSON object: {data[:120]!r}"]
    expected = rules.fields.get(kind)
    if expected is not None and set(value) != expected:
        return [
            f"{rules.data}: {where} ({kind}) data has fields {sorted(value)}, "
            f"expected {sorted(expected)}"
        ]
    return []
