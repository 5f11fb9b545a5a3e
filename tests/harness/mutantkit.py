"""Building blocks for deliberately broken orchestrators, and a runner to show checks catch them.

A mutant is an ASGI layer (``orch_serve(wrap_app=...)``) around the real
orchestratord that breaks exactly one requirement on the wire. The areas'
mutant modules (``tests/harness/<area>/*mutants.py``) describe *what* they
break with the few generic rewrites here, so the ASGI plumbing (buffering a
body, fixing ``content-length``, passing lifespan and other requests through)
exists once:

- :func:`rewrite_headers`: change the headers of a response as it starts;
- :func:`rewrite_response`: buffer a whole response and replace status and body;
- :func:`rewrite_chunks`: rewrite each body chunk of a streamed response as it goes;
- :func:`respond`: answer a request without the app.

:func:`run_conformance` runs a packaged conformance module against a target
the way a user would (``--pyargs harness.conformance.<module> --orch-url URL``)
and :func:`assert_caught` asserts it failed naming the broken ORCH ID. Checks
that configure their own server (``orch_serve``) skip against a URL; for them
:func:`mutate_every_server` makes every orchestratord an in-process inner run
starts the mutant: an ASGI layer, an engine wrapper (what the replicas do with
their engines) or a configuration change.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import pytest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]
Wrap = Callable[[App], App]
Headers = list[tuple[bytes, bytes]]
Applies = Callable[[Scope], bool]
EngineWrap = Callable[[Any], Any]
"""``wrap(engine) -> engine``: a replica's engine as a broken orchestrator would drive it."""
ConfigChange = Callable[[Any], Any]
"""``change(config) -> config``: the configuration a broken orchestrator would really run."""

INDEX = Path(__file__).resolve().parents[2] / "requirements" / "index.yaml"
"""The project's requirement index, passed to inner runs as ``--orch-index``."""


def every_request(scope: Scope) -> bool:
    return True


def matching(method: str | None = None, path: str = ".*") -> Applies:
    """Requests with this method (any when None) whose path fully matches the regex ``path``."""
    pattern = re.compile(path)

    def applies(scope: Scope) -> bool:
        return (method is None or scope["method"] == method) and bool(
            pattern.fullmatch(scope["path"])
        )

    return applies


def request_header(scope: Scope, name: bytes) -> bytes:
    """The value of a request header (``name`` in lower case), empty when absent."""
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value)
    return b""


def without(headers: Headers, *names: bytes) -> Headers:
    """``headers`` minus those named (lower case)."""
    return [(k, v) for k, v in headers if k.lower() not in names]


def _with_length(headers: Headers, body: bytes) -> Headers:
    return [*without(headers, b"content-length"), (b"content-length", str(len(body)).encode())]


async def respond(send: Send, status: int, headers: Headers, body: bytes) -> None:
    """A complete response (with its ``content-length``) that the app never saw."""
    await send(
        {"type": "http.response.start", "status": status, "headers": _with_length(headers, body)}
    )
    await send({"type": "http.response.body", "body": body})


def rewrite_headers(
    app: App, change: Callable[[int, Headers], Headers], applies: Applies = every_request
) -> App:
    """``change(status, headers)`` gives the headers of every selected HTTP response."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not applies(scope):
            await app(scope, receive, send)
            return

        async def rewrite(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = change(message["status"], list(message.get("headers", [])))
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, rewrite)

    return mutant


def rewrite_response(
    app: App,
    change: Callable[[int, bytes], tuple[int, bytes]],
    applies: Applies = every_request,
    statuses: frozenset[int] | None = None,
) -> App:
    """Buffer each selected response and send ``change(status, body)`` instead.

    ``statuses`` limits the buffering to responses starting with one of them;
    others (event streams among them) pass through as they are produced.
    ``content-length`` is fixed up; other headers stay as the app sent them.
    """

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not applies(scope):
            await app(scope, receive, send)
            return
        start: Message = {}
        chunks: list[bytes] = []
        passthrough = False

        async def capture(message: Message) -> None:
            nonlocal passthrough
            if message["type"] == "http.response.start":
                passthrough = statuses is not None and message["status"] not in statuses
                if passthrough:
                    await send(message)
                else:
                    start.update(message)
                return
            if passthrough or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            status, body = change(start["status"], b"".join(chunks))
            headers = _with_length(list(start.get("headers", [])), body)
            await send({**start, "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await app(scope, receive, capture)

    return mutant


def rewrite_chunks(app: App, change: Callable[[bytes], bytes], applies: Applies) -> App:
    """``change(chunk)`` replaces each body chunk of the selected (streamed) responses."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not applies(scope):
            await app(scope, receive, send)
            return

        async def rewrite(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": change(message.get("body", b""))}
            await send(message)

        await app(scope, receive, rewrite)

    return mutant


def run_conformance(
    pytester: pytest.Pytester,
    module: str,
    *args: str,
    url: str | None = None,
    subprocess: bool = False,
) -> pytest.RunResult:
    """Run ``harness.conformance.<module>`` (against ``url`` when given) with the project's index.

    In-process by default: a subprocess costs seconds of imports per run; the
    pact verifier's FFI state is the reason to ask for one.
    """
    pytester.makeini("[pytest]\n")
    target = ["--orch-url", url] if url is not None else []
    argv = ["--pyargs", f"harness.conformance.{module}", *target, "--orch-index", str(INDEX),
            "-p", "no:cacheprovider", *args]  # fmt: skip
    if subprocess:
        return pytester.runpytest_subprocess(*argv)
    return pytester.runpytest_inprocess(*argv)


def assert_caught(
    result: pytest.RunResult, req: str, name: str, *, failed: int | None = None
) -> None:
    """The run failed (exactly ``failed`` tests when given, else at least one), naming ``req``."""
    outcomes = result.parseoutcomes()
    count = outcomes.get("failed", 0)
    caught = count == failed if failed is not None else count >= 1
    assert caught, f"{req}: mutant {name!r} was not caught: {outcomes}"
    result.stdout.fnmatch_lines([f"*{req}: *"])


def mutate_every_server(
    monkeypatch: pytest.MonkeyPatch,
    *,
    wrap_app: Wrap | None = None,
    wrap_engine: EngineWrap | None = None,
    change_config: ConfigChange | None = None,
    token_wrap: Callable[[str], Wrap] | None = None,
) -> None:
    """Every orchestratord started from now on (an inner run's ``orch_serve``) is the mutant.

    ``token_wrap(token)`` is the ASGI layer of a server configured with a token (a mutant
    of the bearer check needs to know it); servers without one are left alone by it.
    """
    import orchestrator.server
    from orchestrator.engines import build_engine

    original = orchestrator.server.ServerThread

    class MutantServer(original):  # type: ignore[misc, valid-type]
        def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
            if wrap_app is not None:
                kwargs["wrap_app"] = wrap_app
            if token_wrap is not None and config.auth_token:
                kwargs["wrap_app"] = token_wrap(config.auth_token)
            if wrap_engine is not None:
                build = kwargs.get("engine_factory", build_engine)
                kwargs["engine_factory"] = lambda replica: wrap_engine(build(replica))
            if change_config is not None:
                config = change_config(config)
            super().__init__(config, *args, **kwargs)

    monkeypatch.setattr(orchestrator.server, "ServerThread", MutantServer)
