"""The SSE wire format and Last-Event-ID resume, read raw with httpx.

The typed client is deliberately not used: it tolerates things the wire
contract forbids (it skips duplicates, for one), so these tests look at the
bytes the server writes.

Spec: ORCH-0063, ORCH-0070, ORCH-0071, ORCH-0072, ORCH-0073, ORCH-0074, ORCH-0075,
ORCH-0076, ORCH-0077, ORCH-0078, ORCH-0079, ORCH-0080, ORCH-0081, ORCH-0082, ORCH-0083,
ORCH-0084, ORCH-0085, ORCH-0086, ORCH-0087, ORCH-0117.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from orchestrator.client import OrchClient
from orchestrator.config import Config
from tests.orchestrator.runtime.gated_engine import Gate
from tests.support import pool, wait_until

RETRY_MS = 3000  # the config default, sse_retry_ms


@dataclass(frozen=True)
class Block:
    """One blank-line-terminated block of an event stream."""

    kind: str  # "retry", "comment" or "event"
    id: int = 0
    event: str = ""
    data: dict[str, Any] | None = None
    value: str = ""
    raw: str = ""


_ID = re.compile(r"^id: (\d+)$")
_EVENT = re.compile(r"^event: ([a-z_]+)$")


def parse_block(text: str) -> Block:
    lines = text.split("\n")
    assert lines and all(line != "" for line in lines), repr(text)
    if all(line.startswith(":") for line in lines):
        return Block("comment", value="\n".join(lines), raw=text)
    if len(lines) == 1 and lines[0].startswith("retry: "):
        return Block("retry", value=lines[0].removeprefix("retry: "), raw=text)
    # an event: exactly id, event and one data line, nothing else
    assert len(lines) == 3, f"an event block has id, event and one data line: {text!r}"
    id_match, event_match = _ID.match(lines[0]), _EVENT.match(lines[1])
    assert id_match is not None, text
    assert event_match is not None, text
    assert lines[2].startswith("data: "), text
    data = json.loads(lines[2].removeprefix("data: "))
    assert isinstance(data, dict), text
    return Block("event", id=int(id_match[1]), event=event_match[1], data=data, raw=text)


def parse_stream(body: str) -> list[Block]:
    """A complete stream body: every block ends with a blank line, nothing trails."""
    assert body.endswith("\n\n"), f"stream does not end on a block boundary: {body[-80:]!r}"
    assert "\r" not in body
    return [parse_block(chunk) for chunk in body[:-2].split("\n\n")]


def iter_blocks(response: httpx.Response) -> Iterator[Block]:
    """Blocks of a live stream as they arrive."""
    lines: list[str] = []
    for line in response.iter_lines():
        if line == "":
            if lines:
                yield parse_block("\n".join(lines))
            lines = []
        else:
            lines.append(line)
    assert not lines, f"stream ended inside a block: {lines!r}"


def events_of(blocks: list[Block]) -> list[Block]:
    return [b for b in blocks if b.kind == "event"]


def read_stream(
    base_url: str, task_id: str, last_event_id: int | None = None
) -> tuple[httpx.Response, list[Block]]:
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    with httpx.stream(
        "GET", f"{base_url}/v1/tasks/{task_id}/stream", headers=headers, timeout=30
    ) as response:
        body = response.read().decode("utf-8")
    assert response.status_code == 200, body
    return response, parse_stream(body)


def assert_well_formed(blocks: list[Block], *, first_id: int = 1) -> list[Block]:
    """``retry:`` once and first; ids contiguous from ``first_id``; one terminal event, last."""
    assert blocks, "empty stream"
    assert blocks[0].kind == "retry" and blocks[0].value == str(RETRY_MS)
    assert sum(b.kind == "retry" for b in blocks) == 1
    events = events_of(blocks)
    assert [e.id for e in events] == list(range(first_id, first_id + len(events)))
    terminal = [e for e in events if e.event in ("end", "error")]
    assert len(terminal) == 1, [e.event for e in events]
    assert events[-1] is terminal[0]
    assert blocks[-1] is terminal[0], "nothing may follow the terminal event"
    for e in events:
        assert e.event in {"started", "token", "end", "error"}
    return events


def assert_event_payloads(events: list[Block], task_id: str, seed: int, spv: str) -> None:
    assert events[0].event == "started"
    started = events[0].data
    assert started is not None
    assert set(started) >= {
        "task_id",
        "replica_id",
        "engine",
        "engine_version",
        "seed",
        "sampler_profile_version",
    }
    assert started["task_id"] == task_id
    assert started["seed"] == seed
    assert started["sampler_profile_version"] == spv
    assert started["engine"] == "mock" and started["engine_version"]
    assert started["replica_id"] in {"r1", "r2"}
    tokens = [e.data for e in events if e.event == "token"]
    assert all(t is not None for t in tokens)
    assert [t["index"] for t in tokens] == list(range(len(tokens)))  # type: ignore[index]
    for t in tokens:
        assert isinstance(t["text"], str) and isinstance(t["token_id"], int)  # type: ignore[index]
    assert [e.event for e in events[1:-1]] == ["token"] * len(tokens)
    end = events[-1]
    assert end.event == "end" and end.data is not None
    assert end.data["tokens_out"] == len(tokens)
    assert end.data["seed"] == seed
    assert end.data["finish_reason"] in {"length", "stop"}


def two_replicas(token_delay_ms: float = 0, **keys: Any) -> dict[str, Any]:
    return pool(
        "default",
        replicas=[
            {"replica_id": "r1", "token_delay_ms": token_delay_ms},
            {"replica_id": "r2", "token_delay_ms": token_delay_ms},
        ],
        **keys,
    )


# ---------------------------------------------------------------- wire format


@pytest.mark.req(
    "ORCH-0070",
    "ORCH-0071",
    "ORCH-0072",
    "ORCH-0073",
    "ORCH-0077",
    "ORCH-0078",
    "ORCH-0079",
    "ORCH-0080",
    "ORCH-0081",
    "ORCH-0117",
)
def test_live_stream_wire_format(client: OrchClient, session_id: str) -> None:
    admitted = client.submit_task(
        session_id, "wire format", max_tokens=16, seed=42, sampler_profile_version="v7"
    )
    response, blocks = read_stream(client.base_url, admitted.task_id)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers.get("cache-control") == "no-cache"
    events = assert_well_formed(blocks)
    assert_event_payloads(events, admitted.task_id, 42, "v7")
    assert len(events) == 1 + 16 + 1
    assert events[-1].data is not None and events[-1].data["finish_reason"] == "length"


@pytest.mark.req("ORCH-0084", "ORCH-0085")
def test_finished_stream_replays_identically(client: OrchClient, session_id: str) -> None:
    admitted = client.submit_task(session_id, "replay", max_tokens=12, seed=7)
    _, live = read_stream(client.base_url, admitted.task_id)
    wait_until(lambda: client.get_task(admitted.task_id).state == "completed")
    response, replay = read_stream(client.base_url, admitted.task_id)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = assert_well_formed(replay)
    assert_event_payloads(events, admitted.task_id, 7, "v1")
    assert [b.raw for b in events] == [b.raw for b in events_of(live)]


@pytest.mark.req("ORCH-0063", "ORCH-0081", "ORCH-0082", "ORCH-0085")
def test_cancelled_stream_ends_with_one_error_event(
    serve: Callable[..., Any], make_config: Callable[..., Config]
) -> None:
    server = serve(make_config(pools=[two_replicas(token_delay_ms=10)]))
    with OrchClient(server.url) as client:
        sid = client.create_session().session_id
        admitted = client.submit_task(sid, "to be cancelled", max_tokens=500)
        seen: list[Block] = []
        with httpx.stream(
            "GET", f"{server.url}/v1/tasks/{admitted.task_id}/stream", timeout=30
        ) as response:
            for block in iter_blocks(response):
                seen.append(block)
                if len(events_of(seen)) == 4:
                    client.cancel_task(admitted.task_id)
        events = assert_well_formed(seen)
        assert events[0].event == "started"
        error = events[-1]
        assert error.event == "error" and error.data is not None
        assert error.data["kind"] == "CANCELLED"
        assert isinstance(error.data["message"], str) and error.data["message"]
        assert error.data["retriable"] is False
        assert 4 <= len(events) < 502
        # the replay of the cancelled task is the same stream
        _, replay = read_stream(server.url, admitted.task_id)
        assert [b.raw for b in assert_well_formed(replay)] == [b.raw for b in events]


@pytest.mark.req("ORCH-0086", "ORCH-0087")
def test_pings_keep_an_idle_stream_alive(
    serve: Callable[..., Any], make_config: Callable[..., Config]
) -> None:
    # The engine holds before its first token until the client has seen three
    # pings: the stream is provably idle however loaded the machine is.
    gate = Gate(hold_before=0)
    server = serve(
        make_config(sse_ping_interval_ms=50, pools=[two_replicas()]), engine_factory=gate.factory
    )
    with OrchClient(server.url) as client:
        sid = client.create_session().session_id
        admitted = client.submit_task(sid, "slow", max_tokens=2, seed=3)
        body = ""
        with httpx.stream(
            "GET", f"{server.url}/v1/tasks/{admitted.task_id}/stream", timeout=30
        ) as response:
            assert response.status_code == 200
            for chunk in response.iter_text():
                body += chunk
                if body.count(": ping\n") >= 3:
                    gate.open()
        blocks = parse_stream(body)
    events = assert_well_formed(blocks)
    assert_event_payloads(events, admitted.task_id, 3, "v1")
    comments = [b for b in blocks if b.kind == "comment"]
    assert comments, "no ping on an idle stream with a 50 ms ping interval"
    assert all(b.value == ": ping" for b in comments)
    # pings come between events (the stream is idle before the first token)
    assert blocks[1].kind == "comment"
    assert len(comments) >= 3


def test_malformed_last_event_id_is_refused(client: OrchClient, session_id: str) -> None:
    admitted = client.submit_task(session_id, "x", max_tokens=1)
    for bad in ("abc", "-1", "1.5"):
        response = httpx.get(
            f"{client.base_url}/v1/tasks/{admitted.task_id}/stream",
            headers={"Last-Event-ID": bad},
        )
        assert response.status_code == 400, bad
        assert response.json()["error"]["kind"] == "INVALID_PARAMS"


# ---------------------------------------------------------------- resume


@pytest.mark.parametrize("cut_after", [1, 2, 7])
@pytest.mark.req("ORCH-0074", "ORCH-0083")
def test_resume_a_live_stream_without_gap_or_duplicate(
    serve: Callable[..., Any], make_config: Callable[..., Config], cut_after: int
) -> None:
    server = serve(make_config(pools=[two_replicas(token_delay_ms=20)]))
    with OrchClient(server.url) as client:
        sid = client.create_session().session_id
        # 60 tokens 20 ms apart: the stream is still live when the client cuts it, even on a
        # loaded machine.
        admitted = client.submit_task(sid, "resume me", max_tokens=60, seed=11)
        first: list[Block] = []
        with httpx.stream(
            "GET", f"{server.url}/v1/tasks/{admitted.task_id}/stream", timeout=30
        ) as response:
            for block in iter_blocks(response):
                first.append(block)
                if len(events_of(first)) == cut_after:
                    break  # drop the connection mid-stream
        assert client.get_task(admitted.task_id).state == "running", "cut was not mid-stream"
        last_seen = events_of(first)[-1].id
        assert last_seen == cut_after

        _, rest = read_stream(server.url, admitted.task_id, last_event_id=last_seen)
        rest_events = assert_well_formed(rest, first_id=last_seen + 1)

        wait_until(lambda: client.get_task(admitted.task_id).state == "completed")
        _, full = read_stream(server.url, admitted.task_id)
    full_events = assert_well_formed(full)
    assert_event_payloads(full_events, admitted.task_id, 11, "v1")
    joined = events_of(first) + rest_events
    assert [b.raw for b in joined] == [b.raw for b in full_events]


@pytest.mark.req("ORCH-0083", "ORCH-0084")
def test_resume_a_finished_stream_from_every_position(client: OrchClient, session_id: str) -> None:
    admitted = client.submit_task(session_id, "replay all", max_tokens=6, seed=5)
    _, full = read_stream(client.base_url, admitted.task_id)
    wait_until(lambda: client.get_task(admitted.task_id).state == "completed")
    events = assert_well_formed(full)
    last = events[-1].id
    assert last == 8
    for n in range(last):
        _, resumed = read_stream(client.base_url, admitted.task_id, last_event_id=n)
        resumed_events = assert_well_formed(resumed, first_id=n + 1)
        assert [b.raw for b in resumed_events] == [b.raw for b in events[n:]]
    for n in (last, last + 1, 10**6):
        _, after_end = read_stream(client.base_url, admitted.task_id, last_event_id=n)
        assert [b.kind for b in after_end] == ["retry"], n


def test_resume_a_live_stream_beyond_its_end_ends_with_no_events(
    serve: Callable[..., Any], make_config: Callable[..., Config]
) -> None:
    """While the task is still live, an id past what it will ever send waits for its end."""
    server = serve(make_config(pools=[two_replicas(token_delay_ms=15)]))
    with OrchClient(server.url) as client:
        sid = client.create_session().session_id
        admitted = client.submit_task(sid, "short", max_tokens=4)
        _, blocks = read_stream(server.url, admitted.task_id, last_event_id=6)
        assert client.get_task(admitted.task_id).state == "completed"
    assert [b.kind for b in blocks] == ["retry"]


@pytest.mark.parametrize("readers", [4])
@pytest.mark.req("ORCH-0075")
def test_concurrent_readers_see_identical_streams(
    serve: Callable[..., Any], make_config: Callable[..., Config], readers: int
) -> None:
    server = serve(make_config(pools=[two_replicas(token_delay_ms=5)]))
    with OrchClient(server.url) as client:
        sid = client.create_session().session_id
        admitted = client.submit_task(sid, "many readers", max_tokens=40, seed=9)
        barrier = threading.Barrier(readers)

        def read(reader: int) -> list[str]:
            barrier.wait(timeout=10)
            _, blocks = read_stream(server.url, admitted.task_id)
            return [b.raw for b in assert_well_formed(blocks)]

        with ThreadPoolExecutor(readers) as executor:
            streams = list(executor.map(read, range(readers)))
    assert len(streams[0]) == 1 + 40 + 1
    assert all(s == streams[0] for s in streams[1:])


EVENT_FIELDS = {
    "started": {"task_id", "replica_id", "engine", "engine_version", "seed",
                "sampler_profile_version"},
    "token": {"index", "text", "token_id"},
    "end": {"tokens_out", "finish_reason", "seed"},
    "error": {"kind", "message", "retriable"},
}  # fmt: skip
"""The table of spec section 5.2: exactly these fields, no more, no fewer."""


@pytest.mark.req("ORCH-0076")
def test_every_event_holds_exactly_the_fields_of_its_kind(
    serve: Callable[..., Any], make_config: Callable[..., Config]
) -> None:
    server = serve(make_config(pools=[two_replicas(token_delay_ms=10)]))
    with OrchClient(server.url) as client:
        sid = client.create_session().session_id
        completed = client.submit_task(sid, "fields", max_tokens=5, seed=1).task_id
        cancelled = client.submit_task(sid, "fields too", max_tokens=500).task_id
        wait_until(lambda: client.get_task(cancelled).tokens_out >= 2)
        client.cancel_task(cancelled)
        wait_until(lambda: client.get_task(completed).state == "completed")
        seen: set[str] = set()
        for task_id in (completed, cancelled):
            _, blocks = read_stream(server.url, task_id)
            for event in assert_well_formed(blocks):
                assert event.data is not None
                assert set(event.data) == EVENT_FIELDS[event.event], (
                    f"ORCH-0076: {event.event} event of {task_id} has fields "
                    f"{sorted(event.data)}, the spec lists {sorted(EVENT_FIELDS[event.event])}"
                )
                seen.add(event.event)
    assert seen == set(EVENT_FIELDS)
