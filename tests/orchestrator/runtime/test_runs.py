"""Runs in orchestratord: the typed client end to end, definitions loaded from a folder,
what the store keeps and removes, and a run that survives ``kill -9``.

Spec: ORCH-0315, ORCH-0317, ORCH-0323, ORCH-0324, ORCH-0331, ORCH-0341, ORCH-0343,
ORCH-0492, ORCH-0494.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.client import OrchClient, OrchClientError
from orchestrator.config import ConfigError, load_config, load_definitions
from orchestrator.runtime.definitions import registered_in
from orchestrator.store import ChildRow, DefinitionRow, RunRow, SessionRow, StepRow, Store
from tests.orchestrator.serve_process import StartProcess, single_slot_config
from tests.support import ConfigFactory, ServeFactory, wait_until

CHAIN = {
    "name": "chain",
    "version": "1",
    "inputs": {"topic": {"type": "string"}},
    "steps": [
        {"id": "a", "prompt": "about {{ inputs.topic }}", "max_tokens": 3},
        {"id": "b", "prompt": "then {{ steps.a.output }}", "depends_on": ["a"], "max_tokens": 3},
    ],
}


@pytest.mark.req("ORCH-0317", "ORCH-0323", "ORCH-0324")
def test_the_client_registers_runs_lists_and_aborts(
    serve: ServeFactory, make_config: ConfigFactory
) -> None:
    server = serve()
    with OrchClient(server.url) as client:
        registered = client.register_definition(CHAIN)
        assert client.register_definition(CHAIN) == registered
        assert client.get_definition("chain", "1") == registered
        assert [d.name for d in client.list_definitions()] == ["chain"]
        session = client.create_session().session_id
        runs = [
            client.create_run(session, "chain", "1", inputs={"topic": f"t{i}"}, seed=i)
            for i in range(3)
        ]
        assert all(run.state == "running" and run.seed == i for i, run in enumerate(runs))
        for run in runs:
            wait_until(lambda run=run: client.get_run(run.run_id).state == "completed")
        first = client.list_runs(limit=2)
        rest = client.list_runs(limit=2, cursor=first.next_cursor)
        assert [r.run_id for r in [*first.runs, *rest.runs]] == [r.run_id for r in runs]
        assert rest.next_cursor is None
        with pytest.raises(OrchClientError) as conflict:
            client.abort_run(runs[0].run_id)
        assert conflict.value.status == 409
        done = client.get_run(runs[0].run_id)
        assert [s.output is not None for s in done.steps] == [True, True]


@pytest.mark.req("ORCH-0315")
def test_definitions_dir_is_registered_at_start(
    serve: ServeFactory, make_config: ConfigFactory, tmp_path: Path
) -> None:
    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "chain.json").write_text(json.dumps(CHAIN), encoding="utf-8")
    (folder / "single.yaml").write_text(
        yaml.safe_dump({"name": "single", "version": "2", "steps": [{"id": "x", "prompt": "y"}]})
    )
    (folder / "notes.txt").write_text("not a definition")
    server = serve(make_config(definitions_dir=str(folder)))
    with OrchClient(server.url) as client:
        assert [(d.name, d.version) for d in client.list_definitions()] == [
            ("chain", "1"),
            ("single", "2"),
        ]


@pytest.mark.req("ORCH-0315")
def test_a_broken_definition_file_refuses_the_config_naming_file_and_field(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "defs"
    folder.mkdir()
    broken = {**CHAIN, "steps": [{"id": "a", "prompt": "p", "depends_on": ["a"]}]}
    (folder / "broken.yaml").write_text(yaml.safe_dump(broken), encoding="utf-8")
    config = tmp_path / "orchq.yaml"
    config.write_text(yaml.safe_dump({"definitions_dir": "defs"}), encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(config)
    message = str(refused.value)
    assert "broken.yaml" in message and "steps[0].depends_on[0]" in message
    assert "\n" not in message
    (folder / "broken.yaml").write_text(": not yaml [", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not a definition document"):
        load_config(config)


@pytest.mark.req("ORCH-0343")
def test_purging_a_session_removes_its_runs_but_never_a_running_one(tmp_path: Path) -> None:
    store = Store(tmp_path / "orchq.db")
    store.insert_session(SessionRow("s", 60, {}, 0, 60_000, 1_000))
    store.insert_definition(DefinitionRow("d", "1", "digest", {"name": "d"}, 0))
    run = RunRow("r", "s", "d", "1", 7, 4, {}, "running", 0, None)
    step = StepRow("r", "a", 0, "pending", 1, None, None, None, None, None)
    with store.transaction():
        store.insert_run(run, [step])
        store.insert_run_events([("r", 1, "run.started", "{}")])
    assert store.purge_sessions(10**12) == 0
    store.update_run("r", state="aborted", finished_ms=2_000)
    assert store.purge_sessions(10**12) == 1
    assert store.get_run("r") is None and store.run_steps("r") == []
    assert store.run_events("r") == []
    assert store.get_definition("d", "1") is not None
    with pytest.raises(Exception, match="FOREIGN KEY"):
        store.insert_run(RunRow("r2", "gone", "d", "1", 7, 4, {}, "running", 0, None), [])
    store.close()


@pytest.mark.slow
@pytest.mark.req("ORCH-0331", "ORCH-0341", "ORCH-0342")
def test_a_step_killed_mid_decode_takes_its_outcome_after_the_restart_and_retries(
    tmp_path: Path, serve_process: StartProcess
) -> None:
    """A best_effort step's task that had sent tokens ends WORKER_RESET at the restart
    (ORCH-0142): the step takes that outcome as its failed attempt and runs again."""
    config = single_slot_config(tmp_path / "orchq.yaml", max_attempts=3)
    db = tmp_path / "orchq.db"
    definition = {
        "name": "killed",
        "version": "1",
        "steps": [
            {"id": "first", "prompt": "quick", "max_tokens": 2},
            {
                "id": "long",
                "prompt": "long {{ steps.first.output }}",
                "depends_on": ["first"],
                "max_tokens": 40,
                "retry": {"max_attempts": 2, "backoff_base_ms": 0},
            },
        ],
    }
    first = serve_process(config, db)
    with OrchClient(first.url) as client:
        client.register_definition(definition)
        session = client.create_session(ttl_seconds=900).session_id
        run_id = client.create_run(session, "killed", "1").run_id

        def long_decoding() -> bool:
            task_id = client.get_run(run_id).steps[1].task_id
            return task_id is not None and client.get_task(task_id).tokens_out >= 3

        wait_until(long_decoding, timeout=10)
        before = client.get_run(run_id)
    first.kill9()

    second = serve_process(config, db)
    with OrchClient(second.url) as client:
        wait_until(lambda: client.get_run(run_id).state != "running", timeout=20)
        after = client.get_run(run_id)
        killed = client.get_task(str(after.steps[1].attempts[0].task_id))
    assert after.state == "completed"
    assert after.steps[0].attempts == before.steps[0].attempts
    assert [a.attempt for a in after.steps[1].attempts] == [1, 2]
    assert killed.state == "failed" and killed.error is not None
    assert killed.error.kind == "WORKER_RESET"


@pytest.mark.slow
@pytest.mark.req("ORCH-0324", "ORCH-0341")
def test_an_abort_that_died_before_cancelling_its_tasks_cancels_them_at_the_restart(
    tmp_path: Path, serve_process: StartProcess
) -> None:
    """The abort's commit landed and the process died before it cancelled the step's task:
    the restart cancels that task rather than run it for a run that is over."""
    config = single_slot_config(tmp_path / "orchq.yaml")
    db = tmp_path / "orchq.db"
    first = serve_process(config, db)
    with OrchClient(first.url) as client:
        client.register_definition(CHAIN)
        session = client.create_session(ttl_seconds=900).session_id
        client.submit_task(session, "hold the only slot", max_tokens=40)
        run_id = client.create_run(session, "chain", "1", inputs={"topic": "x"}).run_id
        wait_until(lambda: client.get_run(run_id).steps[0].task_id is not None, timeout=10)
        task_id = str(client.get_run(run_id).steps[0].task_id)
        assert client.get_task(task_id).state == "queued"
    first.kill9()
    store = Store(db)
    cancelled = {"kind": "CANCELLED", "message": "run aborted by the client", "retriable": False}
    with store.transaction():
        store.update_step(run_id, "a", state="failed", error=cancelled, finished_ms=1)
        store.update_step(run_id, "b", state="skipped", finished_ms=1)
        store.update_run(run_id, state="aborted", finished_ms=1)
    store.close()

    second = serve_process(config, db)
    with OrchClient(second.url) as client:
        wait_until(lambda: client.get_task(task_id).state not in ("queued", "running"), timeout=20)
        assert client.get_task(task_id).state == "cancelled"
        assert client.get_run(run_id).state == "aborted"


LEAF = {
    "name": "leaf",
    "version": "1",
    "steps": [{"id": "w", "prompt": "hello", "max_tokens": 3}],
}


@pytest.mark.req("ORCH-0492", "ORCH-0494")
def test_a_child_whose_parent_ended_before_a_crash_is_aborted_at_the_restart(
    serve: ServeFactory, make_config: ConfigFactory, db_path: str
) -> None:
    """The parent's end was committed but the crash came before its child was aborted:
    the restart aborts the orphan, and a running parent's missing child is created."""
    store = Store(db_path)
    store.insert_session(SessionRow("s", 600, {}, 0, 10**13, None))
    parent_doc = {
        "name": "fan",
        "version": "1",
        "steps": [{"id": "each", "run": {"definition": "leaf", "version": "1"}}],
    }
    for document in (LEAF, parent_doc):
        store.insert_definition(DefinitionRow(str(document["name"]), "1", "x", document, 0))
    ended = RunRow("top", "s", "fan", "1", 7, 4, {}, "aborted", 0, 1_000)
    orphan = RunRow("kid", "s", "leaf", "1", 8, 4, {}, "running", 0, None)
    waiting = RunRow("top2", "s", "fan", "1", 9, 4, {}, "running", 0, None)
    with store.transaction():
        store.insert_run(ended, [StepRow("top", "each", 0, "failed", 1, None, None, 0, 1, None)])
        store.insert_run(
            orphan, [StepRow("kid", "w", 0, "pending", 1, None, None, None, None, None)]
        )
        store.insert_run(
            waiting, [StepRow("top2", "each", 0, "running", 1, None, None, 0, None, None)]
        )
        store.insert_child(ChildRow("top", "each", 0, "kid"))
        for run_id in ("top", "kid", "top2"):
            store.insert_run_events([(run_id, 1, "run.started", "{}")])
    store.close()
    server = serve(make_config())
    with OrchClient(server.url) as client:
        wait_until(lambda: client.get_run("kid").state != "running")
        assert client.get_run("kid").state == "aborted"
        wait_until(lambda: client.get_run("top2").state != "running")
        resumed = client.get_run("top2")
        assert resumed.state == "completed", resumed
        assert len(resumed.steps[0].children) == 1
        assert client.get_run(resumed.steps[0].children[0]).parent_run_id == "top2"


def _folder_config(tmp_path: Path, documents: dict[str, Any]) -> Path:
    """A config file whose ``definitions_dir`` holds each of ``documents`` (file name ->
    document), written over what the folder holds already."""
    folder = tmp_path / "defs"
    folder.mkdir(exist_ok=True)
    for file_name, document in documents.items():
        (folder / file_name).write_text(yaml.safe_dump(document), encoding="utf-8")
    config = tmp_path / "orchq.yaml"
    config.write_text(yaml.safe_dump({"definitions_dir": "defs"}), encoding="utf-8")
    return config


@pytest.mark.req("ORCH-0315", "ORCH-0483")
def test_a_folder_child_reference_is_checked_with_the_config(tmp_path: Path) -> None:
    parent = {
        **LEAF,
        "name": "a-parent",
        "steps": [
            {"id": "c", "run": {"definition": "leaf", "version": "1", "inputs": {"nope": "x"}}}
        ],
    }
    config = _folder_config(tmp_path, {"a-parent.yaml": parent, "leaf.yaml": LEAF})
    with pytest.raises(ConfigError) as refused:
        load_config(config)
    message = str(refused.value)
    assert "a-parent.yaml" in message and "steps[0].run.inputs.nope" in message
    parent["steps"][0]["run"]["inputs"] = {}  # type: ignore[index]
    _folder_config(tmp_path, {"a-parent.yaml": parent})
    assert load_config(config).definitions_dir is not None  # a valid child reference loads


@pytest.mark.req("ORCH-0315", "ORCH-0483")
def test_a_folder_child_registered_in_the_database_is_found_there(tmp_path: Path) -> None:
    parent = {
        "name": "a-parent",
        "version": "1",
        "steps": [{"id": "c", "run": {"definition": "leaf", "version": "1"}}],
    }
    loaded = load_config(_folder_config(tmp_path, {"a-parent.yaml": parent}))
    store = Store(tmp_path / "orchq.db")
    with pytest.raises(ConfigError) as refused:
        load_definitions(loaded, registered_in(store))
    assert "a-parent.yaml: steps[0].run.version: step 'c' runs leaf@1" in str(refused.value)
    store.insert_definition(DefinitionRow("leaf", "1", "digest", LEAF, 0))
    assert [p.name for p in load_definitions(loaded, registered_in(store))] == ["a-parent"]
    store.close()
