"""Read the ``$`` commands of the user guide (``docs/*.md``) and run them like a reader would.

A page's ```` ```console ```` blocks hold ``$ command`` lines; the lines under a
command, up to the next command or the end of the block, are what it prints (``...``
stands for text that varies, a line of only ``...`` for any number of lines), and a
line ``[exit N]`` is its exit code (0 when absent). A ``$`` line anywhere else is an
error, so a command cannot hide from the test in a ``bash`` block.

Commands run in order, in one workspace per page (a copy of the repository, with
``PYTHONPATH`` pointing at it so ``orchq`` and the pytest plugin are the copy's and
nothing writes into the real checkout), through ``bash -c`` with the virtualenv's
``bin`` first on ``PATH``. A command ending in `` &`` is a server the page starts in
the background (``orchq serve``, ``orchq engine serve`` or ``orchq pact stub``): the
runner starts it, waits for the line naming its URL, and fills the page's placeholder
(``$ORCHQ_URL``, ``$ORCHQ_ENGINE_URL`` or ``$ORCHQ_STUB_URL``) into the commands that
follow, exactly as the page tells the reader to do. Placeholders are substituted as
text, never exported: pytest reads ``ORCHQ_URL`` from the environment as
``--orch-url``, which would change what the other commands test.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

__all__ = [
    "BACKGROUND",
    "RUN_FROM_THE_WHEEL",
    "Command",
    "DocError",
    "PageRun",
    "commands_of",
    "make_workspace",
    "matches_output",
    "parse_page",
    "yaml_command_pattern",
]

FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
EXIT_LINE = re.compile(r"^\[exit (\d+)\]$")
URL = re.compile(r"http://127\.0\.0\.1:\d+")
BACKGROUND: dict[str, str] = {
    "orchq engine serve": "ORCHQ_ENGINE_URL",
    "orchq serve": "ORCHQ_URL",
    "orchq pact stub": "ORCHQ_STUB_URL",
}
"""Background commands the runner knows, and the placeholder each one's URL fills."""
RUN_FROM_THE_WHEEL: dict[tuple[str, str], str] = {
    ("docs/README.md", "orchq verify -n 2"): (
        "tests/packaging/test_wheel.py::test_orchq_verify_passes_in_an_empty_folder"
    ),
}
"""(page, command) -> the test that runs it from the built wheel, in an empty folder, and
checks the output the page shows: a second full ``orchq verify`` from the checkout would
prove nothing more and costs two minutes of CI."""
PLACEHOLDER = re.compile(r"\$(ORCHQ_URL|ORCHQ_ENGINE_URL|ORCHQ_STUB_URL)\b")
IGNORED_COPY = {
    ".git",
    ".schemathesis",
    ".venv",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    "__pycache__",
    "orchq-report",
    "build",
    "dist",
}
COMMAND_TIMEOUT_S = 900.0
SERVER_START_TIMEOUT_S = 60.0
ENGINE_START_TIMEOUT_S = 300.0
"""A cold model load converts the GGUF file first (30-40 s here, more on a busy machine)."""


class DocError(AssertionError):
    """A page or one of its commands does not do what the page says."""


@dataclass(frozen=True)
class Command:
    """One ``$`` line of a page, with what the page says it prints and exits with."""

    page: str
    line: int
    text: str
    expected_exit: int = 0
    output: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def background(self) -> bool:
        return self.text.endswith(" &")


def parse_page(text: str, page: str) -> list[Command]:
    """Every ``$`` command of a Markdown page, in order; raises :class:`DocError` on misuse."""
    commands: list[Command] = []
    fence: str | None = None
    console = False
    current: dict[str, object] | None = None

    def flush() -> None:
        nonlocal current
        if current is not None:
            commands.append(Command(**current))  # type: ignore[arg-type]
            current = None

    for number, raw in enumerate(text.splitlines(), start=1):
        opened = FENCE.match(raw)
        if fence is None:
            if opened:
                fence, console = opened.group(2), opened.group(3) == "console"
            elif raw.lstrip().startswith("$ "):
                raise DocError(f"{page}:{number}: a `$` line outside a code block: {raw.strip()}")
            continue
        if opened and not opened.group(3) and _closes(opened.group(2), fence):
            flush()
            fence = None
            continue
        line = raw.rstrip()
        if line.startswith("$ "):
            if not console:
                raise DocError(
                    f"{page}:{number}: a `$` line in a non-console block (write commands in "
                    f"```console blocks so the docs test runs them): {line}"
                )
            if line.endswith("\\"):
                raise DocError(f"{page}:{number}: line continuations are not supported: {line}")
            flush()
            current = {"page": page, "line": number, "text": line[2:].strip(), "output": ()}
            continue
        if not console:
            continue
        if current is None:
            if line.strip():
                raise DocError(f"{page}:{number}: output before any `$` command: {line}")
            continue
        exit_line = EXIT_LINE.match(line.strip())
        if exit_line:
            current["expected_exit"] = int(exit_line.group(1))
        elif line.strip():
            current["output"] = (*current["output"], line.strip())  # type: ignore[misc]
    if fence is not None:
        raise DocError(f"{page}: unclosed code block")
    flush()
    return commands


def _closes(marker: str, fence: str) -> bool:
    """A closing fence: the opening fence's character, at least as many of them."""
    return marker[0] == fence[0] and len(marker) >= len(fence)


def commands_of(docs: Path) -> dict[str, list[Command]]:
    """``docs/<page>.md`` (repo-relative POSIX name) -> its commands, pages sorted by name."""
    root = docs.parent
    return {
        path.relative_to(root).as_posix(): parse_page(
            path.read_text(encoding="utf-8"), path.relative_to(root).as_posix()
        )
        for path in sorted(docs.glob("*.md"))
    }


def _squash(text: str) -> str:
    return " ".join(text.split())


def matches_output(expected: tuple[str, ...], output: str) -> str | None:
    """``None`` when every expected line appears, in order, in ``output``; else the first miss.

    Each expected line must occur within one output line (whitespace runs collapsed);
    ``...`` inside a line matches any text, a line that is only ``...`` is skipped.
    """
    lines = [_squash(line) for line in output.splitlines()]
    position = 0
    for wanted in expected:
        if wanted == "...":
            continue
        parts = re.split(r"\s*\.\.\.\s*", _squash(wanted))
        pattern = re.compile(".*".join(re.escape(part) for part in parts))
        for index in range(position, len(lines)):
            if pattern.search(lines[index]):
                position = index + 1
                break
        else:
            return wanted
    return None


def yaml_command_pattern(command: str) -> re.Pattern[str]:
    """A workflow's command as a pattern: ``${{ expr }}`` and ``$var`` match any word part."""
    parts = re.split(r"(\$\{\{.*?\}\}|\$\{?\w+\}?)", _squash(command))
    body = "".join(r"\S+" if i % 2 else re.escape(part) for i, part in enumerate(parts))
    return re.compile(f"^{body}$")


def make_workspace(source: Path, destination: Path) -> Path:
    """Copy the repository's files (not its caches, virtualenv or git data) to ``destination``."""

    def ignore(_directory: str, names: list[str]) -> set[str]:
        return {
            n
            for n in names
            if n in IGNORED_COPY or n.endswith((".egg-info", ".pyc", ".db", ".db-wal", ".db-shm"))
        }

    shutil.copytree(source, destination, ignore=ignore, symlinks=True)
    return destination


def command_env(workspace: Path, *, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a reader's shell: the virtualenv active, the workspace's code first.

    orchq's own variables (``ORCHQ_URL``, ``ORCHQ_TOKEN``, ``ORCHQ_REAL_ENGINE``, ...)
    and pytest's/xdist's of the *outer* run are removed: a page states what it sets.
    ``ORCHQ_ENGINE_CACHE`` is kept (where converted model weights are cached).
    """
    env = dict(os.environ if base is None else base)
    for name in list(env):
        if (
            (name.startswith("ORCHQ_") and name != "ORCHQ_ENGINE_CACHE")
            or name.startswith(("PYTEST_", "COV_"))
            or name in {"PYTHONPATH", "VIRTUAL_ENV"}
        ):
            del env[name]
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(Path(bindir).parent)
    env["PYTHONPATH"] = str(workspace)
    env["COLUMNS"] = "200"
    env["PACT_DO_NOT_TRACK"] = "true"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@dataclass
class _Background:
    command: Command
    process: subprocess.Popen[str]
    log: IO[str]
    log_path: Path


@dataclass
class PageRun:
    """Runs one page's commands in order in ``workspace``; :meth:`close` stops its servers."""

    workspace: Path
    env: dict[str, str]
    extra_env: dict[str, str] = field(default_factory=dict)
    placeholders: dict[str, str] = field(default_factory=dict)
    servers: list[_Background] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)

    def substitute(self, command: Command) -> str:
        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.placeholders:
                raise DocError(
                    f"{command.where}: ${name} is used before a background server printed it: "
                    f"{command.text}"
                )
            return self.placeholders[name]

        return PLACEHOLDER.sub(fill, command.text)

    def run(self, command: Command) -> str:
        """Run ``command`` as the page says; return its output, raise :class:`DocError` if off."""
        if command.background:
            return self._start(command)
        text = self.substitute(command)
        try:
            done = subprocess.run(
                ["bash", "-c", text],
                cwd=self.workspace,
                env={**self.env, **self.extra_env},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=COMMAND_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise DocError(
                f"{command.where}: `{text}` ran longer than {exc.timeout:.0f} s"
            ) from exc
        output = done.stdout
        self.transcript.append(f"$ {text}\n{output}[exit {done.returncode}]")
        if done.returncode != command.expected_exit:
            raise DocError(
                f"{command.where}: `{text}` exited {done.returncode}, the page says "
                f"{command.expected_exit}; its output:\n{_tail(output)}"
            )
        _expect_output(command, text, output)
        return output

    def _start(self, command: Command) -> str:
        text = self.substitute(command)[: -len(" &")].strip()
        kind = next((k for k in BACKGROUND if text.startswith(k + " ")), None)
        if kind is None:
            raise DocError(
                f"{command.where}: the docs test does not know how to run `{text}` in the "
                f"background (known: {', '.join(BACKGROUND)})"
            )
        index = len(self.servers)
        log_path = self.workspace / f".docs-server-{index}.log"
        log = log_path.open("w", encoding="utf-8")
        process = subprocess.Popen(
            ["bash", "-c", f"exec {text}"],
            cwd=self.workspace,
            env={**self.env, **self.extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.servers.append(_Background(command, process, log, log_path))
        timeout = ENGINE_START_TIMEOUT_S if kind == "orchq engine serve" else SERVER_START_TIMEOUT_S
        deadline = time.monotonic() + timeout
        while True:
            output = log_path.read_text(encoding="utf-8")
            found = URL.search(output)
            if found:
                break
            if process.poll() is not None:
                raise DocError(
                    f"{command.where}: `{text}` exited {process.returncode} before printing "
                    f"its URL:\n{_tail(output)}"
                )
            if time.monotonic() > deadline:
                raise DocError(f"{command.where}: `{text}` printed no URL within {timeout:.0f} s")
            time.sleep(0.1)
        self.placeholders[BACKGROUND[kind]] = found.group(0)
        self.transcript.append(f"$ {text} &\n{output}")
        _expect_output(command, text, output)
        return output

    def close(self) -> None:
        """Stop the page's background servers (each one's own process group, by its id)."""
        for server in reversed(self.servers):
            process = server.process
            if process.poll() is None:
                with _suppress_lookup():
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    with _suppress_lookup():
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=15)
            server.log.close()
        self.servers.clear()


class _suppress_lookup:
    """``ProcessLookupError`` means the server is already gone: nothing to stop."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, ProcessLookupError)


def _tail(output: str, lines: int = 60) -> str:
    kept = output.splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in kept)


def iter_workflow_commands(workflow: Mapping[str, object]) -> Iterator[tuple[str, str]]:
    """``(job, command line)`` for every ``orchq``/``pytest`` line in a workflow's ``run`` steps."""
    jobs = workflow.get("jobs")
    if not isinstance(jobs, Mapping):
        raise DocError("the workflow has no jobs")
    for job_name, job in jobs.items():
        steps = job.get("steps", []) if isinstance(job, Mapping) else []
        for step in steps:
            run = step.get("run") if isinstance(step, Mapping) else None
            if not isinstance(run, str):
                continue
            for line in run.splitlines():
                line = line.strip()
                if line.startswith(("orchq ", "pytest ")):
                    yield str(job_name), line


def _expect_output(command: Command, text: str, output: str) -> None:
    """Raise unless ``output`` holds every line the page shows for ``command``."""
    missing = matches_output(command.output, output)
    if missing is not None:
        raise DocError(
            f"{command.where}: `{text}` did not print the line the page shows:\n"
            f"  {missing}\nits output:\n{_tail(output)}"
        )
