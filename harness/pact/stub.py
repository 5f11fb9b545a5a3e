"""A pact served by the Pact stub server, so a consumer can develop without orchestratord.

The server is the Pact project's own (``pact stub``, the Pact Stub Server of the
consolidated Pact CLI that the ``pact-python-cli`` package installs beside
``orchq``): it loads the pact file itself and answers each request with the
response of the interaction it matches, so what a consumer develops against is
exactly what the provider verification holds orchestratord to. Nothing here
imitates it.

Several interactions share one request (``GET /v1/tasks/{id}`` of a completed,
a failed and an evicted task). A request picks one with the header
:data:`STATE_HEADER` naming a provider state; :class:`StubServer` can also serve
only the interactions of states matching a regex (``--state``), plus those with
no state. Requests the pact does not describe get an empty 404.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sysconfig
import time
from pathlib import Path
from types import TracebackType

__all__ = ["STATE_HEADER", "StubError", "StubServer", "free_port", "stub_command"]

STATE_HEADER = "X-Pact-Provider-State"
"""Request header naming the provider state whose interaction should answer."""
_START_TIMEOUT_S = 20.0


class StubError(Exception):
    """The stub server cannot be started (one line)."""


def stub_command() -> list[str]:
    """The command that runs the Pact stub server: ``pact stub`` of ``pact-python-cli``."""
    beside = Path(sysconfig.get_path("scripts")) / "pact"
    found = str(beside) if beside.is_file() else shutil.which("pact")
    if found is None:
        raise StubError(
            "the Pact stub server is not installed: pip install 'pact-python-cli>=1!0.10.9' "
            "(it comes with orchq)"
        )
    return [found, "stub"]


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class StubServer:
    """``pact stub`` serving one pact file on a loopback port, as a context manager."""

    def __init__(
        self, pact: Path, *, port: int = 0, state: str | None = None, stateless: bool = True
    ) -> None:
        """``state``: serve only interactions of provider states matching this regex, and
        (unless ``stateless`` is false) those without a provider state."""
        self.pact = pact
        self.port = port or free_port()
        self.state = state
        self.stateless = stateless
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        command = [
            *stub_command(),
            "--file",
            str(self.pact),
            "--port",
            str(self.port),
            "--provider-state-header-name",
            STATE_HEADER,
            "--loglevel",
            "error",
        ]
        if self.state is not None:
            command += ["--provider-state", self.state]
            if self.stateless:
                command.append("--empty-provider-state")
        return command

    def start(self) -> StubServer:
        if _listening(self.port):
            raise StubError(f"port {self.port} is already in use")
        env = {**os.environ, "PACT_DO_NOT_TRACK": "true"}
        self._process = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not _listening(self.port):
            if self._process.poll() is not None:
                output = (self._process.stderr.read() if self._process.stderr else b"").decode()
                last = (output.strip().splitlines() or ["no output"])[-1]
                raise StubError(f"the Pact stub server stopped at start: {last}")
            if time.monotonic() > deadline:
                self.stop()
                raise StubError(f"the Pact stub server did not listen within {_START_TIMEOUT_S} s")
            time.sleep(0.02)
        return self

    def wait(self) -> int:
        """Block until the stub server ends; its exit status."""
        assert self._process is not None
        return self._process.wait()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
