"""The fixtures with ``--orch-serve-cmd``: targets the harness starts, shares, kills, reaps.

The inner runs use the stub server of ``tests/harness/managed`` as the serve command
(it starts in a fraction of a second): what is under test is the fixtures, not a server.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import wait_gone

pytest_plugins = ["pytester"]

STUB = Path(__file__).parents[1] / "managed" / "stub_server.py"
COMMAND = f"{sys.executable} {STUB} {{port}} --pools default # {{config}}"


PIDS = """
import httpx

def pid(target):
    return httpx.get(target.url + "/pid").json()["pid"]
"""


def test_orch_target_is_one_started_target_per_worker_and_orch_serve_one_per_call(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        PIDS
        + textwrap.dedent(
            """
            seen = []

            def test_first(orch_target):
                assert orch_target.process is not None and not orch_target.in_process
                seen.append(pid(orch_target))

            def test_second(orch_target):
                assert pid(orch_target) == seen[0]

            def test_serve(orch_serve):
                one, two = orch_serve(auth_token="t"), orch_serve()
                assert one.token == "t" and pid(one) != pid(two) != seen[0]
                assert "auth_token: t" in one.process.config_path.read_text()
            """
        )
    )
    result = pytester.runpytest_inprocess("--orch-serve-cmd", COMMAND, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_orch_process_kills_terminates_and_restarts_on_the_same_state(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        textwrap.dedent(
            """
            def test_lifecycle(orch_process):
                target = orch_process()
                first = target.process.pid
                target.kill()
                assert not target.process.running
                again = target.restart()
                assert again.process is target.process and again.process.pid != first
                assert again.process.starts == 2
                assert again.terminate() is not None
            """
        )
    )
    for mode in ([], ["--orch-serve-cmd", COMMAND]):
        result = pytester.runpytest_inprocess(*mode, "-p", "no:cacheprovider")
        result.assert_outcomes(passed=1)


def test_a_broken_serve_command_fails_the_test_in_one_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_it(orch_target):\n    pass\n")
    result = pytester.runpytest_inprocess("--orch-serve-cmd", "my-server --port {port}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*--orch-serve-cmd: the command must contain {config}*"])


def test_url_and_serve_command_exclude_each_other(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_it(orch_process):\n    pass\n")
    result = pytester.runpytest_inprocess(
        "--orch-serve-cmd", COMMAND, "--orch-url", "http://127.0.0.1:9", "-rs"
    )
    result.assert_outcomes(skipped=1)
    pytester.makepyfile("def test_it(orch_serve):\n    orch_serve()\n")
    result = pytester.runpytest_inprocess("--orch-serve-cmd", COMMAND, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_in_process_keywords_are_refused_for_a_started_target(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_it(orch_serve):\n    orch_serve(wrap_app=lambda app: app)\n")
    result = pytester.runpytest_inprocess("--orch-serve-cmd", COMMAND)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*wrap_app= reach into an in-process orchestratord*"])


@pytest.mark.parametrize("how", ["fails", "is interrupted"])
def test_no_process_outlives_a_failing_or_interrupted_run(
    pytester: pytest.Pytester, how: str, tmp_path: Path
) -> None:
    record = tmp_path / "pids"
    ending = "raise KeyboardInterrupt" if how == "is interrupted" else "assert False"
    pytester.makepyfile(
        PIDS
        + textwrap.dedent(
            f"""
            def test_it(orch_process, orch_target):
                started = [orch_process(), orch_process(), orch_target]
                with open({str(record)!r}, "w") as out:
                    out.write(" ".join(str(pid(t)) for t in started))
                {ending}
            """
        )
    )
    result = pytester.runpytest_subprocess("--orch-serve-cmd", COMMAND, "-p", "no:cacheprovider")
    assert result.ret != 0
    pids = [int(p) for p in record.read_text().split()]
    assert len(pids) == 3
    left = [p for p in pids if not wait_gone(p)]
    assert not left, f"the run {how} and left servers running: {left}"
