"""Blame the requirement, not the symptom: each assertion of a check names the ID it checks.

A conformance test often cites several requirements. When one of its
assertions fails, only the requirement that assertion checks is broken; the
others the test cites are not (and those whose checks had already passed are
verified by it). Three ways to say which requirement an assertion checks:

- ``with orch_check("ORCH-0083"):`` around the lines that check it: any failure
  inside (an assertion, a timeout, a client error) is blamed on ORCH-0083;
- :func:`expect` ``(ok, "ORCH-0083: ...")``: an assertion whose message starts
  with the IDs it checks (``ORCH-0053/ORCH-0056: ...``);
- :class:`RequirementFailure` raised directly, with its IDs.

A failure raised by a helper that waits for something (``Wire.wait_task``) names
what it waited for, but only as a *default*: inside ``orch_check(ID)`` the
check's ID wins, so a session delete that leaves a task running is blamed on
the requirement that says the task must end, not on "every task ends".

``orch_checks()`` groups soft checks: each failing block is recorded and the
test goes on; at the end of the group one :class:`RequirementFailure` reports
them all, blamed on each of their IDs.

An exception nobody blamed is still read (:func:`failure_blame`): an
assertion whose message starts with IDs (``assert ok, "ORCH-0135: ..."``) is
blamed on them, and a suite can register an *explainer* (:func:`register_explainer`)
that knows which requirement an exception of its client breaks (a response that
does not match the schema of its operation).

The pytest plugin (:mod:`harness.plugin.trace`) reads the blame off the
exception that failed a test and the checks that passed before it, so only the
blamed requirements become ``failing`` in the trace. Standard library only:
every check module may import this one.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

__all__ = [
    "CheckRecord",
    "RequirementFailure",
    "SoftChecks",
    "blame",
    "blamed",
    "current_record",
    "expect",
    "failure_blame",
    "leading_ids",
    "named_ids",
    "note_passed",
    "orch_check",
    "orch_checks",
    "recording",
    "register_explainer",
]

_BLAME = "orchq_blame"
"""Attribute of an exception: the requirement IDs it is blamed on."""
_DEFAULT = "orchq_blame_is_default"
"""Attribute of an exception: its blame may be overridden by an enclosing check."""

ID_PATTERN = r"[A-Z][A-Z0-9]{0,15}-(?:[0-9]{4,})"
_LEADING = re.compile(rf"\s*((?:{ID_PATTERN})(?:\s*/\s*{ID_PATTERN})*)\s*:")
_ID = re.compile(ID_PATTERN)


def leading_ids(message: str) -> tuple[str, ...]:
    """The requirement IDs a message starts with (``ORCH-0053/ORCH-0056: ...``), or ()."""
    match = _LEADING.match(message)
    return tuple(_ID.findall(match.group(1))) if match else ()


def named_ids(message: str) -> tuple[str, ...]:
    """The IDs each line of a message starts with (one failure per line), in order, once."""
    return tuple(dict.fromkeys(i for line in message.splitlines() for i in leading_ids(line)))


class RequirementFailure(AssertionError):
    """An assertion that failed, blamed on the requirements it checks."""

    def __init__(self, message: str, requirements: Iterable[str], *, default: bool = False):
        super().__init__(message)
        blame(self, requirements, default=default)

    @property
    def requirements(self) -> tuple[str, ...]:
        return blamed(self) or ()


def blame(exc: BaseException, requirements: Iterable[str], *, default: bool = False) -> None:
    """Blame ``exc`` on ``requirements``, unless it is already blamed by a check (not by default).

    ``default``: the blame of a helper that only knows what it waited for; an enclosing
    :func:`orch_check` replaces it.
    """
    ids = tuple(dict.fromkeys(requirements))
    if not ids:
        return
    current = blamed(exc)
    if current is not None and not getattr(exc, _DEFAULT, False):
        return
    setattr(exc, _BLAME, ids)
    setattr(exc, _DEFAULT, default)


def blamed(exc: BaseException) -> tuple[str, ...] | None:
    """The requirement IDs ``exc`` is blamed on, or ``None`` when nothing names one."""
    ids = getattr(exc, _BLAME, None)
    return tuple(ids) if ids else None


@dataclass
class CheckRecord:
    """What one test's checks did: the IDs whose checks passed, in order."""

    passed: list[str] = field(default_factory=list)

    def note_passed(self, ids: Iterable[str]) -> None:
        for req_id in ids:
            if req_id not in self.passed:
                self.passed.append(req_id)


_record: CheckRecord | None = None


def current_record() -> CheckRecord | None:
    """The record of the test running now (set by the pytest plugin), or ``None``."""
    return _record


@contextlib.contextmanager
def recording() -> Iterator[CheckRecord]:
    """Record the checks of one test (the plugin wraps each test's call in this)."""
    global _record
    previous, _record = _record, CheckRecord()
    try:
        yield _record
    finally:
        _record = previous


def note_passed(ids: Iterable[str]) -> None:
    """Record that checks of ``ids`` passed in the running test (a check that has no
    ``expect`` of its own, e.g. every case a fuzzer validated)."""
    record = _record
    if record is not None:
        record.note_passed(ids)


_passed = note_passed

Explainer = Callable[[BaseException], "tuple[str, ...] | None"]
_explainers: list[Explainer] = []


def register_explainer(explainer: Explainer) -> None:
    """Add a function naming the requirements an exception breaks (or None); once each."""
    if explainer not in _explainers:
        _explainers.append(explainer)


def failure_blame(
    exc: BaseException, assertions: tuple[type[BaseException], ...] = (AssertionError,)
) -> tuple[str, ...] | None:
    """The requirements a test's failure ``exc`` is blamed on, or None (the whole test).

    An explicit blame first; then the registered explainers; then, for an assertion
    (``assertions``), the IDs its message starts with.
    """
    ids = blamed(exc)
    if ids is not None:
        return ids
    for explainer in _explainers:
        ids = explainer(exc)
        if ids:
            return tuple(ids)
    if isinstance(exc, assertions):
        return named_ids(str(exc)) or None
    return None


@contextlib.contextmanager
def orch_check(*ids: str) -> Iterator[None]:
    """Blame any failure inside the block on ``ids``; a block that completes has checked them.

    The failure keeps its type and message; a note names the requirement it is blamed on.
    """
    if not ids:
        raise ValueError("orch_check needs at least one requirement ID")
    try:
        yield
    except Exception as exc:
        before = blamed(exc)
        blame(exc, ids)
        after = blamed(exc)
        if after != before and after == tuple(dict.fromkeys(ids)):
            exc.add_note(f"[orchq] blamed on {', '.join(after)}: it failed while checking it")
        raise
    _passed(ids)


def expect(ok: object, message: str, *ids: str) -> None:
    """``assert`` that survives ``python -O`` and names the requirement it checks.

    The requirement IDs are ``ids``, or else those the message's lines start with
    (``"ORCH-0083: ..."``, one failure per line); a message naming none raises a plain
    ``AssertionError``.
    """
    requirements = ids or named_ids(message)
    if not ok:
        if requirements:
            raise RequirementFailure(message, requirements)
        raise AssertionError(message)
    if requirements:
        _passed(requirements)


class SoftChecks:
    """Checks that each record their failure and let the test go on (see :func:`orch_checks`)."""

    def __init__(self) -> None:
        self.failures: list[tuple[tuple[str, ...], BaseException]] = []

    @contextlib.contextmanager
    def __call__(self, *ids: str) -> Iterator[None]:
        """Like :func:`orch_check`, but a failure is kept for the end of the group."""
        try:
            with orch_check(*ids):
                yield
        except Exception as exc:
            self.failures.append((blamed(exc) or ids, exc))

    def raise_failures(self) -> None:
        """One :class:`RequirementFailure` for every failed check, blamed on all their IDs."""
        if not self.failures:
            return
        lines = [f"{len(self.failures)} check(s) failed:"]
        ids: list[str] = []
        for requirements, exc in self.failures:
            ids.extend(requirements)
            text = str(exc).strip() or type(exc).__name__
            named = leading_ids(text)
            lines.append(f"- {text}" if named else f"- {', '.join(requirements)}: {text}")
        raise RequirementFailure("\n".join(lines), ids) from self.failures[0][1]


@contextlib.contextmanager
def orch_checks() -> Iterator[SoftChecks]:
    """A group of soft checks: ``with orch_checks() as check: with check("ORCH-0140"): ...``.

    Every failing check is recorded and the next one still runs; leaving the group raises
    one failure blamed on every failed check's requirements. A failure outside the
    checks ends the group at once, as usual.
    """
    checks = SoftChecks()
    yield checks
    checks.raise_failures()
