"""The switches of the config's ``tuning`` section: each changes how, never what.

The admission benchmarks switch one optimisation off at a time to measure what
it buys (docs/design/performance.md); a switch that broke behaviour would
make that measure a lie, and one that did nothing would make it meaningless.
So each is run through the same work as the default and must give the same
answers, and the ones whose effect can be seen from outside are seen to act.

Spec: none of its own (behaviour is the spec's either way).
"""

from __future__ import annotations

import contextlib
import gc
import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.client import OrchClient
from orchestrator.compact_json import (
    dumps_canonical,
    dumps_text,
    stdlib_dumps_canonical,
    stdlib_dumps_text,
)
from orchestrator.config import Config, Tuning
from orchestrator.runtime.ids import ordered_id, random_id
from orchestrator.runtime.tasks import LiveTasks
from orchestrator.server import ServerThread
from orchestrator.store.db import TaskRow
from tests.orchestrator.serve_process import StartProcess, write_config
from tests.orchestrator.unit.test_compact_json import VALUES
from tests.support import ConfigFactory, ServeFactory, config_with, pool, run_task

SWITCHES = sorted(Tuning.model_fields)


def _work(server: ServerThread) -> list[tuple[str, list[str], str | None]]:
    """Three tasks on one session, streamed to their end: (state, token texts, error kind)."""
    outcomes = []
    with OrchClient(server.url) as client:
        session = client.create_session(ttl_seconds=600).session_id
        for seed in (1, 2, 3):
            result = run_task(client, session, f"prompt {seed}", max_tokens=4, seed=seed)
            task = client.get_task(result.task_id)
            error = None if task.error is None else task.error.kind
            outcomes.append((task.state, [t.text for t in result.tokens], error))
    return outcomes


@pytest.mark.parametrize("switch", SWITCHES)
def test_switching_an_optimisation_off_changes_no_answer(
    serve: ServeFactory, make_config: ConfigFactory, tmp_path: Path, switch: str
) -> None:
    replicas = [{"replica_id": "r1", "token_delay_ms": 1}]
    default = serve(make_config(pools=[pool(replicas=replicas)]))
    expected = _work(default)
    off = config_with(
        str(tmp_path / "off.db"), pools=[pool(replicas=replicas)], tuning={switch: False}
    )
    assert getattr(off.tuning, switch) is False
    assert _work(serve(off)) == expected
    assert [state for state, _, _ in expected] == ["completed"] * 3


def test_every_switch_is_on_by_default() -> None:
    assert all(getattr(Tuning(), name) is True for name in SWITCHES)


def test_unknown_switches_are_refused() -> None:
    with pytest.raises(ValueError, match="nonexistent"):
        Config.model_validate({"tuning": {"nonexistent": False}})


@pytest.mark.parametrize("value", [*VALUES, {"text": "a\ud800b", "é": "ok"}])
def test_without_compact_json_the_same_values_are_stored_and_streamed(value: Any) -> None:
    """The same JSON values, compact; only a number's spelling may differ (``1e-05``)."""
    for stdlib, compact in (
        (stdlib_dumps_text, dumps_text),
        (stdlib_dumps_canonical, dumps_canonical),
    ):
        text = stdlib(value)
        assert json.loads(text) == json.loads(compact(value))
        assert ", " not in text and '": ' not in text
        text.encode()  # storable: what UTF-8 cannot carry is escaped
    canonical = json.loads(stdlib_dumps_canonical(value), object_pairs_hook=list)
    assert [k for k, _ in canonical] == sorted(k for k, _ in canonical)


def _row(task_id: str) -> TaskRow:
    return TaskRow(
        task_id, "sess_1", 7, "default", "normal", "a prompt", 16, {"seed": 3}, 3, "queued",
        None, None, None, 0, None, None, 1_000, None, None,
    )  # fmt: skip


def _tracked_per_task(live: LiveTasks) -> float:
    gc.collect()
    gc.disable()  # nothing untracks what a collection would
    try:
        before = len(gc.get_objects())
        for i in range(200):
            live.add_queued(_row(f"task_{i}"))
        return (len(gc.get_objects()) - before) / 200
    finally:
        gc.enable()


def test_unpacked_queued_tasks_are_objects_the_collector_tracks() -> None:
    assert _tracked_per_task(LiveTasks()) < 0.1
    assert _tracked_per_task(LiveTasks(packed=False)) >= 1


def test_unordered_ids_do_not_start_with_the_time() -> None:
    ordered = [ordered_id("task") for _ in range(50)]
    assert len({i[:17] for i in ordered}) <= 2  # "task_" and the same millisecond or the next
    unordered = [random_id("task") for _ in range(50)]
    assert len({i[:17] for i in unordered}) == 50
    assert {len(i) for i in ordered} == {len(i) for i in unordered} == {33}


def _socket_count(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):  # closed meanwhile
            count += fd.readlink().name.startswith("socket:")
    return count


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_without_reuseport_listeners_serve_listens_on_one_socket(
    tmp_path: Path, serve_process: StartProcess
) -> None:
    counts = {}
    for reuseport in (True, False):
        config = write_config(
            tmp_path / f"orchq-{reuseport}.yaml",
            {"tuning": {"reuseport_listeners": reuseport}, "pools": [pool(replicas=1)]},
        )
        server = serve_process(config, tmp_path / f"orchq-{reuseport}.db")
        with OrchClient(server.url) as client:
            client.create_session()
        counts[reuseport] = _socket_count(server.pid)
    assert counts[False] < 8, counts
    assert counts[True] >= counts[False] + 32, counts
