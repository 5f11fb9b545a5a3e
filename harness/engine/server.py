"""An OpenAI-compatible completions server around one model, with fault controls and a ledger.

It speaks the dialect orchestratord's ``openai`` engine expects (see
``orchestrator/engines/openai.py``), the one llama.cpp server and vLLM share:

- ``POST /v1/completions`` with ``prompt``, ``max_tokens``, ``temperature``,
  ``top_p``, ``seed`` and ``stream``. Streaming answers are server-sent events:
  one ``data: {...}`` chunk per generated token with ``choices[0].text`` (the
  text the token adds) and ``choices[0].token_ids`` (its vocabulary id, so the
  orchestrator's token ids are the model's), then a chunk with the
  ``finish_reason`` (``length`` or ``stop``) and ``data: [DONE]``.
- ``GET /v1/models`` (the orchestrator's warm-up probe) and ``GET /health``,
  both naming the engine version (model file hash and library versions).
- When more than ``max_waiting`` requests wait for a real model, 429 with
  ``Retry-After``: the orchestrator then paces or falls back per its routing mode.

Two kinds of model sit behind the same HTTP layer: a real
:class:`~harness.engine.model.CompletionModel` (one request decoded at a time on
one dedicated thread, the sampling generator seeded per request, so concurrent
requests get the tokens they would get alone), and the
:class:`~harness.engine.mock.MockModel` (orchestratord's deterministic token
function, any number of requests at once on the event loop).

The prompt is sent to the model as is, exactly as ``/v1/completions`` does in
llama.cpp server and vLLM: no chat template is applied.

**Replicas, faults, counts.** The same endpoints also answer under
``/replicas/{replica}/``: an orchestrator configured with ``base_url:
<engine>/replicas/r1`` for one replica and ``.../replicas/r2`` for another sees
two engines, which the fault rules and the ledger tell apart
(:mod:`harness.engine.faults`). The harness drives them under ``/orchq/``:
``GET|PUT|DELETE /orchq/faults`` (the rules), ``GET|DELETE /orchq/requests``
(the ledger, ``?prompt_contains=`` to filter) and ``POST /orchq/reset`` (both
cleared). A dying engine drops the connection mid-response; a hanging one sends
nothing more and keeps the connection until the client leaves."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass, replace
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from harness.engine.completions import BadRequest, Completion, Decoder, EngineDied, decoder_for
from harness.engine.faults import FaultBook, FaultError, Faults, Ledger, RequestRecord
from harness.engine.mock import MockModel
from harness.engine.model import CompletionModel


def _error(status: int, message: str, kind: str, param: str | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    return JSONResponse(body, status_code=status)


class _DeliberateDeaths(logging.Filter):
    """Keeps uvicorn from logging a traceback for each death the fault rules asked for."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, EngineDied)


def _quiet_deliberate_deaths() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DeliberateDeaths) for f in logger.filters):
        logger.addFilter(_DeliberateDeaths())


@dataclass
class EngineState:
    """The server's fault rules and ledger (``app.state.engine``)."""

    decoder: Decoder
    faults: FaultBook
    ledger: Ledger


def create_app(
    model: CompletionModel | MockModel,
    *,
    max_waiting: int = 8,
    faults: FaultBook | None = None,
) -> Starlette:
    """The ASGI app serving ``model``, with ``faults`` as its initial fault rules."""
    service = decoder_for(model, max_waiting=max_waiting)
    state = EngineState(service, faults or FaultBook(), Ledger())
    created = int(time.time())
    _quiet_deliberate_deaths()

    async def probe_fault(request: Request) -> Response | None:
        faults = state.faults.probe(request.path_params.get("replica"))
        if faults.warmup_ms:
            await asyncio.sleep(faults.warmup_ms / 1000)
        if faults.unavailable:
            return _error(503, "the engine is unavailable", "server_error")
        return None

    async def health(request: Request) -> Response:
        refused = await probe_fault(request)
        if refused is not None:
            return refused
        return JSONResponse({"status": "ok", "model": model.model_id, "version": model.version})

    async def models(request: Request) -> Response:
        refused = await probe_fault(request)
        if refused is not None:
            return refused
        entries = [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "orchq",
                "version": model.version,
            }
            for name in service.names
        ]
        return JSONResponse({"object": "list", "data": entries})

    async def completions(request: Request) -> Response:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return _error(400, "the body is not valid JSON", "invalid_request_error")
        try:
            completion = service.parse(body)
        except BadRequest as exc:
            return _error(400, str(exc), "invalid_request_error", exc.param)
        replica = request.path_params.get("replica")
        faults = state.faults.completion(replica, completion.prompt)
        params = completion.params
        record = state.ledger.open(
            replica=replica,
            prompt=completion.prompt,
            seed=completion.requested_seed,
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            stream=completion.stream,
            faults=faults.active(),
        )
        refused = _refusal(faults, service)
        if refused is not None:
            record.status, record.state = refused.status_code, "refused"
            return refused
        if faults.nondeterministic:
            completion = replace(completion, params=replace(params, seed=secrets.randbits(63)))
        meta = {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model.model_id,
            "system_fingerprint": model.version,
        }
        if completion.stream:
            return StreamingResponse(
                _stream(service, completion, meta, faults, record),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
            )
        return StreamingResponse(
            _whole(service, completion, meta, faults, record), media_type="application/json"
        )

    async def get_faults(request: Request) -> Response:
        return JSONResponse(state.faults.to_json())

    async def put_faults(request: Request) -> Response:
        try:
            state.faults = FaultBook.parse(await request.json())
        except (ValueError, UnicodeDecodeError, FaultError) as exc:
            return _error(400, str(exc), "invalid_request_error")
        return JSONResponse(state.faults.to_json())

    async def clear_faults(request: Request) -> Response:
        state.faults = FaultBook()
        return Response(status_code=204)

    async def get_requests(request: Request) -> Response:
        records = state.ledger.records(request.query_params.get("prompt_contains"))
        return JSONResponse(state.ledger.to_json(records))

    async def clear_requests(request: Request) -> Response:
        state.ledger.clear()
        return Response(status_code=204)

    async def reset(request: Request) -> Response:
        state.faults = FaultBook()
        state.ledger.clear()
        return Response(status_code=204)

    engine_routes = [
        ("/health", health, ["GET"]),
        ("/v1/models", models, ["GET"]),
        ("/v1/completions", completions, ["POST"]),
    ]
    routes = [Route(path, endpoint, methods=methods) for path, endpoint, methods in engine_routes]
    routes += [
        Route(f"/replicas/{{replica}}{path}", endpoint, methods=methods)
        for path, endpoint, methods in engine_routes
    ]
    routes += [
        Route("/orchq/faults", get_faults, methods=["GET"]),
        Route("/orchq/faults", put_faults, methods=["PUT"]),
        Route("/orchq/faults", clear_faults, methods=["DELETE"]),
        Route("/orchq/requests", get_requests, methods=["GET"]),
        Route("/orchq/requests", clear_requests, methods=["DELETE"]),
        Route("/orchq/reset", reset, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lambda app: _lifespan(service))
    app.state.service = service
    app.state.engine = state
    return app


def _refusal(faults: Faults, service: Decoder) -> Response | None:
    """The answer to a request the engine will not serve, or None."""
    if faults.unavailable:
        return _error(503, "the engine is unavailable", "server_error")
    retry_after = faults.rate_limit_retry_after_s
    if retry_after is None and service.busy():
        retry_after = 1
    if retry_after is None:
        return None
    response = _error(429, "the engine is busy; retry later", "rate_limit_error")
    response.headers["Retry-After"] = str(retry_after)
    return response


@contextlib.asynccontextmanager
async def _lifespan(service: Decoder) -> AsyncIterator[None]:
    yield
    service.close()


def _finish(count: int, max_tokens: int) -> str:
    return "length" if count >= max_tokens else "stop"


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


async def _tokens(
    service: Decoder, completion: Completion, faults: Faults, record: RequestRecord
) -> AsyncIterator[tuple[int | None, str]]:
    """The model's tokens with the request's faults applied, counted on ``record``."""
    delay_s = faults.token_delay_ms / 1000
    async with service.turn():
        async for token_id, piece in service.decode(completion):
            if token_id is None:
                yield None, piece
                continue
            count = record.generated
            if faults.stop_after_tokens is not None and count >= faults.stop_after_tokens:
                return
            if faults.hang_after_tokens is not None and count >= faults.hang_after_tokens:
                record.state = "hanging"
                await asyncio.Event().wait()  # until the client leaves (cancellation)
            if faults.die_after_tokens is not None and count >= faults.die_after_tokens:
                record.state = "died"
                raise EngineDied(f"the engine died after {count} tokens (fault rule)")
            if delay_s:
                await asyncio.sleep(delay_s)
            record.generated += 1
            yield token_id, piece


@contextlib.contextmanager
def _ending(record: RequestRecord) -> Generator[None, None, None]:
    """Whatever ends the response, the record says how."""
    try:
        yield
    finally:
        if record.state in ("running", "hanging"):
            record.state = "disconnected"


async def _stream(
    service: Decoder,
    completion: Completion,
    meta: dict[str, Any],
    faults: Faults,
    record: RequestRecord,
) -> AsyncIterator[bytes]:
    rest = ""
    with _ending(record):
        try:
            async for token_id, piece in _tokens(service, completion, faults, record):
                if token_id is None:
                    rest = piece
                    continue
                choice = {"index": 0, "text": piece, "token_ids": [token_id]}
                choice |= {"logprobs": None, "finish_reason": None}
                yield _sse({**meta, "choices": [choice]})
        except EngineDied:
            raise
        except Exception as exc:  # the model failed mid-stream: say so in band, like vLLM
            record.state = "died"
            error = {"message": f"{type(exc).__name__}: {exc}", "type": "server_error"}
            yield _sse({"error": error})
            return
        finish = _finish(record.generated, completion.params.max_tokens)
        final = {"index": 0, "text": rest, "logprobs": None, "finish_reason": finish}
        yield _sse({**meta, "choices": [final]})
        yield _sse("[DONE]")
        record.state, record.finish_reason = "completed", finish


async def _whole(
    service: Decoder,
    completion: Completion,
    meta: dict[str, Any],
    faults: Faults,
    record: RequestRecord,
) -> AsyncIterator[bytes]:
    ids: list[int] = []
    pieces: list[str] = []
    with _ending(record):
        try:
            async for token_id, piece in _tokens(service, completion, faults, record):
                if token_id is not None:
                    ids.append(token_id)
                pieces.append(piece)
        except EngineDied:
            yield b'{"id": "' + meta["id"].encode()  # a body cut off by the death
            raise
        finish = _finish(len(ids), completion.params.max_tokens)
        choice = {
            "index": 0,
            "text": "".join(pieces),
            "token_ids": ids,
            "logprobs": None,
            "finish_reason": finish,
        }
        usage = {
            "prompt_tokens": len(completion.prompt_ids),
            "completion_tokens": len(ids),
            "total_tokens": len(completion.prompt_ids) + len(ids),
        }
        yield json.dumps({**meta, "choices": [choice], "usage": usage}).encode()
        record.state, record.finish_reason = "completed", finish


def _uvicorn_config(app: Starlette, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )


def _bound_port(server: uvicorn.Server) -> int:
    for listener in server.servers:
        for sock in listener.sockets:
            return int(sock.getsockname()[1])
    raise RuntimeError("engine server is not listening")


async def serve(
    app: Starlette,
    *,
    host: str = "127.0.0.1",
    port: int = 8081,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve ``app`` until SIGINT/SIGTERM; ``on_ready`` receives the base URL once bound."""
    server = uvicorn.Server(_uvicorn_config(app, host, port))
    serving = asyncio.create_task(server.serve())
    while not server.started and not serving.done():  # noqa: ASYNC110 (uvicorn has no startup event)
        await asyncio.sleep(0.01)
    if server.started and on_ready is not None:
        on_ready(f"http://{host}:{_bound_port(server)}")
    await serving
    if not server.started:
        raise RuntimeError("the engine server failed to start (see the log above)")


class EngineThread:
    """The server on ``127.0.0.1:<ephemeral>`` in a daemon thread (tests, benchmarks)."""

    def __init__(
        self,
        model: CompletionModel | MockModel,
        *,
        max_waiting: int = 8,
        faults: FaultBook | None = None,
    ) -> None:
        self.app = create_app(model, max_waiting=max_waiting, faults=faults)
        self._server = uvicorn.Server(_uvicorn_config(self.app, "127.0.0.1", 0))
        self._thread = threading.Thread(target=self._run, name="orchq-engine-http", daemon=True)
        self._error: BaseException | None = None
        self.url = ""

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc

    def start(self, timeout: float = 15.0) -> EngineThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the engine server did not start: {self._error!r}")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{_bound_port(self._server)}"
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)

    def __enter__(self) -> EngineThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
