"""The leak guard: the test that leaves work running behind fails, not the next one.

A test that, once its fixtures are torn down, still leaves

- pending asyncio tasks it created (on a loop that is not closed),
- threads it started that are still alive (after a short grace to finish),
- open streams of the typed client (``OrchClient.stream`` /
  ``AsyncOrchClient.stream`` iterated but neither exhausted nor closed),

gets an error at its own teardown naming it and what leaked; the leaked tasks
are cancelled and the streams closed so the next test starts clean.

What existed before the test's call phase (session fixtures, the in-process
orchestratord started by ``orch_target``/``orch_serve`` for this very test,
xdist's threads) is not the test's doing and is never reported; servers the
harness starts are stopped by their fixtures before the check runs, so their
thread and loop are gone by then. Tasks on a loop run by a thread that
existed before the test (a session-wide server) are infrastructure too.

Only public APIs: the open loops are found through the garbage collector,
their tasks with ``asyncio.all_tasks(loop)``, the thread running a loop by
asking the loop itself (``call_soon_threadsafe``), so it works on every
supported Python and on uvloop as well as asyncio's own loops.

It applies to tests that use a harness fixture (``--orch-leak-scope=harness``,
the default) or to every test (``all``). ``@pytest.mark.orch_allow_leaks(reason)``
opts a test out; ``--orch-guards=off`` turns it (and the settings guard) off.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import sys
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from harness.plugin.persisted import GUARDS, guards_enabled
from harness.plugin.settings import Setting, add, orchq_session

__all__ = ["ALLOW_MARKER", "HARNESS_FIXTURES", "StreamTracker"]

ALLOW_MARKER = "orch_allow_leaks"
HARNESS_FIXTURES = frozenset(
    {
        "orch_target",
        "orch_serve",
        "orch_process",
        "orch_client",
        "orch_make_session",
        "orch_make_task",
        "orch_make_attempt",
        "orch_make_definition",
        "orch_make_run",
        "orch_db",
        "orch_scripted_engine",
        "orch_engine",
    }
)
TEST_RUNNER_MODULES = ("_pytest", "pytest_rerunfailures", "xdist", "execnet")
"""Thread classes of the test runner's own plugins (a nested pytester run starts some) are not
leaks."""
LOOP_ANSWER_S = 1.0
"""How long a running loop gets to say which thread runs it."""
THREAD_GRACE_S = 2.0
"""How long new threads get to finish after teardown before they count as leaked."""

_snapshot_key = pytest.StashKey["_Snapshot"]()


LEAK_SCOPE = Setting(
    "leak_scope", "tests the leak guard checks: those using an orchq fixture (default) or all"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    add(parser, "orchq target", GUARDS, choices=("on", "off"))
    add(parser, "orchq target", LEAK_SCOPE, choices=("harness", "all"))


_threads_at_configure = pytest.StashKey["set[threading.Thread]"]()
_session_threads: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
"""Threads a pytest session started while configuring or unconfiguring, still alive after it:
a nested ``pytester`` run's plugins (pytest-rerunfailures' crash server, xdist) are the test
runner's, not the test's."""


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.stash[_threads_at_configure] = set(threading.enumerate())
    config.addinivalue_line(
        "markers",
        f"{ALLOW_MARKER}(reason): the orchq leak guard does not check this test "
        "(pending asyncio tasks, threads, open client streams)",
    )


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    before = config.stash.get(_threads_at_configure, set())
    _session_threads.update(t for t in threading.enumerate() if t not in before)


# ---------------------------------------------------------------- stream tracking


@dataclass
class _OpenStream:
    what: str
    close: Callable[[], None]


@dataclass
class StreamTracker:
    """Client streams opened while a test runs and not yet finished or closed."""

    owner: str
    open: dict[int, _OpenStream] = field(default_factory=dict)

    def opened(self, what: str, close: Callable[[], None]) -> int:
        handle = id(close)
        self.open[handle] = _OpenStream(what, close)
        return handle

    def closed(self, handle: int) -> None:
        self.open.pop(handle, None)


_trackers: list[StreamTracker] = []
_originals: dict[str, Any] = {}


def _install_stream_tracking() -> None:
    """Wrap the typed clients' ``stream`` methods (once per process, while a test is tracked)."""
    if _originals:
        return
    from orchestrator.client import AsyncOrchClient, OrchClient

    sync_stream = OrchClient.stream
    async_stream = AsyncOrchClient.stream

    def tracked(self: OrchClient, task_id: str, **kwargs: Any) -> Generator[Any, None, None]:
        inner = sync_stream(self, task_id, **kwargs)
        tracker = _trackers[-1] if _trackers else None
        handle = tracker.opened(f"OrchClient.stream({task_id!r})", inner.close) if tracker else 0
        try:
            yield from inner
        finally:
            inner.close()
            if tracker is not None:
                tracker.closed(handle)

    async def atracked(
        self: AsyncOrchClient, task_id: str, **kwargs: Any
    ) -> AsyncGenerator[Any, None]:
        inner = async_stream(self, task_id, **kwargs)
        tracker = _trackers[-1] if _trackers else None

        def close() -> None:  # the loop may be gone: drop the generator, nothing to await
            return None

        handle = tracker.opened(f"AsyncOrchClient.stream({task_id!r})", close) if tracker else 0
        try:
            async for event in inner:
                yield event
        finally:
            await inner.aclose()
            if tracker is not None:
                tracker.closed(handle)

    _originals["sync"] = sync_stream
    _originals["async"] = async_stream
    OrchClient.stream = tracked  # type: ignore[method-assign]
    AsyncOrchClient.stream = atracked  # type: ignore[method-assign]


def _uninstall_stream_tracking() -> None:
    if _trackers or not _originals:
        return
    from orchestrator.client import AsyncOrchClient, OrchClient

    OrchClient.stream = _originals.pop("sync")  # type: ignore[method-assign]
    AsyncOrchClient.stream = _originals.pop("async")  # type: ignore[method-assign]


# ---------------------------------------------------------------- snapshot and check


def _loop_classes() -> set[type]:
    """Every event loop class defined so far (asyncio's, uvloop's, a test's own)."""
    found: set[type] = set()
    pending: list[type] = [asyncio.AbstractEventLoop]
    while pending:
        cls = pending.pop()
        if cls not in found:
            found.add(cls)
            pending.extend(cls.__subclasses__())
    return found


def _open_loops() -> list[asyncio.AbstractEventLoop]:
    """Every event loop object that is not closed, whichever thread runs it (if any).

    asyncio has no registry of loops, and ``asyncio.all_tasks`` needs one: the
    leaked task's loop is exactly the one the guard does not hold. Instances of
    a Python class refer to their class, so the collector's referrers of the
    loop classes are the loops (asyncio's selector loops and ``uvloop.Loop``
    alike), found in one pass of the collector's C traversal.
    """
    classes = _loop_classes()
    return [
        obj for obj in gc.get_referrers(*classes) if type(obj) in classes and not obj.is_closed()
    ]


def _pending_tasks() -> list[asyncio.Task[Any]]:
    """Pending tasks of every open loop (``asyncio.all_tasks`` per loop)."""
    pending: list[asyncio.Task[Any]] = []
    for loop in _open_loops():
        pending.extend(task for task in asyncio.all_tasks(loop) if not task.done())
    return pending


def _running_thread(loop: asyncio.AbstractEventLoop) -> threading.Thread | None:
    """The thread running ``loop``, asked on the loop itself (``None`` if it does not answer)."""
    answer: concurrent.futures.Future[threading.Thread] = concurrent.futures.Future()
    try:
        loop.call_soon_threadsafe(lambda: answer.set_result(threading.current_thread()))
        return answer.result(timeout=LOOP_ANSWER_S)
    except (RuntimeError, TimeoutError):  # closed meanwhile, or too busy to tell
        return None


@dataclass
class _Snapshot:
    threads: set[threading.Thread]
    tasks: weakref.WeakSet[asyncio.Task[Any]]
    tracker: StreamTracker | None


def _guarded(item: pytest.Item) -> bool:
    config = item.config
    if not guards_enabled(config):
        return False
    if item.get_closest_marker(ALLOW_MARKER) is not None:
        return False
    if orchq_session(config).value(LEAK_SCOPE) == "all":
        return True
    names = getattr(item, "fixturenames", ())
    return any(name in HARNESS_FIXTURES for name in names)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    if _guarded(item):
        tracker: StreamTracker | None = None
        if "orchestrator.client" in sys.modules or any(
            name in HARNESS_FIXTURES for name in getattr(item, "fixturenames", ())
        ):
            _install_stream_tracking()
            tracker = StreamTracker(item.nodeid)
            _trackers.append(tracker)
        item.stash[_snapshot_key] = _Snapshot(
            set(threading.enumerate()), weakref.WeakSet(_pending_tasks()), tracker
        )
    return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    snapshot = item.stash.get(_snapshot_key, None)
    if snapshot is None:
        return (yield)
    del item.stash[_snapshot_key]
    try:
        result = yield  # every fixture of the test is finalised in here
    except BaseException:
        _collect_leaks(snapshot)  # still clean up for the next test; the error wins
        raise
    leaks = _collect_leaks(snapshot)
    if leaks:
        raise pytest.fail.Exception(
            f"orchq leak guard: {item.nodeid} left behind: "
            + "; ".join(leaks)
            + f". Cancel/join/close them in the test, or mark it "
            f"@pytest.mark.{ALLOW_MARKER}(reason).",
            pytrace=False,
        )
    return result


def _collect_leaks(snapshot: _Snapshot) -> list[str]:
    leaks: list[str] = []
    tracker = snapshot.tracker
    if tracker is not None:
        if _trackers and _trackers[-1] is tracker:
            _trackers.pop()
        if tracker.open:
            gc.collect()  # an abandoned generator is finalised (and closed) here, not leaked
        streams = list(tracker.open.values())
        for stream in streams:
            with contextlib.suppress(Exception):
                stream.close()
        if streams:
            leaks.append(
                f"{len(streams)} open client stream(s): "
                + ", ".join(stream.what for stream in streams)
            )
        _uninstall_stream_tracking()

    new_threads = [
        t for t in threading.enumerate() if t not in snapshot.threads and not _runner_thread(t)
    ]
    deadline = time.monotonic() + THREAD_GRACE_S
    for thread in new_threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    alive = [t for t in new_threads if t.is_alive()]
    if alive:
        leaks.append(
            f"{len(alive)} thread(s) still alive: "
            + ", ".join(f"{t.name!r}{' (daemon)' if t.daemon else ''}" for t in alive)
        )

    tasks = []
    runners: dict[int, threading.Thread | None] = {}
    for task in _pending_tasks():
        if task in snapshot.tasks:
            continue
        loop = task.get_loop()
        if loop.is_running():
            if id(loop) not in runners:
                runners[id(loop)] = _running_thread(loop)
            if runners[id(loop)] in snapshot.threads:
                continue  # a loop of a server that outlives this test (session fixture)
        tasks.append(task)
        with contextlib.suppress(RuntimeError):
            if loop.is_running():
                loop.call_soon_threadsafe(task.cancel)
            else:
                task.cancel()
    if tasks:
        leaks.append(
            f"{len(tasks)} pending asyncio task(s): "
            + ", ".join(_describe(task) for task in tasks[:5])
            + (" ..." if len(tasks) > 5 else "")
        )
    return leaks


def _runner_thread(thread: threading.Thread) -> bool:
    return (
        thread in _session_threads or type(thread).__module__.split(".")[0] in TEST_RUNNER_MODULES
    )


def _describe(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", None) or repr(coro)
    return f"{task.get_name()} ({name})"
