"""A target in a process the harness owns: started ready, killed, terminated, restarted, reaped.

Most tests use :mod:`stub_server` (it starts in a fraction of a second); one runs the
real ``orchq serve`` and shows that a restart keeps its state. Every process a test
starts is checked gone afterwards: nothing may outlive the harness.
"""

from __future__ import annotations

import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import harness.managed.server as server_module
from harness.managed.children import ChildGroup, reap_all, running_groups
from harness.managed.command import ServeCommand, embedded_command
from harness.managed.server import ManagedServer, ServeError, free_port
from tests.support import process_alive, wait_gone

STUB = Path(__file__).with_name("stub_server.py")
PY = sys.executable


def _command(extra: str = "") -> ServeCommand:
    return ServeCommand.parse(f"{PY} {STUB} {{port}} {extra} # {{config}}")


@pytest.fixture(autouse=True)
def _nothing_left() -> Iterator[None]:
    yield
    left = running_groups()
    reap_all()
    assert not left, f"process groups left running: {[g.pgid for g in left]}"


def test_start_waits_until_ready_and_kill_ends_the_process(tmp_path: Path) -> None:
    target = ManagedServer(_command(), {"pools": []}, tmp_path / "t")
    url = target.start()
    pid = httpx.get(f"{url}/pid").json()["pid"]
    assert target.running and process_alive(pid)
    assert "database:" in target.config_path.read_text(encoding="utf-8")
    target.kill()
    assert not target.running and wait_gone(pid)


def test_terminate_sends_sigterm_and_reports_the_exit_status(tmp_path: Path) -> None:
    target = ManagedServer(_command(), {}, tmp_path / "t")
    target.start()
    assert target.terminate() == -signal.SIGTERM
    assert not target.running


def test_a_command_that_exits_is_one_error_with_its_log_and_no_retry(tmp_path: Path) -> None:
    target = ManagedServer(_command("--exit-at-once"), {}, tmp_path / "t")
    with pytest.raises(ServeError) as caught:
        target.start()
    message = str(caught.value)
    assert "exited with status 3 before it was ready" in message
    assert "stub: refusing to start" in message
    assert target.starts == 1


def test_a_server_that_never_gets_ready_times_out_naming_what_it_lacks(tmp_path: Path) -> None:
    target = ManagedServer(_command("--not-ready"), {}, tmp_path / "t", startup_timeout=1.0)
    with pytest.raises(ServeError, match=r"not ready after 1 s: /readyz answers 503"):
        target.start()
    assert not target.running


def test_ready_pools_wait_for_healthz_only_when_none_is_named(tmp_path: Path) -> None:
    target = ManagedServer(_command("--not-ready"), {}, tmp_path / "t", ready_pools=[])
    target.start()
    assert target.running
    target.kill()


def test_a_port_taken_before_the_server_binds_it_is_a_race_retried_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        monkeypatch.setattr(server_module, "free_port", lambda: next(ports, None) or free_port())
        target = ManagedServer(_command(), {}, tmp_path / "t")
        url = target.start()
    assert target.starts == 2 and not url.endswith(f":{taken}")
    assert f"cannot listen on {taken}" in target.log_path.read_text(encoding="utf-8")
    target.kill()


def test_another_server_on_the_port_is_not_taken_for_the_one_started(tmp_path: Path) -> None:
    """Another server answers on the port this one fails to bind: its pools are not the
    configured ones, so the start is a lost race, retried on another port."""
    other = ManagedServer(_command("--pools theirs"), {}, tmp_path / "other")
    port = int(other.start().rsplit(":", 1)[1])
    target = ManagedServer(
        _command("--pools ours"), {"pools": [{"pool_id": "ours"}]}, tmp_path / "t"
    )
    target.port = port  # as a restart tries its old port first
    url = target.start()
    assert target.port != port and target.starts == 2
    assert httpx.get(f"{url}/v1/pools").json()["pools"][0]["pool_id"] == "ours"
    target.kill()
    other.kill()


def test_restart_keeps_the_port_and_the_state_folder(tmp_path: Path) -> None:
    target = ManagedServer(_command(), {}, tmp_path / "t")
    first = target.start()
    target.kill()
    assert target.restart() == first
    assert target.log_path.read_text(encoding="utf-8").count("== orchq: start") == 2
    target.kill()


def test_killing_a_wrapper_kills_the_server_it_started(tmp_path: Path) -> None:
    """The serve command is a shell that starts the server in the background and waits."""
    command = ServeCommand.parse(
        f"{PY} {STUB} {{port}} & echo $! > {{state_dir}}/server.pid; wait # {{config}}"
    )
    target = ManagedServer(command, {}, tmp_path / "t")
    target.start()
    server_pid = int((tmp_path / "t" / "server.pid").read_text())
    assert process_alive(server_pid)
    target.kill()
    assert wait_gone(server_pid), "the wrapper's server survived the kill"


def test_reap_all_kills_every_group_still_registered() -> None:
    group = ChildGroup([PY, "-c", "import time; time.sleep(60)"])
    assert group in running_groups()
    assert reap_all() >= 1
    assert not group.alive and group not in running_groups()


@pytest.mark.slow
def test_orchq_serve_restarted_on_its_state_keeps_what_it_acknowledged(tmp_path: Path) -> None:
    from harness.engine.control import engine_pool

    target = ManagedServer(
        embedded_command(),
        {"pools": [engine_pool("http://127.0.0.1:9", "default", ("r1",))]},
        tmp_path / "t",
        ready_pools=[],
    )
    url = target.start()
    created = httpx.post(f"{url}/v1/sessions", json={"ttl_seconds": 600}).json()
    target.kill()
    again = target.restart()
    session = httpx.get(f"{again}/v1/sessions/{created['session_id']}")
    assert session.status_code == 200 and session.json()["expires_at"] == created["expires_at"]
    target.kill()
