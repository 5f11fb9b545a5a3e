"""Runs (spec section 12): definitions, the step graph, abort, listing, run events.

What a client of the runs profile can observe: a definition registered once
and refused, field by field, when broken; a run whose steps start only after
their dependencies, at most ``max_parallel`` at once, each an ordinary task
whose tokens are those of the rendered prompt and the derived seed; a failing
step that is retried, then fails the run and skips what waits; abort; the
listing; and the run's event stream. Checks that need slow or failing replicas
start a target of their own on the harness's engine (``serve_on_engine``) and
skip against ``--orch-url``, never pass.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from harness.checks import expect, orch_check, orch_checks
from harness.engine.control import EngineControl, ServeOnEngine, rule, unique_tag
from harness.wire import Wire, expect_error, parse_rfc3339, read_stream
from harness.wire.runs import (
    definition,
    get_run,
    read_run_events,
    register,
    run_event_problems,
    start_run,
    step,
    steps_by_id,
    task_text,
    unique_name,
    wait_run,
)
from orchestrator.runs import step_seed
from orchestrator.vocabulary import RUN_CLOSING_EVENTS

pytestmark = [pytest.mark.contract, pytest.mark.orch_profile("runs")]

DEFINITION_FIELDS = {"name", "version", "digest", "created_at", "definition"}
RUN_FIELDS = {
    "run_id",
    "session_id",
    "definition",
    "version",
    "state",
    "seed",
    "max_parallel",
    "inputs",
    "steps",
    "created_at",
    "finished_at",
    "events_url",
    "parent_run_id",
    "parent_step_id",
    "parent_item",
}
STEP_FIELDS = {
    "step_id",
    "state",
    "depends_on",
    "pool",
    "seed",
    "task_id",
    "attempts",
    "output",
    "error",
    "started_at",
    "finished_at",
    "children",
}
STEP_DEFAULTS = {
    "depends_on": [],
    "pool": "default",
    "max_tokens": 64,
    "params": {
        "seed": None,
        "sampler_profile_version": "v1",
        "determinism": "best_effort",
        "temperature": 1.0,
        "top_p": 1.0,
    },
    "retry": {"max_attempts": 1, "backoff_base_ms": 100, "backoff_cap_ms": 10000, "jitter_ms": 0},
}


def _ms(value: Any, req: str, what: str) -> float:
    return parse_rfc3339(value, req, what).timestamp() * 1000


# ---------------------------------------------------------------- 12.1, 12.2 definitions


@pytest.mark.req("ORCH-0300", "ORCH-0303", "ORCH-0304", "ORCH-0312", "ORCH-0313", "ORCH-0314")
def test_a_definition_is_registered_once_and_read_back(wire: Wire) -> None:
    name = unique_name("registered")
    document = definition(
        name,
        [{"id": "first", "prompt": "Say {{ inputs.topic }}"}, {"id": "second", "prompt": "x"}],
        inputs={"topic": {"type": "string"}},
    )
    response = wire.post_json("/v1/definitions", document)
    with orch_check("ORCH-0312"):
        expect(
            response.status_code == 201,
            f"ORCH-0312: a new definition must answer 201; got {response.status_code}: "
            f"{response.text[:300]}",
        )
        location = f"/v1/definitions/{name}/versions/1"
        expect(
            response.headers.get("location") == location,
            f"ORCH-0312: Location must be {location}; got {response.headers.get('location')}",
        )
        body = response.json()
        expect(
            set(body) == DEFINITION_FIELDS,
            f"ORCH-0312: the answer must hold exactly {sorted(DEFINITION_FIELDS)}; got {body}",
        )
    with orch_check("ORCH-0303", "ORCH-0304"):
        first = body["definition"]["steps"][0]
        filled = {key: first.get(key) for key in STEP_DEFAULTS}
        expect(
            filled == STEP_DEFAULTS,
            f"ORCH-0303: a step's defaults must be filled in; got {first}",
        )
        expect(
            body["definition"]["inputs"] == {"topic": {"type": "string", "required": True}},
            f"ORCH-0302: an input's `required` defaults to true; got {body['definition']}",
            "ORCH-0302",
        )
    with orch_check("ORCH-0313"):
        again = wire.post_json("/v1/definitions", document)
        expect(
            again.status_code == 200 and again.json() == body,
            f"ORCH-0313: the same document again must answer 200 with the registered "
            f"definition; got {again.status_code}: {again.text[:300]}",
        )
        explicit = json.loads(json.dumps(document))
        explicit["steps"][1]["max_tokens"] = 64  # the default, written out: the same document
        same = wire.post_json("/v1/definitions", explicit)
        expect(
            same.status_code == 200 and same.json()["digest"] == body["digest"],
            f"ORCH-0313: defaults written out are the same document; got {same.status_code}",
        )
        changed = json.loads(json.dumps(document))
        changed["steps"][1]["prompt"] = "y"
        expect_error(
            wire.post_json("/v1/definitions", changed),
            409,
            "CONFLICT",
            "ORCH-0313",
            "another document under a registered name and version",
        )
    with orch_check("ORCH-0314"):
        read = wire.http.get(location)
        expect(
            read.status_code == 200 and read.json() == body,
            f"ORCH-0314: GET {location} must answer the definition; got {read.status_code}",
        )
        listed = wire.http.get("/v1/definitions").json()["definitions"]
        mine = [d for d in listed if d["name"] == name]
        expect(
            mine == [{k: body[k] for k in ("name", "version", "digest", "created_at")}],
            f"ORCH-0314: the listing must hold the definition's summary; got {mine}",
        )
        keys = [(d["name"], d["version"]) for d in listed]
        expect(keys == sorted(keys), f"ORCH-0314: listed by name and version; got {keys}")
        missing = wire.http.get(f"/v1/definitions/{name}/versions/2")
        expect_error(missing, 404, "NOT_FOUND", "ORCH-0314", "an unknown version")


def _bad(name: str) -> list[tuple[str, str, dict[str, Any] | bytes, str]]:
    """(requirement, what, document, the path the error must name)."""
    ok = [step("a")]
    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    return [
        ("ORCH-0300", "an unknown key", {**definition(name, ok), "extra": 1}, "extra"),
        ("ORCH-0300", "no steps", definition(name, []), "steps"),
        ("ORCH-0301", "a name with a slash", definition("a/b", ok), "name"),
        (
            "ORCH-0302",
            "an input of an unknown type",
            definition(name, ok, inputs={"n": {"type": "float"}}),
            "inputs.n.type",
        ),
        (
            "ORCH-0303",
            "an unknown key in a step",
            definition(name, [step("a", colour="red")]),
            "steps[0].colour",
        ),
        (
            "ORCH-0303",
            "a duplicate step id",
            definition(name, [step("a"), step("a")]),
            "steps[1].id",
        ),
        (
            "ORCH-0304",
            "max_attempts 0",
            definition(name, [step("a", retry={"max_attempts": 0})]),
            "steps[0].retry.max_attempts",
        ),
        (
            "ORCH-0305",
            "a step that depends on itself",
            definition(name, [step("a", depends_on=["a"])]),
            "steps[0].depends_on[0]",
        ),
        (
            "ORCH-0305",
            "an unknown dependency",
            definition(name, [step("a", depends_on=["ghost"])]),
            "steps[0].depends_on[0]",
        ),
        (
            "ORCH-0305",
            "a cycle",
            definition(
                name,
                [
                    step("a", depends_on=["c"]),
                    step("b", depends_on=["a"]),
                    step("c", depends_on=["b"]),
                ],
            ),
            "steps[0].depends_on",
        ),
        (
            "ORCH-0306",
            "an expression in a template",
            definition(name, [step("a", "{{ 1 + 1 }}")]),
            "steps[0].prompt",
        ),
        (
            "ORCH-0306",
            "an unclosed reference",
            definition(name, [step("a", "hello {{ inputs.x")], inputs={"x": {"type": "string"}}),
            "steps[0].prompt",
        ),
        (
            "ORCH-0307",
            "an undeclared input",
            definition(name, [step("a", "{{ inputs.topic }}")]),
            "steps[0].prompt",
        ),
        (
            "ORCH-0307",
            "the output of a step that is not a dependency",
            definition(name, [step("a"), step("b", "{{ steps.a.output }}")]),
            "steps[1].prompt",
        ),
        (
            "ORCH-0309",
            "more steps than max_run_steps",
            definition(name, [step(f"s{i}") for i in range(101)]),
            "steps",
        ),
        (
            "ORCH-0309",
            "10,000 steps (over max_definition_bytes)",
            definition(name, [step(f"s{i}") for i in range(10_000)]),
            "(document)",
        ),
        ("ORCH-0309", "a document nested 40 levels deep", definition(name, deep), "steps"),
    ]


@pytest.mark.req(
    "ORCH-0300",
    "ORCH-0301",
    "ORCH-0302",
    "ORCH-0303",
    "ORCH-0304",
    "ORCH-0305",
    "ORCH-0306",
    "ORCH-0307",
    "ORCH-0308",
    "ORCH-0309",
)
def test_a_broken_definition_is_refused_naming_its_field(wire: Wire) -> None:
    name = unique_name("broken")
    with orch_checks() as check:
        for req, what, document, path in _bad(name):
            with check(req, "ORCH-0308"):
                response = wire.post_json("/v1/definitions", document)
                error = expect_error(response, 400, "INVALID_DEFINITION", req, what)
                got = error.get("path")
                expect(
                    isinstance(got, str) and got.startswith(path),
                    f"ORCH-0308: {what}: the error's path must name {path!r}; got {got!r}",
                )
                expect(
                    str(error.get("message", "")).startswith(str(got)),
                    f"ORCH-0308: {what}: the message must start with the path; got {error}",
                )
    with orch_check("ORCH-0314"):
        unknown = wire.http.get(f"/v1/definitions/{name}/versions/1")
        expect_error(unknown, 404, "NOT_FOUND", "ORCH-0314", "a refused definition, read")


# ---------------------------------------------------------------- 12.3 runs


def _diamond(name: str) -> dict[str, Any]:
    return definition(
        name,
        [
            step("outline", "Outline {{ inputs.topic }}", params={"determinism": "strict"}),
            step("left", "L {{ steps.outline.output }}", depends_on=["outline"]),
            step("right", "R {{steps.outline.output}} {{ inputs.n }}", depends_on=["outline"]),
            step(
                "final",
                "F {{ steps.left.output }}|{{ steps.right.output }} {{ inputs.loud }}",
                depends_on=["left", "right"],
                params={"determinism": "strict", "seed": 99},
            ),
        ],
        inputs={
            "topic": {"type": "string"},
            "n": {"type": "integer"},
            "loud": {"type": "boolean", "required": False},
        },
    )


@pytest.mark.req(
    "ORCH-0316",
    "ORCH-0317",
    "ORCH-0320",
    "ORCH-0321",
    "ORCH-0322",
    "ORCH-0325",
    "ORCH-0329",
    "ORCH-0330",
)
def test_a_run_completes_each_step_as_a_task(wire: Wire) -> None:
    name = unique_name("diamond")
    register(wire, _diamond(name))
    session = str(wire.new_session()["session_id"])
    body = {
        "session_id": session,
        "definition": name,
        "version": "1",
        "inputs": {"topic": "queues", "n": -3, "loud": True},
        "seed": 7,
    }
    response = wire.post_json("/v1/runs", body)
    with orch_check("ORCH-0317"):
        expect(
            response.status_code == 202,
            f"ORCH-0317: POST /v1/runs must answer 202; got {response.status_code}: "
            f"{response.text[:300]}",
        )
        created = response.json()
        run_id = created["run_id"]
        expect(
            response.headers.get("location") == f"/v1/runs/{run_id}",
            f"ORCH-0317: Location must be /v1/runs/{run_id}; got {response.headers}",
        )
        expect(
            set(created) == RUN_FIELDS and created["seed"] == 7,
            f"ORCH-0317: the answer is the run with the request's seed; got {created}",
        )
    with orch_check("ORCH-0316"):
        expect(
            created["max_parallel"] == 4,
            f"ORCH-0316: max_parallel defaults to 4; got {created['max_parallel']}",
        )
    run = wait_run(wire, run_id)
    with orch_check("ORCH-0320"):
        expect(set(run) == RUN_FIELDS, f"ORCH-0320: a run holds exactly {sorted(RUN_FIELDS)}")
        expect(
            run["events_url"] == f"/v1/runs/{run_id}/events" and run["session_id"] == session,
            f"ORCH-0320: events_url and session_id; got {run}",
        )
        parse_rfc3339(run["finished_at"], "ORCH-0005", "finished_at")
    with orch_check("ORCH-0329", "ORCH-0325"):
        expect(run["state"] == "completed", f"ORCH-0329: all steps succeeded: {run}")
    steps = steps_by_id(run)
    with orch_check("ORCH-0321"):
        expect(
            [s["step_id"] for s in run["steps"]] == ["outline", "left", "right", "final"],
            f"ORCH-0321: steps in the definition's order; got {list(steps)}",
        )
        for s in run["steps"]:
            expect(set(s) == STEP_FIELDS, f"ORCH-0321: a step holds {sorted(STEP_FIELDS)}: {s}")
            attempts = s["attempts"]
            expect(
                [a["attempt"] for a in attempts] == [1] and attempts[0]["task_id"] == s["task_id"],
                f"ORCH-0321: one attempt, whose task is the step's: {s}",
            )
        expect(steps["final"]["seed"] == 99, "ORCH-0321: seed is the step's params.seed")
        expect(
            steps["left"]["depends_on"] == ["outline"] and steps["left"]["pool"] == "default",
            f"ORCH-0321: depends_on and pool as defined: {steps['left']}",
        )
    for step_id, s in steps.items():
        task = wire.task(str(s["task_id"]))
        with orch_check("ORCH-0330"):
            expect(
                task["session_id"] == session
                and task["priority"] == "batch"
                and task["max_tokens"] == 4
                and task["params"]["seed"] == s["seed"],
                f"ORCH-0330: step {step_id}'s task is a batch task of the run's session with "
                f"its max_tokens and seed; got {task}",
            )
        with orch_check("ORCH-0322"):
            expect(
                s["error"] is None and s["output"] == task_text(wire, str(s["task_id"])),
                f"ORCH-0322: step {step_id}'s output is its task's token texts; got {s}",
            )


@pytest.mark.req("ORCH-0310", "ORCH-0311", "ORCH-0334")
def test_a_step_renders_its_prompt_and_derives_its_seed(wire: Wire) -> None:
    """The tokens of a strict step are those of a task with the rendered prompt and the
    derived seed (ORCH-0113): the only way a client sees what the server rendered."""
    name = unique_name("render")
    register(wire, _diamond(name))
    run = wait_run(
        wire,
        start_run(wire, name, inputs={"topic": "queues", "n": -3, "loud": False}, seed=7)["run_id"],
    )
    steps = steps_by_id(run)
    with orch_check("ORCH-0310"):
        expected_seed = step_seed(7, "outline")
        expect(
            steps["outline"]["seed"] == expected_seed,
            f"ORCH-0310: run seed 7, step outline must get seed {expected_seed}; "
            f"got {steps['outline']['seed']}",
        )
    outline = str(steps["outline"]["output"])
    left, right = str(steps["left"]["output"]), str(steps["right"]["output"])
    rendered = {
        "outline": "Outline queues",
        "final": f"F {left}|{right} false",
    }
    session = str(wire.new_session()["session_id"])
    for step_id, prompt in rendered.items():
        s = steps[step_id]
        params = {"seed": s["seed"], "determinism": "strict"}
        direct = wire.admit(session, prompt=prompt, max_tokens=4, params=params)
        with orch_check("ORCH-0311", "ORCH-0334"):
            text = task_text(wire, str(direct["task_id"]))
            expect(
                text == s["output"],
                f"ORCH-0311: step {step_id} must run the prompt {prompt!r} (references "
                f"replaced); its strict tokens {s['output']!r} differ from that prompt's "
                f"{text!r} at the same seed",
            )
    expect(bool(outline), "ORCH-0322: a succeeded step has its output")
    again = wait_run(
        wire,
        start_run(wire, name, inputs={"topic": "queues", "n": -3, "loud": False}, seed=7)["run_id"],
    )
    with orch_check("ORCH-0334"):
        for step_id in rendered:
            expect(
                steps_by_id(again)[step_id]["output"] == steps[step_id]["output"],
                f"ORCH-0334: strict step {step_id} must give the same tokens in a second run "
                "of the same definition, inputs and seed",
            )


@pytest.mark.req("ORCH-0318", "ORCH-0319")
def test_a_run_is_refused_for_what_it_names(wire: Wire) -> None:
    name = unique_name("inputs")
    register(wire, _diamond(name))
    session = str(wire.new_session()["session_id"])
    base = {"session_id": session, "definition": name, "version": "1"}
    good = {"topic": "t", "n": 1}
    with orch_checks() as check:
        for what, inputs, path in [
            ("an undeclared input", {**good, "colour": "red"}, "inputs.colour"),
            ("a missing required input", {"topic": "t"}, "inputs.n"),
            ("a string for an integer", {**good, "n": "1"}, "inputs.n"),
            ("a boolean for an integer", {**good, "n": True}, "inputs.n"),
            ("a number for a boolean", {**good, "loud": 1}, "inputs.loud"),
        ]:
            with check("ORCH-0319"):
                response = wire.post_json("/v1/runs", {**base, "inputs": inputs})
                error = expect_error(response, 400, "INVALID_PARAMS", "ORCH-0319", what)
                expect(
                    error.get("path") == path,
                    f"ORCH-0319: {what}: the error's path must be {path}; got {error}",
                )
        for what, body, kind, status in [
            (
                "an unknown definition",
                {**base, "definition": unique_name("none")},
                "NOT_FOUND",
                404,
            ),
            ("an unknown version", {**base, "version": "9"}, "NOT_FOUND", 404),
            ("an unknown session", {**base, "session_id": "nope"}, "NOT_FOUND", 404),
        ]:
            with check("ORCH-0318"):
                response = wire.post_json("/v1/runs", {**body, "inputs": good})
                expect_error(response, status, kind, "ORCH-0318", what)
        with check("ORCH-0318"):
            pooled = unique_name("pool")
            register(wire, definition(pooled, [step("a", pool="no-such-pool")]))
            response = wire.post_json("/v1/runs", {**base, "definition": pooled})
            error = expect_error(response, 404, "NOT_FOUND", "ORCH-0318", "an unknown pool")
            expect(
                "no-such-pool" in str(error.get("message")),
                f"ORCH-0318: the 404 names the pool; got {error}",
            )


@pytest.mark.req("ORCH-0323")
def test_runs_are_listed_in_order_a_page_at_a_time(wire: Wire) -> None:
    name = unique_name("listed")
    register(wire, definition(name, [step("a")]))
    session = str(wire.new_session()["session_id"])
    made = [start_run(wire, name, session)["run_id"] for _ in range(3)]
    for run_id in made:
        wait_run(wire, run_id)
    seen: list[str] = []
    cursor: str | None = None
    with orch_check("ORCH-0323"):
        for _ in range(5):
            query: dict[str, str | int] = {"definition": name, "limit": 2}
            if cursor:
                query["cursor"] = cursor
            page = wire.http.get("/v1/runs", params=query)
            expect(page.status_code == 200, f"ORCH-0323: GET /v1/runs answered {page.text}")
            body = page.json()
            expect(len(body["runs"]) <= 2, f"ORCH-0323: at most `limit` runs; got {body}")
            seen += [r["run_id"] for r in body["runs"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        expect(seen == made, f"ORCH-0323: pages must list {made} in order; got {seen}")
        done = wire.http.get("/v1/runs", params={"definition": name, "state": "running"})
        expect(done.json()["runs"] == [], f"ORCH-0323: state filter; got {done.json()}")
        later = wire.http.get(
            "/v1/runs", params={"definition": name, "created_after": "2999-01-01T00:00:00Z"}
        )
        expect(later.json()["runs"] == [], f"ORCH-0323: created_after; got {later.json()}")
        earlier = wire.http.get(
            "/v1/runs", params={"definition": name, "created_before": "2999-01-01T00:00:00Z"}
        )
        expect(
            [r["run_id"] for r in earlier.json()["runs"]] == made,
            f"ORCH-0323: created_before; got {earlier.json()}",
        )
        bad = wire.http.get("/v1/runs", params={"cursor": "not-a-cursor"})
        expect_error(bad, 400, "INVALID_PARAMS", "ORCH-0323", "a cursor the server never gave")


# ---------------------------------------------------------------- graph, retries, failures


def _timeline(wire: Wire, run: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Each step's task from admission to end, in epoch milliseconds."""
    out = {}
    for s in run["steps"]:
        task = wire.task(str(s["task_id"]))
        out[s["step_id"]] = (
            _ms(task["created_at"], "ORCH-0005", "created_at"),
            _ms(task["finished_at"], "ORCH-0005", "finished_at"),
        )
    return out


@pytest.mark.req("ORCH-0326", "ORCH-0327")
def test_steps_wait_for_their_dependencies_and_for_max_parallel(
    serve_on_engine: ServeOnEngine,
) -> None:
    wire = serve_on_engine(slots=4, token_delay_ms=15)
    name = unique_name("graph")
    fan = [step(f"p{i}", f"P{i}", max_tokens=6) for i in range(5)]
    chain = [
        step("c1", "C1", max_tokens=6),
        step("c2", "C2 {{ steps.c1.output }}", depends_on=["c1"], max_tokens=6),
        step("c3", "C3", depends_on=["c2", "p0"], max_tokens=6),
    ]
    register(wire, definition(name, [*chain, *fan]))
    run = wait_run(wire, start_run(wire, name, max_parallel=2)["run_id"], timeout=30)
    expect(run["state"] == "completed", f"ORCH-0329: the run completes: {run}")
    spans = _timeline(wire, run)
    declared = {s["step_id"]: s["depends_on"] for s in run["steps"]}
    with orch_check("ORCH-0326"):
        for step_id, dependencies in declared.items():
            for dependency in dependencies:
                expect(
                    spans[step_id][0] >= spans[dependency][1],
                    f"ORCH-0326: step {step_id}'s task was admitted at {spans[step_id][0]:.0f} "
                    f"before its dependency {dependency} ended at {spans[dependency][1]:.0f}",
                )
    with orch_check("ORCH-0327"):
        edges = sorted(
            [(start, 1) for start, _ in spans.values()] + [(end, -1) for _, end in spans.values()],
            key=lambda edge: (edge[0], edge[1]),
        )
        running = peak = 0
        for _, delta in edges:
            running += delta
            peak = max(peak, running)
        expect(peak <= 2, f"ORCH-0327: max_parallel 2, but {peak} steps ran at once: {spans}")
        expect(peak == 2, f"ORCH-0327: independent steps must run in parallel; peak {peak}")


@pytest.mark.req("ORCH-0331", "ORCH-0332")
def test_a_failed_attempt_is_retried_after_its_backoff(
    serve_on_engine: ServeOnEngine, orch_engine: EngineControl
) -> None:
    wire = serve_on_engine(pool_keys={"max_attempts": 1}, slots=4)
    tag = unique_tag("step retry")
    orch_engine.set_faults([rule({"die_after_tokens": 1}, prompt_contains=tag, times=1)])
    name = unique_name("retry")
    retry = {"max_attempts": 3, "backoff_base_ms": 300, "backoff_cap_ms": 400}
    register(wire, definition(name, [step("flaky", f"{tag} go", retry=retry)]))
    run = wait_run(wire, start_run(wire, name)["run_id"])
    flaky = steps_by_id(run)["flaky"]
    attempts = flaky["attempts"]
    with orch_check("ORCH-0331"):
        expect(
            run["state"] == "completed" and len(attempts) == 2,
            f"ORCH-0331: the first attempt's task failed, so a second one ran; got {run}",
        )
        first = wire.task(str(attempts[0]["task_id"]))
        expect(first["state"] == "failed", f"ORCH-0331: attempt 1's task failed: {first}")
    with orch_check("ORCH-0332"):
        second = wire.task(str(attempts[1]["task_id"]))
        waited = _ms(second["created_at"], "ORCH-0005", "created_at") - _ms(
            first["finished_at"], "ORCH-0005", "finished_at"
        )
        expect(
            waited >= 300 - 1,
            f"ORCH-0332: attempt 2 must start backoff_base_ms (300) after attempt 1 failed; "
            f"it started {waited:.0f} ms after",
        )


@pytest.mark.req("ORCH-0322", "ORCH-0325", "ORCH-0328", "ORCH-0331", "ORCH-0332")
def test_a_failed_step_fails_the_run_and_skips_what_waits(
    serve_on_engine: ServeOnEngine, orch_engine: EngineControl
) -> None:
    wire = serve_on_engine(pool_keys={"max_attempts": 1}, slots=4)
    tag = unique_tag("step failure")
    orch_engine.set_faults([rule({"die_after_tokens": 1}, prompt_contains=tag)])
    name = unique_name("failing")
    register(
        wire,
        definition(
            name,
            [
                step("broken", f"{tag} go", retry={"max_attempts": 2, "backoff_base_ms": 0}),
                step("after", "A {{ steps.broken.output }}", depends_on=["broken"]),
                step("later", "B", depends_on=["after"]),
                step("empty", "{{ inputs.blank }}"),
            ],
            inputs={"blank": {"type": "string"}},
        ),
    )
    run = wait_run(wire, start_run(wire, name, inputs={"blank": "x"})["run_id"])
    steps = steps_by_id(run)
    with orch_check("ORCH-0328", "ORCH-0325"):
        expect(run["state"] == "failed", f"ORCH-0328: a failed step fails the run: {run}")
        for step_id in ("after", "later"):
            expect(
                steps[step_id]["state"] == "skipped" and steps[step_id]["task_id"] is None,
                f"ORCH-0328: step {step_id} waited for the failed step: skipped, never "
                f"started; got {steps[step_id]}",
            )
    with orch_check("ORCH-0332", "ORCH-0322"):
        broken = steps["broken"]
        expect(
            broken["state"] == "failed" and len(broken["attempts"]) == 2,
            f"ORCH-0332: two attempts allowed, both failed: {broken}",
        )
        last = wire.task(str(broken["attempts"][-1]["task_id"]))
        expect(
            broken["error"] == last["error"] and broken["output"] is None,
            f"ORCH-0332: the step's error is its last attempt's ({last['error']}); got "
            f"{broken['error']}",
        )
    blank = wait_run(wire, start_run(wire, name, inputs={"blank": ""})["run_id"])
    with orch_check("ORCH-0331"):
        empty = steps_by_id(blank)["empty"]
        expect(
            empty["state"] == "failed"
            and empty["error"] is not None
            and empty["error"]["kind"] == "INVALID_PARAMS"
            and empty["task_id"] is None,
            f"ORCH-0331: an empty rendered prompt fails the step with INVALID_PARAMS; got {empty}",
        )


@pytest.mark.req("ORCH-0324", "ORCH-0333")
def test_abort_cancels_running_steps_and_skips_pending_ones(
    serve_on_engine: ServeOnEngine, orch_engine: EngineControl
) -> None:
    wire = serve_on_engine(slots=4)
    tag = unique_tag("abort")
    orch_engine.set_faults([rule({"hang_after_tokens": 1}, prompt_contains=tag)])
    name = unique_name("abort")
    register(
        wire,
        definition(name, [step("hold", f"{tag} hold"), step("next", "n", depends_on=["hold"])]),
    )
    for how in ("DELETE /v1/runs/{id}", "DELETE /v1/sessions/{id}"):
        req = "ORCH-0324" if how.startswith("DELETE /v1/runs") else "ORCH-0333"
        session = str(wire.new_session()["session_id"])
        run_id = str(start_run(wire, name, session)["run_id"])
        with orch_check(req):
            task_id = ""
            for _ in range(2000):
                task_id = str(steps_by_id(get_run(wire, run_id))["hold"]["task_id"] or "")
                if task_id:
                    break
            wire.wait_running(task_id)
            if req == "ORCH-0324":
                response = wire.http.delete(f"/v1/runs/{run_id}")
                expect(
                    response.status_code == 200 and response.json()["state"] == "aborted",
                    f"ORCH-0324: DELETE of a running run answers 200 with the run aborted; "
                    f"got {response.status_code}: {response.text[:300]}",
                )
            else:
                wire.http.delete(f"/v1/sessions/{session}")
            run = wait_run(wire, run_id)
            steps = steps_by_id(run)
            expect(run["state"] == "aborted", f"{req}: the run must end aborted: {run}")
            hold = steps["hold"]
            expect(
                hold["state"] == "failed" and (hold["error"] or {}).get("kind") == "CANCELLED",
                f"{req}: the running step fails with CANCELLED; got {hold}",
            )
            expect(
                steps["next"]["state"] == "skipped",
                f"{req}: the pending step is skipped; got {steps['next']}",
            )
            task = wire.wait_terminal(task_id, timeout=5)
            expect(
                task["state"] == "cancelled",
                f"{req}: the running step's task must be cancelled; it is {task['state']}",
            )
        if req == "ORCH-0324":
            with orch_check("ORCH-0324"):
                again = wire.http.delete(f"/v1/runs/{run_id}")
                expect_error(again, 409, "CONFLICT", "ORCH-0324", "DELETE of an ended run")
                unknown = wire.http.delete("/v1/runs/run-that-never-was")
                expect_error(unknown, 404, "NOT_FOUND", "ORCH-0320", "DELETE of an unknown run")


# ---------------------------------------------------------------- 12.5 run events


@pytest.mark.req("ORCH-0350", "ORCH-0351", "ORCH-0352", "ORCH-0353")
def test_the_run_stream_reports_every_step(wire: Wire) -> None:
    name = unique_name("events")
    register(wire, _diamond(name))
    run = wait_run(wire, start_run(wire, name, inputs={"topic": "t", "n": 2})["run_id"])
    run_id = run["run_id"]
    capture = read_run_events(wire, run_id)
    with orch_check("ORCH-0350"):
        expect(
            capture.status == 200 and capture.content_type.startswith("text/event-stream"),
            f"ORCH-0350: GET {run['events_url']} must answer 200 text/event-stream; got "
            f"{capture.status} {capture.content_type}: {capture.body[:200]}",
        )
        expect(
            capture.retries[:1] == ["3000"] and capture.closed_by_server,
            f"ORCH-0350: one retry: line first, then the server closes the replay: "
            f"{capture.body[:200]}",
        )
        ids = capture.ids
        expect(
            ids == list(range(1, len(ids) + 1)),
            f"ORCH-0350: event ids are 1, 2, 3 ... without gap; got {ids}",
        )
    names = capture.names
    with orch_check("ORCH-0351"):
        for event in capture.events:
            problems = run_event_problems(event)
            expect(
                not problems,
                f"ORCH-0351: {event.event} data must hold exactly the fields of the table of "
                f"12.5, typed as they are; got {event.data}: {'; '.join(problems)}",
            )
    with orch_check("ORCH-0352"):
        closing = [n for n in names if n in RUN_CLOSING_EVENTS]
        expect(
            names[:1] == ["run.started"]
            and closing == ["run.completed"]
            and names[-1] == closing[0],
            f"ORCH-0352: run.started first, run.completed once and last; got {names}",
        )
    with orch_check("ORCH-0353"):
        for s in run["steps"]:
            mine = [
                e.event
                for e in capture.events
                if isinstance(e.data, dict) and e.data.get("step_id") == s["step_id"]
            ]
            expect(
                mine == ["step.started", "step.succeeded"],
                f"ORCH-0353: step {s['step_id']}: step.started, then its one outcome; got {mine}",
            )
    with orch_check("ORCH-0350"):
        resumed = read_run_events(wire, run_id, last_event_id=3)
        expect(
            [e.key() for e in resumed.events] == [e.key() for e in capture.events[3:]],
            "ORCH-0350: Last-Event-ID 3 must replay the events after 3, the same as before",
        )
        unknown = wire.http.get("/v1/runs/run-that-never-was/events")
        expect_error(unknown, 404, "NOT_FOUND", "ORCH-0350", "the events of an unknown run")
        bad = wire.http.get(f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": "x"})
        expect_error(bad, 400, "INVALID_PARAMS", "ORCH-0350", "Last-Event-ID x")


@pytest.mark.req("ORCH-0350", "ORCH-0352")
def test_the_run_stream_is_live_pings_while_idle_and_closes_with_the_abort(
    serve_on_engine: ServeOnEngine, orch_engine: EngineControl
) -> None:
    wire = serve_on_engine(slots=4, sse_ping_interval_ms=100)
    tag = unique_tag("live run stream")
    orch_engine.set_faults([rule({"hang_after_tokens": 1}, prompt_contains=tag)])
    name = unique_name("live")
    register(wire, definition(name, [step("hold", f"{tag} hold")]))
    run_id = str(start_run(wire, name)["run_id"])
    path = f"/v1/runs/{run_id}/events"
    with orch_check("ORCH-0350"):
        started = read_stream(
            wire, run_id, path=path, on_event=lambda e: e.event == "step.started", timeout=10
        )
        expect(
            started.names == ["run.started", "step.started"],
            f"ORCH-0350: a live run's stream delivers its events as they happen; got "
            f"{started.names}",
        )
    abort = threading.Timer(0.5, lambda: wire.http.delete(f"/v1/runs/{run_id}"))
    abort.start()
    try:
        live = read_stream(wire, run_id, path=path, last_event_id=2, timeout=10)
    finally:
        abort.join()
    with orch_check("ORCH-0350"):
        expect(
            len(live.comments) >= 2 and all(c.startswith(": ping") for c in live.comments),
            f"ORCH-0350: an idle run stream sends `: ping` every sse_ping_interval_ms (100); "
            f"got comments {live.comments}",
        )
    with orch_check("ORCH-0352"):
        expect(
            live.closed_by_server and live.names[-1:] == ["run.aborted"],
            f"ORCH-0352: the live stream of an aborted run closes with run.aborted; got "
            f"{live.names}, closed by the server: {live.closed_by_server}",
        )
        expect(
            live.ids[:1] == [3],
            f"ORCH-0350: after Last-Event-ID 2 the stream continues with 3; got {live.ids}",
        )
