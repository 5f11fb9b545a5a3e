"""The persisted-settings guard around ``orch_target`` against a shared live target.

A persisted routing ``fallback_mode`` written by one test must not be read by
another test in a parallel worker. So, against ``--orch-url``, every test that uses
``orch_target`` (``orch_client`` and the factories do) holds an inter-process
lock keyed by the target URL (files in the run's shared temp root,
``tmp_path_factory.getbasetemp().parent`` under xdist): *shared* by default,
*exclusive* for tests marked ``@pytest.mark.orch_exclusive`` (tests that change
persisted settings declare it and then cannot be observed by any other test).
It reads ``fallback_mode`` before the test and restores it after; a test that
changed it *without* the marker is failed at teardown, by name, with what it
changed; a concurrent test that finds the setting away from the run's baseline
waits for that restore instead of running on the leaked value. We chose lock +
blame over only re-reading at teardown because re-reading alone names the
culprit but still lets the innocent test fail; over exclusivity for every test
because that would serialise the whole suite against a live target. A
turnstile lock keeps exclusive waiters from being starved by a stream of
shared holders. An in-process target is a private server and database made
for one test: nothing it persists can reach another test, so it is not guarded.

The locks are :mod:`filelock`'s (portable; released by the OS when a process
dies, so a crashed worker never wedges the run). The guard runs inside the
``orch_target`` fixture itself: a test that uses no orchq fixture runs none of it.
``--orch-guards=off`` turns it (and the leak guard) off, to show what they prevent.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.plugin.settings import Setting, orchq_session

if TYPE_CHECKING:
    from harness.plugin.target import Target
    from orchestrator.client import OrchClient

__all__ = ["EXCLUSIVE_MARKER", "GUARDS", "TargetLock", "guarded", "guards_enabled"]

EXCLUSIVE_MARKER = "orch_exclusive"
GUARDS = Setting(
    "guards",
    "the orchq leak guard and persisted-settings guard: on (default) or off (off reproduces "
    "the leaks they prevent)",
)
LOCK_TIMEOUT_S = 300.0
"""Longest wait for the target lock: a hung holder fails the waiter loudly, not the run silently."""
RESTORE_WAIT_S = 30.0
"""Longest wait for another test's teardown to restore a setting it leaked."""


def guards_enabled(config: pytest.Config) -> bool:
    """False under ``--orch-guards=off`` (or ``orchq_guards = off``)."""
    return orchq_session(config).value(GUARDS) != "off"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{EXCLUSIVE_MARKER}: the test changes persisted settings of the target (routing "
        "fallback_mode); against --orch-url it runs while no other test uses the target",
    )


# ---------------------------------------------------------------- the target lock


class TargetLock:
    """A readers-writer lock across processes (xdist workers) for one target URL.

    The turnstile (a :class:`filelock.FileLock`, held briefly by everyone, and by a
    writer while it waits) and the main lock (a :class:`filelock.ReadWriteLock`,
    shared or exclusive), in a directory every worker of the run shares. The
    directory also holds the run's baseline value of each persisted setting.
    """

    def __init__(self, directory: Path, url: str) -> None:
        from filelock import FileLock, ReadWriteLock

        key = hashlib.sha256(url.encode()).hexdigest()[:16]
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"orchq-target-{key}.lock"
        self._turnstile = FileLock(directory / f"orchq-target-{key}.turnstile")
        self._main = ReadWriteLock(self.path, is_singleton=False)
        self._baseline_dir = directory
        self._key = key
        self._held = False

    def acquire(self, *, exclusive: bool, timeout: float = LOCK_TIMEOUT_S) -> None:
        from filelock import Timeout

        deadline = time.monotonic() + timeout
        try:
            with self._turnstile.acquire(timeout=timeout):
                if exclusive:
                    self._main.acquire_write(timeout=max(0.0, deadline - time.monotonic()))
            if not exclusive:
                self._main.acquire_read(timeout=max(0.0, deadline - time.monotonic()))
        except Timeout:
            raise pytest.fail.Exception(
                f"orchq: could not take the target lock {self.path} within {timeout:.0f} s "
                "(another test holds the target for too long)",
                pytrace=False,
            ) from None
        self._held = True

    def release(self) -> None:
        if self._held:
            # This instance holds one level at most; force: it may be released from another
            # thread than the one that took it.
            self._main.release(force=True)
            self._held = False

    def baseline(self, name: str, current: str) -> str:
        """The run's value of setting ``name``: the first value any test of the run saw."""
        path = self._baseline_dir / f"orchq-target-{self._key}.{name}"
        scratch = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex}")
        scratch.write_text(current, encoding="utf-8")
        try:
            os.link(scratch, path)  # atomic create-if-absent; the loser reads the winner's
        except FileExistsError:
            pass
        finally:
            scratch.unlink()
        return path.read_text(encoding="utf-8")


def _lock_directory(config: pytest.Config, factory: pytest.TempPathFactory) -> Path:
    base = factory.getbasetemp()
    # Under xdist every worker has <root>/popen-gwN; the root is shared by the run.
    return base.parent if hasattr(config, "workerinput") else base


# ---------------------------------------------------------------- the settings guard


def _read_mode(client: OrchClient) -> str | None:
    from orchestrator.client import OrchClientError

    try:
        return client.get_routing().fallback_mode
    except OrchClientError:
        return None  # a broken or stopped server: nothing to guard, no reason to error


def _write_mode(client: OrchClient, mode: str) -> None:
    from orchestrator.client import OrchClientError

    with contextlib.suppress(OrchClientError):
        client.set_routing(mode)  # type: ignore[arg-type]


def _wait_for_mode(client: OrchClient, mode: str, timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    current = _read_mode(client)
    while current is not None and current != mode and time.monotonic() < deadline:
        time.sleep(0.05)
        current = _read_mode(client)
    return current


@contextlib.contextmanager
def guarded(request: pytest.FixtureRequest, target: Target) -> Iterator[None]:
    """Around one test on a shared live target: lock, read ``fallback_mode`` before,
    restore it after, blame (see the module docstring)."""
    if target.in_process or not guards_enabled(request.config):
        yield
        return
    factory: Any = request.getfixturevalue("tmp_path_factory")
    exclusive = request.node.get_closest_marker(EXCLUSIVE_MARKER) is not None
    lock = TargetLock(_lock_directory(request.config, factory), target.url)
    with target.client(timeout=10.0) as client:
        lock.acquire(exclusive=exclusive)
        try:
            before = _read_mode(client)
            if before is not None:
                baseline = lock.baseline("fallback_mode", before)
                if before != baseline and not exclusive:
                    # A test elsewhere leaked it and has not reached its teardown yet.
                    now = _wait_for_mode(client, baseline, RESTORE_WAIT_S)
                    if now != baseline:
                        pytest.fail(
                            f"orchq: the target's persisted routing fallback_mode is {now!r}, "
                            f"not the run's {baseline!r}, and no test restored it within "
                            f"{RESTORE_WAIT_S:.0f} s (ORCH-0127: the routing setting is "
                            "persisted): a test changed it without "
                            f"@pytest.mark.{EXCLUSIVE_MARKER}",
                            pytrace=False,
                        )
                    before = baseline
            yield
            after = _read_mode(client)
            if before is not None and after is not None and after != before:
                _write_mode(client, before)
                if not exclusive:
                    pytest.fail(
                        f"orchq: {request.node.nodeid} changed the target's persisted routing "
                        f"fallback_mode from {before!r} to {after!r} and left it so "
                        "(ORCH-0127: the routing setting is persisted, so other tests would "
                        f"see it); restored. Mark it @pytest.mark.{EXCLUSIVE_MARKER} so no "
                        "concurrent test can observe the change.",
                        pytrace=False,
                    )
        finally:
            lock.release()
