"""A full disk under a real ``orchq serve``: streams stall, nothing is lost, all finish once freed.

Runs too: a run whose steps end while nothing can be written completes once the
volume is freed, each step run exactly once.

The database lives on a small volume the test fills while tasks decode
(tests/orchestrator/volume.py: a tmpfs as root, else ``RLIMIT_FSIZE``).
Writes fail; readers must see nothing that is not written, admissions must be
refused with a retriable 503, and once the volume is freed every task must
complete with a whole, gapless stream and the pool must be idle again.

Spec: ORCH-0021, ORCH-0060, ORCH-0081, ORCH-0169, ORCH-0170, ORCH-0171, ORCH-0172.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from orchestrator.client import OrchClient
from orchestrator.vocabulary import RUN_TERMINAL_STATES
from tests.orchestrator.serve_process import StartProcess, write_config
from tests.orchestrator.streams import StreamReader
from tests.orchestrator.volume import small_volume
from tests.support import wait_until

pytestmark = pytest.mark.slow

MAX_TOKENS = 300


def _refused_admission(url: str, session: str) -> tuple[httpx.Response, list[str]]:
    """Admit tasks until one is refused (the volume is full); returns it and the admitted ids."""
    admitted: list[str] = []
    deadline = time.monotonic() + 10
    while True:
        response = httpx.post(
            f"{url}/v1/tasks",
            json={"session_id": session, "prompt": "during the fault", "max_tokens": 3},
            timeout=30,
        )
        if response.status_code != 202:
            return response, admitted
        admitted.append(response.json()["task_id"])
        assert time.monotonic() < deadline, "admissions never failed on a full volume"
        time.sleep(0.05)


@pytest.mark.req(
    "ORCH-0021", "ORCH-0060", "ORCH-0081", "ORCH-0169", "ORCH-0170", "ORCH-0171", "ORCH-0180"
)
def test_a_full_volume_stalls_streams_and_every_task_finishes_once_it_is_freed(
    tmp_path: Path, serve_process: StartProcess
) -> None:
    config = write_config(
        tmp_path / "orchq.yaml",
        {
            "pools": [
                {
                    "pool_id": "default",
                    "max_attempts": 2,
                    "replicas": [{"replica_id": "r1", "slots": 8, "token_delay_ms": 20}],
                }
            ]
        },
    )
    with small_volume(tmp_path) as volume:
        server = serve_process(config, volume.directory / "orchq.db")
        with OrchClient(server.url) as client:
            session = client.create_session(ttl_seconds=3600).session_id
            tasks = [
                client.submit_task(
                    session,
                    f"decoding {i}",
                    max_tokens=MAX_TOKENS,
                    **({"seed": i, "determinism": "strict"} if i % 2 else {}),
                ).task_id
                for i in range(6)
            ]
            readers = [StreamReader(server.url, task_id) for task_id in tasks]
            for reader in readers:
                reader.start()
            wait_until(lambda: all(len(r.seen) >= 4 for r in readers), timeout=20)

            volume.fill(server.pid)
            refused, admitted_during = _refused_admission(server.url, session)
            session_refused = httpx.post(f"{server.url}/v1/sessions", json={}, timeout=30)
            seen_during = {r.task_id: len(r.seen) for r in readers}
            time.sleep(3.0)  # the fault lasts: decoding goes on, nothing can be written
            stalled = {r.task_id: len(r.seen) for r in readers}
            volume.free(server.pid)

            deadline = time.monotonic() + 30
            for reader in readers:
                reader.join(timeout=max(0.1, deadline - time.monotonic()))
            problems = []
            for reader in readers:
                ids = sorted(reader.seen)
                events = reader.events()
                if not reader.ended or events[-1:] != ["end"]:
                    problems.append(f"{reader.task_id}: stream {events[-3:]}, ended={reader.ended}")
                elif ids != list(range(1, len(ids) + 1)) or events.count("token") != MAX_TOKENS:
                    problems.append(f"{reader.task_id}: ids {ids[:3]}..{ids[-3:]}, gaps or loss")
            assert not problems, f"ORCH-0171: after the volume was freed: {problems}"
            for task_id in [*tasks, *admitted_during]:
                wait_until(lambda t=task_id: client.get_task(t).state == "completed", timeout=30)
            pool = client.get_pool("default")
            assert [r.in_flight for r in pool.replicas] == [0], pool

            # Readers saw nothing while nothing could be written (ORCH-0169), give or
            # take what was committed before the first failed write.
            grew = {t: stalled[t] - seen_during[t] for t in stalled}
            assert all(n <= 2 for n in grew.values()), f"ORCH-0169: events reached readers {grew}"

            assert refused.status_code == 503, (
                f"ORCH-0170: admission on a full volume: {refused.status_code} {refused.text}"
            )
            error = refused.json()["error"]
            assert (error["kind"], error["retriable"]) == ("STORAGE_UNAVAILABLE", True), error
            assert refused.headers["Retry-After"].isdecimal(), refused.headers
            assert refused.headers["X-Backoff-Ms"].isdecimal(), refused.headers
            assert 2000 <= int(refused.headers["X-Backoff-Ms"]) <= 2250, (
                f"ORCH-0180: STORAGE_UNAVAILABLE suggests 2000 ms plus jitter; {refused.headers}"
            )
            assert session_refused.status_code == 503, session_refused.text
            assert json.loads(session_refused.text)["error"]["kind"] == "STORAGE_UNAVAILABLE"

            after = client.submit_task(session, "after the fault", max_tokens=2)
            assert client.collect_stream(after.task_id).end is not None
        server.wait_for_output("cannot write the database")
        server.wait_for_output("database writes succeed again")
        server.stop()  # before the volume is unmounted


RUN_TOKENS = 40
"""Each step decodes for about 0.8 s (20 ms a token): the fault outlasts the first step."""
DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}


def _wait_runs(client: OrchClient, run_ids: list[str], timeout: float) -> None:
    wait_until(
        lambda: all(client.get_run(r).state in RUN_TERMINAL_STATES for r in run_ids),
        timeout=timeout,
    )


@pytest.mark.req("ORCH-0170", "ORCH-0171", "ORCH-0326", "ORCH-0351", "ORCH-0353")
def test_a_full_volume_while_runs_change_steps_loses_no_step_and_runs_none_twice(
    tmp_path: Path, serve_process: StartProcess
) -> None:
    """The first steps end while nothing can be written: the runs cannot commit the steps'
    outcomes and the steps they start; new runs, definitions and aborts are refused with 503
    ``STORAGE_UNAVAILABLE`` (the refused abort changes nothing); once freed, every run
    completes with each step run once."""
    config = write_config(
        tmp_path / "orchq.yaml",
        {
            "pools": [
                {
                    "pool_id": "default",
                    "replicas": [{"replica_id": "r1", "slots": 16, "token_delay_ms": 20}],
                }
            ]
        },
    )
    steps = [
        {"id": step, "prompt": f"step {step}", "max_tokens": RUN_TOKENS, "depends_on": needs}
        for step, needs in DIAMOND.items()
    ]
    with small_volume(tmp_path) as volume:
        server = serve_process(config, volume.directory / "orchq.db")
        with OrchClient(server.url) as client:
            client.register_definition({"name": "diamond", "version": "1", "steps": steps})
            session = client.create_session(ttl_seconds=3600).session_id
            run_ids = [client.create_run(session, "diamond", "1").run_id for _ in range(3)]

            def first_steps_decoding() -> bool:
                firsts = [client.get_run(r).steps[0] for r in run_ids]
                return all(
                    s.task_id is not None and client.get_task(s.task_id).tokens_out >= 2
                    for s in firsts
                )

            wait_until(first_steps_decoding, timeout=20)
            volume.fill(server.pid)
            refused_run = httpx.post(
                f"{server.url}/v1/runs",
                json={"session_id": session, "definition": "diamond", "version": "1"},
                timeout=30,
            )
            refused_definition = httpx.post(
                f"{server.url}/v1/definitions",
                json={"name": "during-the-fault", "version": "1", "steps": steps[:1]},
                timeout=30,
            )
            refused_abort = httpx.delete(f"{server.url}/v1/runs/{run_ids[0]}", timeout=30)
            time.sleep(2.0)  # the first steps' tasks end; their runs cannot write it
            during = {r: client.get_run(r) for r in run_ids}
            volume.free(server.pid)

            _wait_runs(client, run_ids, timeout=30)
            runs = [client.get_run(r) for r in run_ids]
            problems = []
            for run in runs:
                states = {s.step_id: (s.state, len(s.attempts)) for s in run.steps}
                if run.state != "completed" or set(states.values()) != {("succeeded", 1)}:
                    problems.append(f"{run.run_id} {run.state}: steps {states}")
            assert not problems, f"ORCH-0171: after the volume was freed: {problems}"
            task_ids = [s.task_id for run in runs for s in run.steps]
            assert len(set(task_ids)) == len(DIAMOND) * len(run_ids), task_ids
            tasks = client.get_session(session).tasks
            assert (tasks.queued, tasks.running, tasks.terminal) == (0, 0, len(task_ids)), (
                f"ORCH-0353: a step ran twice or a task was left: {tasks}, steps {task_ids}"
            )
            for run_id in run_ids:
                replay = httpx.get(f"{server.url}/v1/runs/{run_id}/events", timeout=30)
                events = [
                    (int(block["id"]), block["event"], json.loads(block["data"]))
                    for block in _sse_blocks(replay.text)
                ]
                assert [i for i, _, _ in events] == list(range(1, len(events) + 1)), events
                for step in DIAMOND:
                    mine = [name for _, name, data in events if data.get("step_id") == step]
                    assert mine == ["step.started", "step.succeeded"], (
                        f"ORCH-0353: run {run_id} step {step}: {mine}"
                    )
                assert events[-1][1] == "run.completed", events[-1]

            # What readers saw during the fault was committed: no step after `a` had
            # started in a committed state without `a` having succeeded (ORCH-0326).
            for run in during.values():
                first, *rest = run.steps
                if first.state != "succeeded":
                    assert all(s.state == "pending" for s in rest), run.steps

            for refused, what in (
                (refused_run, "a run"),
                (refused_definition, "a definition"),
                (refused_abort, "an abort"),
            ):
                assert refused.status_code == 503, (
                    f"ORCH-0170: {what} on a full volume: {refused.status_code} {refused.text}"
                )
                error = refused.json()["error"]
                assert (error["kind"], error["retriable"]) == ("STORAGE_UNAVAILABLE", True), error

            after = client.create_run(session, "diamond", "1").run_id
            _wait_runs(client, [after], timeout=30)
            assert client.get_run(after).state == "completed"
        server.wait_for_output("cannot write the database")
        server.wait_for_output("database writes succeed again")
        server.stop()  # before the volume is unmounted


def _sse_blocks(body: str) -> list[dict[str, str]]:
    """The events of a whole SSE body, each as its fields (the ``retry:`` block left out)."""
    blocks = []
    for chunk in body.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in chunk.splitlines() if ": " in line)
        if "event" in fields:
            blocks.append(fields)
    return blocks
