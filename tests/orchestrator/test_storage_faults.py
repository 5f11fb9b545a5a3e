"""A full disk under a real ``orchq serve``: streams stall, nothing is lost, all finish once freed.

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
