"""Refuse a target that cannot be verified, in one line, before pytest starts.

A conformance run against a wrong URL would otherwise produce hundreds of
identical connection errors; a wrong token, hundreds of 401s; a serve command
that does not start a server, hundreds of start-up failures. All are
configuration mistakes, not conformance failures, and are reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["TargetProblem", "TargetSummary", "check_serve_command", "check_target"]


class TargetProblem(Exception):
    """The target cannot be verified; the message is one line for the user."""


@dataclass(frozen=True)
class TargetSummary:
    url: str
    pools: tuple[str, ...]
    replicas: int


def check_target(url: str, token: str | None, *, timeout: float = 5.0) -> TargetSummary:
    """Health, then an authenticated ``GET /v1/pools`` decoded by the typed client."""
    from orchestrator.client import OrchClient, OrchError, OrchProtocolError, OrchUnreachable

    with OrchClient(url, token=token, timeout=timeout) as client:
        try:
            client.health()
        except OrchUnreachable as exc:
            raise TargetProblem(f"cannot reach {url}: {exc.reason}") from exc
        except OrchError as exc:
            raise TargetProblem(
                f"{url} is not an OrchQueue v1 server: GET /healthz answered {_what(exc)}"
            ) from exc
        try:
            pools = client.list_pools()
        except OrchUnreachable as exc:
            raise TargetProblem(f"cannot reach {url}: {exc.reason}") from exc
        except OrchProtocolError as exc:
            raise TargetProblem(
                f"{url} is not an OrchQueue v1 server: GET /v1/pools answered {_what(exc)}"
            ) from exc
        except OrchError as exc:
            if exc.status == 401:
                hint = "wrong token" if token else "the server needs a token (--token)"
                raise TargetProblem(f"{url} refused the credentials: {hint} (401)") from exc
            raise TargetProblem(
                f"{url} is not an OrchQueue v1 server: GET /v1/pools answered {_what(exc)}"
            ) from exc
    if not pools:
        raise TargetProblem(f"{url} has no pools: nothing to verify")
    return TargetSummary(
        url=url,
        pools=tuple(p.pool_id for p in pools),
        replicas=sum(len(p.replicas) for p in pools),
    )


def check_serve_command(template: str, *, cwd: Path, scratch: Path) -> TargetSummary:
    """Start the command once on the configuration no check chooses, as the suite will, and
    check that what answers is an OrchQueue v1 server; everything started is stopped again.
    """
    from harness.engine.control import default_pools
    from harness.managed.command import CommandError, ServeCommand
    from harness.managed.engine import EngineProcess
    from harness.managed.server import ManagedServer, ServeError

    try:
        command = ServeCommand.parse(template, option="--serve-cmd")
    except CommandError as exc:
        raise TargetProblem(str(exc)) from exc
    try:
        engine = EngineProcess(scratch / "engine.log").start()
    except RuntimeError as exc:
        raise TargetProblem(f"cannot start the harness's engine: {exc}") from exc
    try:
        server = ManagedServer(
            command, {"pools": default_pools(engine.url)}, scratch / "target", cwd=cwd
        )
        try:
            url = server.start()
        except ServeError as exc:
            lines = str(exc).splitlines()
            output = [line for line in lines[2:] if line.strip() and not line.startswith("== ")]
            tail = " | ".join(output)[-400:]
            raise TargetProblem(
                f"--serve-cmd: {lines[0]}" + (f" (log: {tail})" if tail else "")
            ) from exc
        try:
            return check_target(url, None)
        finally:
            server.kill()
    finally:
        engine.stop()


def _what(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"HTTP {status}: {first}" if status else first
