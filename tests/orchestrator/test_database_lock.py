"""One server per database: a second ``orchq serve`` refuses; a crash releases the database.

Spec: ORCH-0174, ORCH-0175.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from orchestrator.client import OrchClient
from tests.orchestrator.serve_process import (
    ServeProcess,
    StartProcess,
    serve_argv,
    single_slot_config,
)

pytestmark = pytest.mark.slow


def run_second(config: Path, db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``orchq serve`` on ``db``, expected to exit on its own; fails the test if it serves."""
    try:
        return subprocess.run(
            serve_argv(config, db, *args), capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"ORCH-0174: a second orchq serve started on {db}, which another server uses: "
            f"{exc.stdout!r}"
        ) from None


@pytest.fixture
def first(tmp_path: Path, serve_process: StartProcess) -> tuple[Path, Path, ServeProcess]:
    """``(config, db, server)``: an ``orchq serve`` on the database the test shares."""
    config = single_slot_config(tmp_path / "orchq.yaml")
    db = tmp_path / "orchq.db"
    return config, db, serve_process(config, db)


@pytest.mark.req("ORCH-0174")
def test_a_second_server_on_a_database_in_use_refuses_with_one_line_and_exit_2(
    first: tuple[Path, Path, ServeProcess],
) -> None:
    config, db, server = first
    with OrchClient(server.url) as client:
        session = client.create_session().session_id
        queued = [client.submit_task(session, f"q{i}", max_tokens=20).task_id for i in range(3)]

    second = run_second(config, db)
    assert second.returncode == 2, second
    assert second.stdout == "", f"the second server printed {second.stdout!r}"
    lines = second.stderr.splitlines()
    assert len(lines) == 1, f"ORCH-0174: not one line: {second.stderr!r}"
    assert str(db) in lines[0] and "in use" in lines[0], lines[0]

    # The first server owns its tasks alone: they all complete, each exactly once.
    with OrchClient(server.url) as client:
        for task_id in queued:
            assert client.collect_stream(task_id).end is not None
            assert len(client.get_task(task_id).attempts) == 1


@pytest.mark.req("ORCH-0175")
def test_kill_9_releases_the_database_and_lock_wait_takes_over_when_it_is_free(
    first: tuple[Path, Path, ServeProcess], serve_process: StartProcess
) -> None:
    config, db, server = first
    refused = run_second(config, db, "--lock-wait", "0.5")
    assert refused.returncode == 2 and "in use" in refused.stderr, refused
    server.kill9()
    started = time.monotonic()
    second = serve_process(config, db, args=["--lock-wait", "30"])
    assert time.monotonic() - started < 15, "ORCH-0175: the crashed server still held its database"
    with OrchClient(second.url) as client:
        assert client.health().status == "ok"
