"""The task stream on the wire (spec section 5): format, numbering, closing, resume, replay.

Read raw (``harness.wire.read_stream``), not through the typed client, which
reconnects and de-duplicates and so would hide a duplicate on resume or a second
terminal event. Live-timing checks (events delivered as they happen, ``: ping``
on an idle stream, two readers at once) need a slow replica and a short ping
interval, so they start a target of their own (replicas on the harness's engine)
and skip against ``--orch-url``.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from harness.engine.control import ServeOnEngine
from harness.wire import SseCapture, Wire, expect, expect_error, read_stream

pytestmark = pytest.mark.contract

SLOW_TOKEN_MS = 40
"""One replica, one slot, 40 ms a token: events arrive while the check watches."""


def _format_ok(capture: SseCapture, what: str) -> None:
    expect(
        capture.status == 200 and capture.content_type.startswith("text/event-stream"),
        f"ORCH-0070: the stream answers 200 text/event-stream; got {capture.status} "
        f"{capture.content_type!r}: {capture.body[:200]}",
    )
    problems = capture.format_problems()
    expect(not problems, f"{what}: " + "; ".join(problems))


def _event_data(capture: SseCapture, name: str) -> list[dict[str, Any]]:
    return [e.data for e in capture.events if e.event == name and isinstance(e.data, dict)]


@pytest.mark.req(
    "ORCH-0065",
    "ORCH-0070",
    "ORCH-0071",
    "ORCH-0072",
    "ORCH-0073",
    "ORCH-0076",
    "ORCH-0077",
    "ORCH-0078",
    "ORCH-0079",
    "ORCH-0080",
    "ORCH-0081",
    "ORCH-0082",
    "ORCH-0084",
    "ORCH-0085",
)
def test_live_stream_then_identical_replay(wire: Wire) -> None:
    admitted = wire.admit(max_tokens=12, params={"seed": 11, "determinism": "strict"})
    task_id = str(admitted["task_id"])
    live = read_stream(wire, task_id)
    closed = wire.task(task_id)
    _format_ok(live, "live stream")
    expect(
        closed["state"] == "completed",
        f"ORCH-0065: the terminal state is persisted before the closing event; right after "
        f"the stream closed the task is {closed['state']!r}",
    )
    names = live.names
    expect(
        names[:1] == ["started"] and names.count("started") == 1,
        f"ORCH-0077: `started` comes once, before the first token; events {names}",
    )
    indices = [e.data.get("index") for e in live.tokens() if isinstance(e.data, dict)]
    expect(
        indices == list(range(12)),
        f"ORCH-0078: token indices run 0, 1, 2 ... without gap or repetition; got {indices}",
    )
    (started,) = _event_data(live, "started")
    ends = _event_data(live, "end")
    expect(
        names[-1] == "end" and len(ends) == 1,
        f"ORCH-0082: a completed task's stream closes with `end`; events {names}",
    )
    end = ends[0]
    expect(
        end["tokens_out"] == len(indices) == closed["tokens_out"],
        f"ORCH-0079: end.tokens_out {end['tokens_out']} must equal the {len(indices)} token "
        f"events and the task's tokens_out {closed['tokens_out']}",
    )
    expect(
        started["seed"] == end["seed"] == 11 and started["task_id"] == task_id,
        f"ORCH-0080: started/end carry the task's effective seed 11; got {started}, {end}",
    )
    replay = read_stream(wire, task_id)
    _format_ok(replay, "replay of a finished task")
    expect(
        [e.key() for e in replay.events] == [e.key() for e in live.events],
        "ORCH-0085/ORCH-0084: the replay of a finished task must be exactly the sequence sent "
        f"live; live ids {live.ids}, replay ids {replay.ids}",
    )


@pytest.mark.req("ORCH-0083", "ORCH-0084", "ORCH-0072", "ORCH-0073")
def test_last_event_id_resumes_without_gap_or_duplicate(wire: Wire) -> None:
    task_id = str(wire.admit(max_tokens=6)["task_id"])
    wire.wait_terminal(task_id)
    full = read_stream(wire, task_id)
    _format_ok(full, "replay")
    total = len(full.events)
    for after in (0, 1, 3, total - 1, total):
        resumed = read_stream(wire, task_id, last_event_id=after)
        expect(
            [e.key() for e in resumed.events] == [e.key() for e in full.events[after:]],
            f"ORCH-0083: Last-Event-ID {after} must continue with event {after + 1}, no "
            f"duplicate, no gap; got ids {resumed.ids} of 1..{total}",
        )
        _format_ok(resumed, f"resume after Last-Event-ID {after}")


NOT_ASCII_DIGITS = {
    "superscript-two": b"\xb2",
    "digit-superscript-three": b"1\xb3",
    "arabic-indic-three": "\u0663".encode(),
    "fullwidth-one": "\uff11".encode(),
    "underscored": b"1_0",
    "signed": b"+1",
}
"""``Last-Event-ID`` values that ``str.isdigit()`` or ``int()`` take for numbers."""


@pytest.mark.req("ORCH-0017", "ORCH-0200")
@pytest.mark.parametrize("value", NOT_ASCII_DIGITS.values(), ids=NOT_ASCII_DIGITS.keys())
def test_a_last_event_id_that_is_not_ascii_digits_is_invalid_params(
    wire: Wire, value: bytes
) -> None:
    task_id = str(wire.admit(max_tokens=2)["task_id"])
    response = wire.http.get(f"/v1/tasks/{task_id}/stream", headers=[(b"Last-Event-ID", value)])
    expect_error(
        response, 400, "INVALID_PARAMS", "ORCH-0200", f"Last-Event-ID {value!r} (not a number)"
    )


@pytest.mark.req("ORCH-0083", "ORCH-0074", "ORCH-0072")
def test_resume_of_a_live_stream_continues_seamlessly(serve_on_engine: ServeOnEngine) -> None:
    with serve_on_engine(replicas=("r1",), token_delay_ms=SLOW_TOKEN_MS) as wire:
        task_id = str(wire.admit(max_tokens=15)["task_id"])
        first = read_stream(wire, task_id, on_event=lambda e: e.seq >= 4)
        expect(
            first.ids == [1, 2, 3, 4],
            f"ORCH-0072: the first events are numbered 1..4; got {first.ids}",
        )
        running = wire.task(task_id)
        expect(
            running["state"] == "running",
            f"ORCH-0074: events of an unfinished task arrive as they happen; after 4 events "
            f"the task is {running['state']!r}",
        )
        rest = read_stream(wire, task_id, last_event_id=4)
        _format_ok(rest, "resumed live stream")
        whole = read_stream(wire, task_id)
        expect(
            [e.key() for e in first.events + rest.events] == [e.key() for e in whole.events],
            f"ORCH-0083: first part + resumed part must equal the whole stream; got ids "
            f"{first.ids} + {rest.ids} vs {whole.ids}",
        )


@pytest.mark.req("ORCH-0075", "ORCH-0074")
def test_two_readers_receive_the_whole_sequence(serve_on_engine: ServeOnEngine) -> None:
    with serve_on_engine(replicas=("r1",), token_delay_ms=SLOW_TOKEN_MS) as wire:
        task_id = str(wire.admit(max_tokens=10)["task_id"])
        captures: dict[int, SseCapture] = {}

        def reader(slot: int) -> None:
            with Wire(wire.url, wire.headers) as own:
                captures[slot] = read_stream(own, task_id)

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        expect(len(captures) == 2, f"ORCH-0075: both readers must finish; got {len(captures)}")
        for capture in captures.values():
            _format_ok(capture, "concurrent reader")
        expect(
            [e.key() for e in captures[0].events] == [e.key() for e in captures[1].events]
            and captures[0].names.count("token") == 10,
            f"ORCH-0075: each concurrent reader receives the whole sequence; got ids "
            f"{captures[0].ids} and {captures[1].ids}",
        )


@pytest.mark.req("ORCH-0086", "ORCH-0087", "ORCH-0063", "ORCH-0082", "ORCH-0020")
def test_idle_stream_pings_without_ids_then_closes_on_cancel(
    serve_on_engine: ServeOnEngine,
) -> None:
    with serve_on_engine(
        replicas=("r1",), token_delay_ms=SLOW_TOKEN_MS, sse_ping_interval_ms=50
    ) as wire:
        session_id = str(wire.new_session()["session_id"])
        holder = str(wire.admit(session_id, max_tokens=1000)["task_id"])
        wire.wait_running(holder)
        waiting = str(wire.admit(session_id, max_tokens=3)["task_id"])

        def cancel_after_pings() -> None:
            with Wire(wire.url, wire.headers) as other:
                threading.Event().wait(0.8)
                other.http.delete(f"/v1/tasks/{waiting}")

        canceller = threading.Thread(target=cancel_after_pings)
        canceller.start()
        capture = read_stream(wire, waiting, timeout=15)
        canceller.join(15)
        pings = [line for line in capture.lines if line.startswith(": ping")]
        expect(
            len(pings) >= 2,
            f"ORCH-0086: an idle stream sends `: ping` every ping interval (50 ms here); got "
            f"{len(pings)} ping(s) in {capture.lines[:20]}",
        )
        _format_ok(capture, "stream with pings")
        blocks = "\n".join(capture.lines).split("\n\n")
        bare_ids = [b for b in blocks if "\nid:" in f"\n{b}" and "\nevent:" not in f"\n{b}"]
        expect(not bare_ids, f"ORCH-0087: a comment must not carry an `id:` line; got {bare_ids}")
        expect(
            capture.ids == list(range(1, len(capture.events) + 1)),
            f"ORCH-0087: comments do not change event numbering; ids {capture.ids}",
        )
        task = wire.task(waiting)
        errors = _event_data(capture, "error")
        expect(
            capture.names[-1:] == ["error"]
            and errors[-1].get("kind") == "CANCELLED"
            and task["state"] == "cancelled",
            f"ORCH-0063/ORCH-0082: a cancelled task's stream closes with `error` CANCELLED; "
            f"events {capture.names}, task {task['state']!r}",
        )
        expect(
            errors[-1] == {k: task["error"][k] for k in ("kind", "message", "retriable")},
            f"ORCH-0020: the stream's error event {errors[-1]} must hold the task's error "
            f"{task['error']}",
        )
        wire.http.delete(f"/v1/tasks/{holder}")
