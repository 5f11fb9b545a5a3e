"""Checkpoints and the audit log of runs (spec sections 12.6, 12.7).

What an operator of the runs profile can observe: a checkpoint declared in a
definition and refused when it makes no sense; a step paused before its task
runs or after it produced an output, the run ``awaiting_approval`` meanwhile and
starting nothing else; the checkpoint listed with its stable id, decided once
(``continue``, ``retry`` with a new prompt or inputs, ``abort``), every other
decision refused without changing anything; pending checkpoints cancelled when
the run ends otherwise; and the run's audit log naming who did what, in order.
The order of the run's events is the evidence that a step did not start before
its checkpoint was decided: no timing is involved.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.checks import expect, orch_check
from harness.engine.control import unique_tag
from harness.wire import Wire, expect_error, parse_rfc3339, read_stream
from harness.wire.checkpoints import approvals, audit, decide, wait_checkpoint
from harness.wire.runs import (
    definition,
    get_run,
    read_run_events,
    register,
    start_run,
    step,
    steps_by_id,
    wait_run,
)
from orchestrator.schemas import RUN_EVENT_MODELS

pytestmark = [pytest.mark.contract, pytest.mark.orch_profile("runs")]

APPROVAL_FIELDS = {
    "checkpoint_id",
    "run_id",
    "step_id",
    "when",
    "state",
    "decisions",
    "requested_at",
    "decided_at",
    "decision",
    "decided_by",
    "output",
}
AUDIT_FIELDS = {"seq", "at", "actor", "action", "step_id", "checkpoint_id", "detail"}
STRICT = {"determinism": "strict", "seed": 5}


def _name(what: str) -> str:
    return unique_tag(what)[1:-1].replace(" ", "-")


def _task_text(wire: Wire, task_id: str) -> str:
    capture = read_stream(wire, task_id)
    return "".join(str(event.data["text"]) for event in capture.tokens())


def _index(names: list[tuple[str, Any]], event: str, step_id: str) -> int:
    for number, (name, data) in enumerate(names):
        if name == event and isinstance(data, dict) and data.get("step_id") == step_id:
            return number
    return -1


# ---------------------------------------------------------------- 12.6 declaring


@pytest.mark.req("ORCH-0360")
def test_a_checkpoint_is_declared_with_its_decisions_or_refused(wire: Wire) -> None:
    name = _name("declare")
    response = wire.post_json(
        "/v1/definitions",
        definition(
            name,
            [
                step("gate", checkpoint={"when": "before"}),
                step("review", checkpoint={"when": "after"}),
                step("plain"),
            ],
        ),
    )
    with orch_check("ORCH-0360"):
        expect(
            response.status_code == 201,
            f"ORCH-0360: a definition with checkpoints must be registered; got "
            f"{response.status_code}: {response.text[:300]}",
        )
        steps = response.json()["definition"]["steps"]
        expect(
            steps[0]["checkpoint"] == {"when": "before", "decisions": ["continue", "abort"]}
            and steps[1]["checkpoint"]
            == {"when": "after", "decisions": ["continue", "retry", "abort"]}
            and steps[2]["checkpoint"] is None,
            f"ORCH-0360: decisions default by `when`, `checkpoint` to null; got "
            f"{[s.get('checkpoint') for s in steps]}",
        )
    bad: list[tuple[dict[str, Any], str]] = [
        ({"when": "before", "decisions": ["retry"]}, "steps[1].checkpoint.decisions[0]"),
        (
            {"when": "after", "decisions": ["continue", "continue"]},
            "steps[1].checkpoint.decisions[1]",
        ),
        ({"when": "after", "decisions": []}, "steps[1].checkpoint.decisions"),
        ({"when": "after", "decisions": ["skip"]}, "steps[1].checkpoint.decisions[0]"),
        ({"when": "during"}, "steps[1].checkpoint.when"),
        ({"when": "after", "timeout": 5}, "steps[1].checkpoint.timeout"),
    ]
    for checkpoint, path in bad:
        document = definition(_name("bad"), [step("a"), step("b", checkpoint=checkpoint)])
        with orch_check("ORCH-0360"):
            error = expect_error(
                wire.post_json("/v1/definitions", document),
                400,
                "INVALID_DEFINITION",
                "ORCH-0360",
                f"a checkpoint {checkpoint}",
            )
            expect(
                error.get("path") == path,
                f"ORCH-0360: the checkpoint {checkpoint} must be refused naming {path}; got "
                f"{error}",
            )


# ---------------------------------------------------------------- 12.6 before


@pytest.mark.req(
    "ORCH-0361",
    "ORCH-0363",
    "ORCH-0364",
    "ORCH-0365",
    "ORCH-0366",
    "ORCH-0367",
    "ORCH-0373",
)
def test_a_before_checkpoint_holds_the_step_and_the_run_until_continue(wire: Wire) -> None:
    name = _name("before")
    register(
        wire,
        definition(
            name,
            [
                step("first"),
                step("gate", depends_on=["first"], checkpoint={"when": "before"}),
                step("other", depends_on=["first"]),
                step("last", depends_on=["gate", "other"]),
            ],
        ),
    )
    run_id = str(start_run(wire, name, max_parallel=4)["run_id"])
    pending = wait_checkpoint(
        wire, run_id, "gate.before.1", "ORCH-0361: the step must wait at its before checkpoint"
    )
    run = get_run(wire, run_id)
    steps = steps_by_id(run)
    with orch_check("ORCH-0361"):
        expect(
            steps["gate"]["state"] == "waiting_approval" and steps["gate"]["attempts"] == [],
            f"ORCH-0361: a step at its before checkpoint waits with no attempt; got "
            f"{steps['gate']}",
        )
    with orch_check("ORCH-0363"):
        expect(
            run["state"] == "awaiting_approval",
            f"ORCH-0363: a run with a pending checkpoint is awaiting_approval; got {run['state']}",
        )
        expect(
            steps["other"]["state"] == "pending",
            f"ORCH-0363: no pending step starts while a checkpoint is pending; got "
            f"{steps['other']}",
        )
        listed = wire.http.get("/v1/runs", params={"state": "awaiting_approval"}).json()
        expect(
            run_id in [r["run_id"] for r in listed.get("runs", [])],
            "ORCH-0363: GET /v1/runs?state=awaiting_approval lists the paused run",
        )
    with orch_check("ORCH-0365"):
        expect(
            set(pending) == APPROVAL_FIELDS,
            f"ORCH-0365: a checkpoint holds exactly {sorted(APPROVAL_FIELDS)}; got {pending}",
        )
        expect(
            pending["run_id"] == run_id
            and pending["step_id"] == "gate"
            and pending["when"] == "before"
            and pending["state"] == "pending"
            and pending["decisions"] == ["continue", "abort"]
            and pending["decided_at"] is None
            and pending["decision"] is None
            and pending["decided_by"] is None
            and pending["output"] is None,
            f"ORCH-0365: the pending checkpoint as declared, undecided, no output; got {pending}",
        )
        parse_rfc3339(pending["requested_at"], "ORCH-0365", "requested_at")
    response = decide(wire, run_id, "gate.before.1", "continue", decided_by="alice")
    with orch_check("ORCH-0366", "ORCH-0370"):
        expect(
            response.status_code == 200,
            f"ORCH-0366: a decision must answer 200; got {response.status_code}: "
            f"{response.text[:300]}",
        )
        decided = response.json()
        expect(
            set(decided) == APPROVAL_FIELDS
            and decided["state"] == "decided"
            and decided["decision"] == "continue"
            and decided["decided_by"] == "alice",
            f"ORCH-0366: the answer is the checkpoint, decided; got {decided}",
        )
        parse_rfc3339(decided["decided_at"], "ORCH-0366", "decided_at")
        twice = decide(wire, run_id, "gate.before.1", "abort", decided_by="mallory")
        expect_error(twice, 409, "CONFLICT", "ORCH-0370", "a second decision on a checkpoint")
        decided_list = approvals(wire, run_id=run_id, state="decided")["approvals"]
        expect(
            [a["checkpoint_id"] for a in decided_list] == ["gate.before.1"],
            f"ORCH-0365: state=decided lists the decided checkpoint; got {decided_list}",
        )
    run = wait_run(wire, run_id)
    with orch_check("ORCH-0367"):
        expect(
            run["state"] == "completed"
            and [a["attempt"] for a in steps_by_id(run)["gate"]["attempts"]] == [1],
            f"ORCH-0367: continue starts the step's first attempt and the run completes; got {run}",
        )
    events = read_run_events(wire, run_id).events
    named = [(e.event, e.data) for e in events]
    with orch_check("ORCH-0373"):
        for event in events:
            if event.event.startswith("checkpoint."):
                model = RUN_EVENT_MODELS[event.event]  # type: ignore[index]
                expect(
                    isinstance(event.data, dict) and set(event.data) == set(model.model_fields),
                    f"ORCH-0373: {event.event} holds exactly {sorted(model.model_fields)}; got "
                    f"{event.data}",
                )
        requested = _index(named, "checkpoint.requested", "gate")
        resolved = _index(named, "checkpoint.resolved", "gate")
        expect(
            0 <= requested < resolved,
            f"ORCH-0373: checkpoint.requested, then checkpoint.resolved; got "
            f"{[n for n, _ in named]}",
        )
        expect(
            named[resolved][1]
            == {
                "checkpoint_id": "gate.before.1",
                "step_id": "gate",
                "state": "decided",
                "decision": "continue",
                "decided_by": "alice",
            },
            f"ORCH-0373: checkpoint.resolved reports the decision; got {named[resolved][1]}",
        )
    with orch_check("ORCH-0361"):
        started = _index(named, "step.started", "gate")
        expect(
            started > resolved,
            f"ORCH-0361: the step must not start before its checkpoint is decided; events "
            f"{[n for n, _ in named]}",
        )
    with orch_check("ORCH-0363"):
        expect(
            _index(named, "step.started", "other") > resolved,
            f"ORCH-0363: no other step may start while the checkpoint is pending; events "
            f"{[(n, (d or {}).get('step_id')) for n, d in named]}",
        )


# ---------------------------------------------------------------- 12.6 after and retry


@pytest.mark.req("ORCH-0362", "ORCH-0364", "ORCH-0367", "ORCH-0368", "ORCH-0370")
def test_an_after_checkpoint_holds_the_output_and_a_retry_reruns_the_step(wire: Wire) -> None:
    name = _name("after")
    register(
        wire,
        definition(
            name,
            [
                step(
                    "draft",
                    "Draft on {{ inputs.topic }}",
                    params=STRICT,
                    checkpoint={"when": "after"},
                ),
                step("publish", "Publish {{ steps.draft.output }}", depends_on=["draft"]),
            ],
            inputs={"topic": {"type": "string"}},
        ),
    )
    session = str(wire.new_session()["session_id"])
    run_id = str(start_run(wire, name, session, inputs={"topic": "queues"})["run_id"])
    first = wait_checkpoint(
        wire, run_id, "draft.after.1", "ORCH-0362: the step must wait at its after checkpoint"
    )
    run = get_run(wire, run_id)
    draft = steps_by_id(run)["draft"]
    with orch_check("ORCH-0362"):
        expect(
            draft["state"] == "waiting_approval" and draft["output"] is None,
            f"ORCH-0362: the step waits with no output of its own; got {draft}",
        )
        expect(
            first["output"] == _task_text(wire, str(draft["task_id"])),
            f"ORCH-0362: the checkpoint's output is the task's; got {first['output']!r}",
        )
        expect(
            steps_by_id(run)["publish"]["state"] == "pending",
            f"ORCH-0362: the dependant waits; got {steps_by_id(run)['publish']}",
        )

    def direct(prompt: str) -> str:
        task = wire.admit(session, prompt=prompt, max_tokens=4, params=STRICT)
        return _task_text(wire, str(task["task_id"]))

    with orch_check("ORCH-0368"):
        retried = decide(wire, run_id, "draft.after.1", "retry", prompt="Say it shorter")
        expect(
            retried.status_code == 200,
            f"ORCH-0368: a retry with a prompt must answer 200; got {retried.status_code}: "
            f"{retried.text[:300]}",
        )
    second = wait_checkpoint(
        wire, run_id, "draft.after.2", "ORCH-0364: the retried step reaches draft.after.2"
    )
    with orch_check("ORCH-0370"):
        # The run is paused at draft.after.2: the decided draft.after.1 is still its own.
        expect_error(
            decide(wire, run_id, "draft.after.1", "continue"),
            409,
            "CONFLICT",
            "ORCH-0370",
            "a second decision on a checkpoint of a paused run",
        )
    with orch_check("ORCH-0368"):
        attempts = steps_by_id(get_run(wire, run_id))["draft"]["attempts"]
        expect(
            [a["attempt"] for a in attempts] == [1, 2],
            f"ORCH-0368: a retry is the step's next attempt; got {attempts}",
        )
        expect(
            second["output"] == direct("Say it shorter"),
            "ORCH-0368: the retried attempt must run the decision's prompt as it is",
        )
        error = expect_error(
            decide(wire, run_id, "draft.after.2", "retry", inputs={"nope": 1}),
            400,
            "INVALID_PARAMS",
            "ORCH-0368",
            "a retry with an undeclared input",
        )
        expect(
            error.get("path") == "inputs.nope",
            f"ORCH-0368: the refusal names inputs.nope; got {error}",
        )
        again = decide(wire, run_id, "draft.after.2", "retry", inputs={"topic": "sqlite"})
        expect(
            again.status_code == 200,
            f"ORCH-0368: a retry with inputs must answer 200; got {again.status_code}: "
            f"{again.text[:300]}",
        )
    third = wait_checkpoint(
        wire, run_id, "draft.after.3", "ORCH-0364: the step retried again reaches draft.after.3"
    )
    with orch_check("ORCH-0368"):
        expect(
            third["output"] == direct("Draft on sqlite"),
            "ORCH-0368: the retried attempt must render the step's prompt with the new inputs",
        )
    with orch_check("ORCH-0367"):
        done = decide(wire, run_id, "draft.after.3", "continue")
        expect(done.status_code == 200, f"ORCH-0367: continue answers 200; got {done.text}")
        run = wait_run(wire, run_id)
        draft = steps_by_id(run)["draft"]
        expect(
            run["state"] == "completed"
            and draft["state"] == "succeeded"
            and draft["output"] == third["output"],
            f"ORCH-0367: continue makes the step succeed with the checkpoint's output; got {run}",
        )
    with orch_check("ORCH-0364"):
        ids = [a["checkpoint_id"] for a in approvals(wire, run_id=run_id)["approvals"]]
        expect(
            ids == ["draft.after.1", "draft.after.2", "draft.after.3"],
            f"ORCH-0364: checkpoint ids count from 1 per step and when; got {ids}",
        )


# ---------------------------------------------------------------- 12.6 refusals, abort


@pytest.mark.req("ORCH-0369", "ORCH-0370", "ORCH-0371")
def test_a_decision_is_taken_once_and_abort_ends_the_run(wire: Wire) -> None:
    name = _name("refuse")
    register(
        wire,
        definition(
            name,
            [
                step("gate", checkpoint={"when": "before"}),
                step("next", depends_on=["gate"]),
            ],
        ),
    )
    run_id = str(start_run(wire, name)["run_id"])
    wait_checkpoint(wire, run_id, "gate.before.1", "ORCH-0361: the step waits at its checkpoint")
    path = f"/v1/runs/{run_id}/checkpoints/gate.before.1"
    refusals: list[tuple[Any, int, str, str]] = [
        ({"decision": "retry", "decided_by": "x"}, 400, "INVALID_PARAMS", "a decision not listed"),
        ({"decision": "skip", "decided_by": "x"}, 400, "INVALID_PARAMS", "an unknown decision"),
        ({"decision": "continue"}, 400, "INVALID_PARAMS", "a decision without decided_by"),
        (
            {"decision": "continue", "decided_by": "x", "prompt": "p"},
            400,
            "INVALID_PARAMS",
            "a prompt with continue",
        ),
        (b"{not json", 400, "INVALID_PARAMS", "a malformed body"),
    ]
    for body, status, kind, what in refusals:
        with orch_check("ORCH-0370"):
            if isinstance(body, bytes):
                response = wire.http.post(
                    path, content=body, headers={"content-type": "application/json"}
                )
            else:
                response = wire.post_json(path, body)
            expect_error(response, status, kind, "ORCH-0370", what)
    with orch_check("ORCH-0370"):
        expect_error(
            decide(wire, run_id, "gate.before.9", "continue"),
            404,
            "NOT_FOUND",
            "ORCH-0370",
            "a decision on a checkpoint the run does not have",
        )
        expect_error(
            decide(wire, "run-that-never-was", "gate.before.1", "continue"),
            404,
            "NOT_FOUND",
            "ORCH-0370",
            "a decision on an unknown run",
        )
        still = approvals(wire, run_id=run_id, state="pending")["approvals"]
        expect(
            [a["checkpoint_id"] for a in still] == ["gate.before.1"]
            and get_run(wire, run_id)["state"] == "awaiting_approval",
            f"ORCH-0370: a refused decision changes nothing; pending {still}",
        )
    with orch_check("ORCH-0369"):
        aborted = decide(wire, run_id, "gate.before.1", "abort", decided_by="bob")
        expect(
            aborted.status_code == 200 and aborted.json().get("decision") == "abort",
            f"ORCH-0369: abort answers 200; got {aborted.status_code}: {aborted.text[:300]}",
        )
        run = wait_run(wire, run_id)
        states = {s["step_id"]: s["state"] for s in run["steps"]}
        expect(
            run["state"] == "aborted" and states == {"gate": "skipped", "next": "skipped"},
            f"ORCH-0369: abort ends the run aborted, the waiting step skipped; got "
            f"{run['state']} {states}",
        )
    with orch_check("ORCH-0370"):
        twice = expect_error(
            decide(wire, run_id, "gate.before.1", "continue"),
            409,
            "CONFLICT",
            "ORCH-0370",
            "a second decision on a checkpoint",
        )
        expect(
            twice.get("state") == "decided",
            f"ORCH-0370: the conflict names the checkpoint's state; got {twice}",
        )
    # A run deleted while a checkpoint is pending cancels it (ORCH-0371).
    other = str(start_run(wire, name)["run_id"])
    wait_checkpoint(wire, other, "gate.before.1", "ORCH-0361: the step waits at its checkpoint")
    with orch_check("ORCH-0371"):
        deleted = wire.http.delete(f"/v1/runs/{other}")
        expect(
            deleted.status_code == 200 and deleted.json()["state"] == "aborted",
            f"ORCH-0371: DELETE of a paused run aborts it; got {deleted.status_code}: "
            f"{deleted.text[:300]}",
        )
        listed = approvals(wire, run_id=other)["approvals"]
        expect(
            [(a["checkpoint_id"], a["state"], a["decision"]) for a in listed]
            == [("gate.before.1", "cancelled", None)],
            f"ORCH-0371: the pending checkpoint becomes cancelled; got {listed}",
        )
        gate = steps_by_id(get_run(wire, other))["gate"]
        expect(gate["state"] == "skipped", f"ORCH-0371: its step is skipped; got {gate}")
        names = [(e.event, e.data) for e in read_run_events(wire, other).events]
        resolved = _index(names, "checkpoint.resolved", "gate")
        expect(
            resolved >= 0 and names[resolved][1].get("state") == "cancelled",
            f"ORCH-0371: checkpoint.resolved reports the cancellation; got {names}",
        )
        expect_error(
            decide(wire, other, "gate.before.1", "continue"),
            409,
            "CONFLICT",
            "ORCH-0370",
            "a decision on a cancelled checkpoint",
        )


@pytest.mark.req("ORCH-0365")
def test_approvals_are_listed_in_order_a_page_at_a_time(wire: Wire) -> None:
    name = _name("pages")
    register(wire, definition(name, [step("gate", checkpoint={"when": "before"})]))
    runs = [str(start_run(wire, name)["run_id"]) for _ in range(3)]
    for run_id in runs:
        wait_checkpoint(wire, run_id, "gate.before.1", "ORCH-0361: each run waits")
    mine: list[str] = []
    cursor: str | None = None
    with orch_check("ORCH-0365"):
        for _ in range(1000):
            params: dict[str, Any] = {"state": "pending", "limit": 1}
            if cursor is not None:
                params["cursor"] = cursor
            page = approvals(wire, **params)
            expect(len(page["approvals"]) <= 1, f"ORCH-0365: limit 1 gives one; got {page}")
            mine += [a["run_id"] for a in page["approvals"] if a["run_id"] in runs]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        expect(
            sorted(mine) == sorted(runs) and len(mine) == 3,
            f"ORCH-0365: pages of one list every pending checkpoint once; got {mine}",
        )
        expect_error(
            wire.http.get("/v1/approvals", params={"state": "maybe"}),
            400,
            "INVALID_PARAMS",
            "ORCH-0365",
            "state=maybe",
        )
    for run_id in runs:
        wire.http.delete(f"/v1/runs/{run_id}")


# ---------------------------------------------------------------- 12.7 audit log


@pytest.mark.req("ORCH-0380", "ORCH-0381", "ORCH-0382", "ORCH-0383")
def test_the_audit_log_names_who_did_what_in_order(wire: Wire) -> None:
    name = _name("audit")
    register(
        wire,
        definition(
            name,
            [
                step("draft", checkpoint={"when": "after"}),
                step("gate", depends_on=["draft"], checkpoint={"when": "before"}),
            ],
        ),
    )
    session = str(wire.new_session()["session_id"])
    body = {"session_id": session, "definition": name, "version": "1"}
    with orch_check("ORCH-0382"):
        expect_error(
            wire.post_json("/v1/runs", body, headers={"X-Orch-Actor": ""}),
            400,
            "INVALID_PARAMS",
            "ORCH-0382",
            "an empty X-Orch-Actor",
        )
    created = wire.post_json("/v1/runs", body, headers={"X-Orch-Actor": "alice"})
    run_id = str(created.json()["run_id"])
    wait_checkpoint(wire, run_id, "draft.after.1", "ORCH-0362: the step waits after its task")
    decide(wire, run_id, "draft.after.1", "retry", decided_by="bob", prompt="Once more")
    wait_checkpoint(wire, run_id, "draft.after.2", "ORCH-0368: the retried step waits again")
    before = audit(wire, run_id)
    decide(wire, run_id, "draft.after.2", "continue", decided_by="carol")
    wait_checkpoint(wire, run_id, "gate.before.1", "ORCH-0361: the next step waits")
    deleted = wire.http.delete(f"/v1/runs/{run_id}", headers={"X-Orch-Actor": "dave"})
    expect(deleted.status_code == 200, f"ORCH-0324: DELETE answers 200; got {deleted.text}")
    entries = audit(wire, run_id)
    with orch_check("ORCH-0380"):
        for entry in entries:
            expect(
                set(entry) == AUDIT_FIELDS,
                f"ORCH-0380: an entry holds exactly {sorted(AUDIT_FIELDS)}; got {entry}",
            )
            parse_rfc3339(entry.get("at"), "ORCH-0380", "at")
        expect(
            [e.get("seq") for e in entries] == list(range(1, len(entries) + 1)),
            f"ORCH-0380: seq counts from 1 in order; got {entries}",
        )
        expect_error(
            wire.http.get("/v1/runs/run-that-never-was/audit"),
            404,
            "NOT_FOUND",
            "ORCH-0380",
            "the audit log of an unknown run",
        )
    with orch_check("ORCH-0381", "ORCH-0382"):
        seen = [
            (e.get("actor"), e.get("action"), e.get("checkpoint_id"), e.get("detail"))
            for e in entries
        ]
        expected = [
            ("alice", "run.created", None, {"definition": name, "version": "1"}),
            (
                "bob",
                "checkpoint.decided",
                "draft.after.1",
                {"decision": "retry", "prompt": "Once more"},
            ),
            ("carol", "checkpoint.decided", "draft.after.2", {"decision": "continue"}),
            ("dave", "run.aborted", None, {"message": "run aborted by the client"}),
        ]
        expect(
            seen == expected,
            f"ORCH-0381: the log must hold who created the run, each decision and the abort, "
            f"in order; got {seen}",
        )
        expect(
            [e.get("step_id") for e in entries] == [None, "draft", "draft", None],
            f"ORCH-0381: a decision's entry names its step; got {entries}",
        )
    with orch_check("ORCH-0383"):
        expect(
            entries[: len(before)] == before,
            f"ORCH-0383: entries never change once appended: before {before}, after {entries}",
        )
    anonymous = str(start_run(wire, name, session)["run_id"])
    with orch_check("ORCH-0382"):
        first = audit(wire, anonymous)[:1]
        expect(
            [e.get("actor") for e in first] == ["anonymous"],
            f"ORCH-0382: a run created without X-Orch-Actor is logged as anonymous; got {first}",
        )
    wire.http.delete(f"/v1/sessions/{session}")
    with orch_check("ORCH-0381", "ORCH-0382"):
        last = audit(wire, anonymous)[-1:]
        expect(
            [(e.get("actor"), e.get("action")) for e in last] == [("system", "run.aborted")],
            f"ORCH-0381: the end of the session aborts the run, logged by system; got {last}",
        )


@pytest.mark.req("ORCH-0371")
def test_a_failed_step_cancels_the_pending_checkpoints_and_fails_the_run(wire: Wire) -> None:
    """A step whose rendered prompt is empty fails at once (ORCH-0331): the step paused
    beside it must not keep the run waiting for a decision that can change nothing."""
    name = _name("failing")
    register(
        wire,
        definition(
            name,
            [
                step("bad", "{{ inputs.blank }}"),
                step("gate", checkpoint={"when": "before"}),
            ],
            inputs={"blank": {"type": "string", "required": False}},
        ),
    )
    run_id = str(start_run(wire, name)["run_id"])
    run = wait_run(wire, run_id, "ORCH-0371: a failed step must end the run despite a checkpoint")
    with orch_check("ORCH-0371"):
        states = {s["step_id"]: s["state"] for s in run["steps"]}
        expect(
            run["state"] == "failed" and states == {"bad": "failed", "gate": "skipped"},
            f"ORCH-0371: the run fails and the paused step is skipped; got {run['state']} {states}",
        )
        listed = approvals(wire, run_id=run_id)["approvals"]
        expect(
            all(a["state"] == "cancelled" for a in listed),
            f"ORCH-0371: a checkpoint of the failed run must be cancelled; got {listed}",
        )
