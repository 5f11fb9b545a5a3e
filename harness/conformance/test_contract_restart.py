"""Persistence and restart (spec section 10), for any implementation the harness can start.

The target runs in a process of its own (``orch_process``: ``--orch-serve-cmd``,
or ``orchq serve`` of this installation), its replicas on the harness's engine.
Each check brings tasks into the states section 10 speaks of, kills the process
(SIGKILL: nothing is flushed, nothing shut down), starts it again on the same
state, and judges each requirement on its own:

- queued tasks stay queued, in admission order per lane (ORCH-0140);
- running tasks are retried when ``strict``, or ``best_effort`` with no token
  sent, while attempts remain (ORCH-0141), and a strict task's stream continues
  its numbering where the client left it (ORCH-0144), its token indices without
  gap or repetition across the retry (ORCH-0078);
- a running ``best_effort`` task that sent tokens ends ``WORKER_RESET`` (ORCH-0142);
- a running task out of attempts ends ``REPLICA_EXHAUSTED`` (ORCH-0143);
- terminal tasks keep their state, error and replayable stream (ORCH-0145);
- sessions keep their ``expires_at`` (ORCH-0146), the routing setting survives
  (ORCH-0127), and every change acknowledged to a client survives (ORCH-0137);
- an event id the client saw is never given to another event, and a client that
  resumes with ``Last-Event-ID`` after the crash gets the rest (ORCH-0144, ORCH-0083).

One crash serves many checks, each in a soft ``orch_checks`` block blamed on its
own ID, so a broken recovery of queued tasks fails ORCH-0140 and leaves the other
verdicts standing. Against ``--orch-url`` a target cannot be restarted: skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from harness.checks import expect, orch_checks
from harness.engine.control import EngineControl, engine_pool, rule, unique_tag
from harness.engine.mock import expected_tokens
from harness.plugin.target import ServeFactory, Target
from harness.wire import TERMINAL_STATES, SseCapture, SseEvent, Wire, read_stream

pytestmark = [pytest.mark.contract, pytest.mark.slow]

SLOW_TOKEN_MS = 30
"""Decode speed of the tasks that are running when the target is killed."""
HOLD_TOKENS = 4096
STRICT_TOKENS = 30
KEPT = ("state", "error", "tokens_out", "finish_reason", "finished_at", "attempts")
"""The fields of a terminal task a restart must not change (ORCH-0145)."""


def _wire(target: Target) -> Wire:
    return Wire(target.url, target.auth_headers())


def _crash(target: Target, wire: Wire, how: Callable[[], object]) -> Target:
    """End the target ``how`` (kill or terminate), keeping what the client made, and start
    it again on the same state; the sessions made go to the new target's teardown."""
    how()
    wire.http.close()
    return target.restart()


def _until(
    wire: Wire, task_id: str, what: str, predicate: Callable[[dict[str, Any]], bool]
) -> None:
    wire.wait_task(task_id, predicate, what, timeout=15.0)


def _strict(wire: Wire, session: str, prompt: str, pool: str, seed: int, tokens: int) -> str:
    """Admit a strict task; its ID."""
    params = {"seed": seed, "determinism": "strict"}
    admitted = wire.admit(session, prompt=prompt, pool=pool, max_tokens=tokens, params=params)
    return str(admitted["task_id"])


def _events(capture: SseCapture) -> list[tuple[int, str, Any]]:
    return [(e.seq, e.event, e.data) for e in capture.events]


@dataclass
class Before:
    """What the client was told before the crash."""

    tag: str
    session: dict[str, Any] = field(default_factory=dict)
    deleted_session: str = ""
    terminal: dict[str, dict[str, Any]] = field(default_factory=dict)
    replays: dict[str, list[tuple[int, str, Any]]] = field(default_factory=dict)
    holder: str = ""
    queued: list[tuple[str, str]] = field(default_factory=list)
    """(task_id, priority) in admission order."""
    strict: str = ""
    strict_prompt: str = ""
    strict_seen: list[SseEvent] = field(default_factory=list)
    streamed: str = ""
    untouched: str = ""
    exhausted: str = ""


def _scenario_config(engine: EngineControl) -> dict[str, Any]:
    """``queue``: one slot and a queue; ``run``: running tasks; ``single``: one attempt."""
    return {
        "fallback_mode": "aggressive_fallback",
        "pools": [
            engine_pool(engine, "queue", ("q1",), max_attempts=3, decode_timeout_ms=600_000),
            engine_pool(engine, "run", ("a1",), slots=8, max_attempts=2, decode_timeout_ms=600_000),
            engine_pool(engine, "single", ("x1",), max_attempts=1, decode_timeout_ms=600_000),
        ],
    }


def _before_the_crash(wire: Wire, engine: EngineControl) -> Before:
    tag = unique_tag("restart")
    before = Before(tag)
    engine.set_faults(
        [
            rule({"token_delay_ms": SLOW_TOKEN_MS}, prompt_contains=f"{tag} slow"),
            rule({"hang_after_tokens": 1}, prompt_contains=f"{tag} hold"),
            rule({"hang_after_tokens": 0}, prompt_contains=f"{tag} untouched", times=1),
            rule({"die_after_tokens": 2}, prompt_contains=f"{tag} dies"),
        ]
    )
    before.session = wire.new_session(ttl_seconds=900)
    session = str(before.session["session_id"])
    before.deleted_session = str(wire.new_session()["session_id"])
    deleted = wire.http.delete(f"/v1/sessions/{before.deleted_session}")
    expect(deleted.status_code == 204, f"ORCH-0033: DELETE of a session answered {deleted}")

    # Terminal tasks: completed, failed, cancelled.
    done = _strict(wire, session, f"{tag} done", "run", 1, 3)
    failed = str(wire.admit(session, prompt=f"{tag} dies", pool="run", max_tokens=8)["task_id"])
    cancelled = str(
        wire.admit(session, prompt=f"{tag} slow cancelled", pool="run", max_tokens=HOLD_TOKENS)[
            "task_id"
        ]
    )
    wire.wait_running(cancelled)
    wire.http.delete(f"/v1/tasks/{cancelled}")
    for task_id in (done, failed, cancelled):
        before.terminal[task_id] = wire.wait_terminal(task_id)
        before.replays[task_id] = _events(read_stream(wire, task_id))

    put = wire.http.put("/v1/admin/routing", json={"fallback_mode": "intelligent_pacing"})
    expect(put.status_code == 200, f"ORCH-0125: PUT of a routing mode answered {put}")

    # The queue pool: a holder on its only slot, then both lanes queued behind it.
    before.holder = _strict(wire, session, f"{tag} hold holder", "queue", 2, HOLD_TOKENS)
    wire.wait_running(before.holder)
    for n, priority in enumerate(("interactive", "batch", "interactive", "batch", "interactive")):
        admitted = wire.admit(
            session,
            prompt=f"{tag} hold queued {n}",
            pool="queue",
            priority=priority,
            max_tokens=HOLD_TOKENS,
        )
        before.queued.append((str(admitted["task_id"]), priority))

    # Running tasks: strict with tokens sent, best effort with and without tokens sent.
    before.untouched = str(
        wire.admit(session, prompt=f"{tag} untouched", pool="run", max_tokens=4)["task_id"]
    )
    _until(
        wire,
        before.untouched,
        "ORCH-0100: the task is dispatched",
        lambda t: t.get("state") == "running" and bool(t.get("attempts")),
    )
    before.streamed = str(
        wire.admit(session, prompt=f"{tag} slow streamed", pool="run", max_tokens=HOLD_TOKENS)[
            "task_id"
        ]
    )
    wire.wait_running(before.streamed)
    before.strict_prompt = f"{tag} slow strict"
    before.strict = _strict(wire, session, before.strict_prompt, "run", 3, STRICT_TOKENS)
    before.strict_seen = read_stream(
        wire, before.strict, on_event=lambda e: e.event == "token" and e.data["index"] >= 3
    ).events
    before.exhausted = _strict(wire, session, f"{tag} slow exhausted", "single", 4, HOLD_TOKENS)
    wire.wait_running(before.exhausted)
    return before


def _dispatch_order(wire: Wire, holder: str, queued: list[str]) -> list[str]:
    """Free the one-slot pool again and again (its tasks hold the slot until cancelled):
    the order the queued tasks run in. Tasks that end on their own drop out."""
    waiting = [holder, *queued]
    order: list[str] = []
    while True:
        waiting = [t for t in waiting if wire.task(t)["state"] not in TERMINAL_STATES]
        if not waiting:
            return order
        running = wire.one_running(waiting)
        waiting.remove(running)
        if running != holder:
            order.append(running)
        wire.http.delete(f"/v1/tasks/{running}")


@pytest.mark.req(
    "ORCH-0078",
    "ORCH-0127",
    "ORCH-0137",
    "ORCH-0140",
    "ORCH-0141",
    "ORCH-0142",
    "ORCH-0143",
    "ORCH-0144",
    "ORCH-0145",
    "ORCH-0146",
)
def test_a_crash_loses_nothing_and_every_task_recovers_as_the_spec_says(
    orch_process: ServeFactory, orch_engine: EngineControl
) -> None:
    target = orch_process(**_scenario_config(orch_engine))
    wire = _wire(target)
    before = _before_the_crash(wire, orch_engine)
    target = _crash(target, wire, target.kill)
    with _wire(target) as wire, orch_checks() as check:
        session_id = str(before.session["session_id"])
        with check("ORCH-0144"):
            # Read at once, while the retried strict task still runs: a live reader must get
            # the events the client saw before the crash under the same ids, then the rest.
            whole = read_stream(wire, before.strict)
            seen = [e.key() for e in before.strict_seen]
            expect(
                [e.key() for e in whole.events[: len(seen)]] == seen,
                f"ORCH-0144: after the restart the strict task's stream gives ids "
                f"{whole.ids[: len(seen)]} to other events than the {len(seen)} the client saw "
                f"before the crash: a sequence number was reused",
            )
            last = before.strict_seen[-1].seq
            rest = read_stream(wire, before.strict, last_event_id=last)
            expect(
                rest.ids == list(range(last + 1, last + 1 + len(rest.ids)))
                and rest.names[-1:] in (["end"], ["error"]),
                f"ORCH-0144: the strict task's stream resumed after event {last} must continue "
                f"with {last + 1}, {last + 2} ... up to its closing event; got ids {rest.ids} "
                f"({rest.names})",
            )
            expect(
                [e.key() for e in whole.events[len(seen) :]] == [e.key() for e in rest.events],
                f"ORCH-0144: the events after {last} differ between a resumed and a whole read: "
                f"ids {rest.ids} vs {whole.ids[len(seen) :]}",
            )
        with check("ORCH-0137"):
            session = wire.http.get(f"/v1/sessions/{session_id}")
            expect(
                session.status_code == 200,
                f"ORCH-0137: the session created before the crash answers {session.status_code}",
            )
            gone = wire.http.get(f"/v1/sessions/{before.deleted_session}")
            expect(
                gone.status_code == 404,
                f"ORCH-0137: a session deleted (204) before the crash must stay deleted; GET "
                f"answers {gone.status_code}",
            )
            admitted = [
                *before.terminal,
                before.holder,
                *(t for t, _ in before.queued),
                before.untouched,
                before.streamed,
                before.strict,
                before.exhausted,
            ]
            lost = [t for t in admitted if wire.http.get(f"/v1/tasks/{t}").status_code != 200]
            expect(not lost, f"ORCH-0137: tasks admitted (202) before the crash are gone: {lost}")
        with check("ORCH-0146"):
            after = wire.http.get(f"/v1/sessions/{session_id}").json()
            expect(
                after.get("expires_at") == before.session["expires_at"],
                f"ORCH-0146: the session's expires_at was {before.session['expires_at']}, after "
                f"the restart {after.get('expires_at')}",
            )
        with check("ORCH-0127"):
            mode = wire.http.get("/v1/admin/routing").json()
            expect(
                mode == {"fallback_mode": "intelligent_pacing"},
                f"ORCH-0127: the routing mode set before the crash (intelligent_pacing, the "
                f"configuration says aggressive_fallback) must survive it; got {mode}",
            )
        with check("ORCH-0145"):
            for task_id, was in before.terminal.items():
                now = wire.task(task_id)
                changed = {k: (was.get(k), now.get(k)) for k in KEPT if was.get(k) != now.get(k)}
                expect(
                    not changed,
                    f"ORCH-0145: {was['state']} task {task_id} changed across "
                    f"the restart: {changed}",
                )
                replay = _events(read_stream(wire, task_id))
                expect(
                    replay == before.replays[task_id],
                    f"ORCH-0145: the replay of {was['state']} task {task_id} changed across the "
                    f"restart: ids {[e[0] for e in before.replays[task_id]]} -> "
                    f"{[e[0] for e in replay]}",
                )
        with check("ORCH-0142"):
            task = wire.wait_terminal(before.streamed)
            error = task.get("error") or {}
            expect(
                task["state"] == "failed" and error.get("kind") == "WORKER_RESET",
                f"ORCH-0142: a running best_effort task that had sent tokens ends failed "
                f"WORKER_RESET after a restart; got {task['state']!r} {error}",
            )
        with check("ORCH-0143"):
            task = wire.wait_terminal(before.exhausted)
            error = task.get("error") or {}
            expect(
                task["state"] == "failed"
                and error.get("kind") == "REPLICA_EXHAUSTED"
                and len(task["attempts"]) == 1,
                f"ORCH-0143: a running task with no attempt left (max_attempts 1) ends failed "
                f"REPLICA_EXHAUSTED after a restart, without a new attempt; got "
                f"{task['state']!r} {error}, {len(task['attempts'])} attempt(s)",
            )
        with check("ORCH-0141"):
            task = wire.wait_terminal(before.untouched)
            expect(
                task["state"] == "completed" and len(task["attempts"]) == 2,
                f"ORCH-0141: a running best_effort task with no token sent is retried after a "
                f"restart; got {task['state']!r} {task.get('error')} after "
                f"{len(task['attempts'])} attempt(s)",
            )
            strict = wire.wait_terminal(before.strict)
            expect(
                strict["state"] == "completed" and len(strict["attempts"]) >= 2,
                f"ORCH-0141: a running strict task is retried after a restart and completes; "
                f"got {strict['state']!r} {strict.get('error')} after "
                f"{len(strict['attempts'])} attempt(s)",
            )
        with check("ORCH-0078"):
            streamed = read_stream(wire, before.strict).tokens()
            indices = [e.data["index"] for e in streamed]
            tokens = [(e.data["text"], e.data["token_id"]) for e in streamed]
            expected = expected_tokens(before.strict_prompt, 3, STRICT_TOKENS)
            expect(
                indices == list(range(len(indices))) and tokens == expected[: len(tokens)],
                f"ORCH-0078: the strict task's token indices across the restart's retry must "
                f"be 0, 1, 2 ... each once, with its tokens; got indices {indices}",
            )
        with check("ORCH-0140"):
            queued = [task_id for task_id, _ in before.queued]
            states = {t: wire.task(t)["state"] for t in queued}
            expect(
                all(state in ("queued", "running") for state in states.values()),
                f"ORCH-0140: tasks queued before the crash must still be queued after it (or "
                f"dispatched since); got {sorted(states.values())}",
            )
            order = _dispatch_order(wire, before.holder, queued)
            lane = {task_id: priority for task_id, priority in before.queued}
            for priority in ("interactive", "batch"):
                admitted_order = [t for t, p in before.queued if p == priority]
                ran = [t for t in order if lane[t] == priority]
                expect(
                    ran == admitted_order,
                    f"ORCH-0140: the {priority} tasks queued before the crash must run in their "
                    f"admission order after it; they ran as "
                    f"{[admitted_order.index(t) + 1 for t in ran]}",
                )


@pytest.mark.req("ORCH-0144", "ORCH-0083")
def test_event_ids_seen_before_a_crash_are_never_given_to_other_events(
    orch_process: ServeFactory, orch_engine: EngineControl
) -> None:
    """A best_effort task streams fast; the target is killed the moment the client has read
    a token. Every event id the client saw must keep meaning that event, and a client that
    resumes with the last id it saw must get the rest: the task's end (here WORKER_RESET)."""
    tag = unique_tag("event ids")
    orch_engine.set_faults([rule({"token_delay_ms": 5}, prompt_contains=tag)])
    target = orch_process(
        pools=[engine_pool(orch_engine, "default", ("r1",), decode_timeout_ms=600_000)]
    )
    wire = _wire(target)
    task_id = str(wire.admit(prompt=f"{tag} fast", max_tokens=HOLD_TOKENS)["task_id"])
    seen = read_stream(
        wire, task_id, on_event=lambda e: e.event == "token" and e.data["index"] >= 20
    ).events
    target = _crash(target, wire, target.kill)  # the moment the client has read event 22
    last = seen[-1].seq
    with _wire(target) as wire, orch_checks() as check:
        with check("ORCH-0083"):
            rest = read_stream(wire, task_id, last_event_id=last, timeout=20)
            expect(
                rest.events and rest.ids[0] == last + 1 and rest.names[-1] in ("end", "error"),
                f"ORCH-0083: a client that saw events 1..{last} before the crash and resumes with "
                f"Last-Event-ID {last} must get {last + 1} and the rest, up to the closing event; "
                f"got ids {rest.ids} ({rest.names})",
            )
        with check("ORCH-0144"):
            whole = read_stream(wire, task_id, timeout=20)
            by_id = {e.seq: e.key() for e in whole.events}
            reused = [e.seq for e in seen if by_id.get(e.seq) != e.key()]
            expect(
                not reused,
                f"ORCH-0144: after the restart, event ids {reused} the client had already "
                f"received stand for other events (the replay now reads "
                f"{[(i, by_id[i][1]) for i in reused if i in by_id][:4]}): a sequence number "
                f"was reused",
            )


@pytest.mark.req("ORCH-0140", "ORCH-0141", "ORCH-0127")
def test_a_terminated_target_recovers_the_same_way(
    orch_process: ServeFactory, orch_engine: EngineControl
) -> None:
    """SIGTERM instead of SIGKILL: a shutdown is a restart too, and loses nothing either."""
    tag = unique_tag("terminate")
    orch_engine.set_faults(
        [
            rule({"hang_after_tokens": 1}, prompt_contains=f"{tag} hold"),
            rule({"token_delay_ms": SLOW_TOKEN_MS}, prompt_contains=tag),
        ]
    )
    target = orch_process(
        pools=[
            engine_pool(orch_engine, "default", ("r1",), max_attempts=3, decode_timeout_ms=600_000)
        ]
    )
    wire = _wire(target)
    session = str(wire.new_session()["session_id"])
    holder = _strict(wire, session, f"{tag} hold holder", "default", 5, HOLD_TOKENS)
    wire.wait_running(holder)
    queued = [
        str(wire.admit(session, prompt=f"{tag} hold {n}", max_tokens=HOLD_TOKENS)["task_id"])
        for n in range(3)
    ]
    wire.http.put("/v1/admin/routing", json={"fallback_mode": "intelligent_pacing"})
    target = _crash(target, wire, target.terminate)
    with _wire(target) as wire, orch_checks() as check:
        with check("ORCH-0127"):
            mode = wire.http.get("/v1/admin/routing").json()
            expect(
                mode == {"fallback_mode": "intelligent_pacing"},
                f"ORCH-0127: the routing mode did not survive a SIGTERM restart: {mode}",
            )
        with check("ORCH-0140"):
            order = _dispatch_order(wire, holder, queued)
            expect(
                order == queued,
                f"ORCH-0140: tasks queued at the shutdown must run in admission order after "
                f"the restart; they ran as {[queued.index(t) + 1 for t in order]}",
            )
        with check("ORCH-0141"):
            attempts = wire.task(holder)["attempts"]
            expect(
                len(attempts) >= 2,
                f"ORCH-0141: the strict task running at the shutdown, attempts left, must be "
                f"retried after the restart; it has {len(attempts)} attempt(s)",
            )
