"""The ``openai`` engine: a replica backed by an OpenAI-compatible completions server.

It speaks the streaming ``POST /v1/completions`` dialect shared by llama.cpp
server and vLLM and maps that edge onto the engine error contract:

- HTTP 429 -> :class:`EngineRateLimited` with the server's ``Retry-After``;
- no connection, a transport failure before the response headers, or any
  other non-2xx answer -> :class:`EngineUnavailable` (nothing was generated);
- a stream that breaks once the 2xx response started (dropped connection,
  protocol error, an ``error`` object or garbage inside the stream, an end
  without ``[DONE]`` or a finish reason) -> :class:`EngineReset`.

Decode timeouts belong to the runtime, which cancels the generator; the HTTP
read timeout is therefore only the (long) ``request_timeout_ms`` backstop, and
cancellation is never caught here so the response is always closed.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any, cast

import httpx

from orchestrator.engines.base import (
    EngineRateLimited,
    EngineReset,
    EngineUnavailable,
    GenerationRequest,
    Token,
)

ENGINE_NAME = "openai"

WARMUP_TIMEOUT_S = 5.0
"""Warm-up probes fail fast: a replica that cannot answer a model list soon is not ready."""

_ERROR_EXCERPT_BYTES = 512
"""How much of an error body goes into an exception message (bodies can be large or endless)."""


def normalise_base_url(base_url: str) -> str:
    """The server root without a trailing ``/`` or ``/v1``, so ``/v1/...`` is appended once.

    Operators paste either form (``http://h:8080`` or ``http://h:8080/v1/``, the
    latter being what OpenAI client libraries expect).
    """
    root = base_url.strip().rstrip("/")
    if root.endswith("/v1"):
        root = root[: -len("/v1")].rstrip("/")
    return root


def parse_retry_after(value: str | None, *, now: float | None = None) -> float:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date).

    A missing, negative or unparseable value means "no advice" (0.0) rather
    than an error: the 429 itself is the signal, the delay is only a hint.
    """
    if value is None:
        return 0.0
    text = value.strip()
    if not text:
        return 0.0
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds > 0 else 0.0
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return 0.0
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive result means "-0000"
        return 0.0
    delta = when.timestamp() - (time.time() if now is None else now)
    return delta if delta > 0 else 0.0


def text_token_id(text: str) -> int:
    """A stable 31-bit id for a token's text, for servers that send no token ids.

    BLAKE2b (not ``hash()``, which is salted per process) keeps the id equal
    across processes and replicas, so determinism checks can compare it; it
    is not the model's vocabulary id, only a fingerprint of the text.
    """
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF


def _first_int(value: Any) -> int | None:
    if isinstance(value, list) and value:
        first = value[0]
        if isinstance(first, int) and not isinstance(first, bool) and first >= 0:
            return first
    return None


def _is_unicode(text: str) -> bool:
    """False for text holding an unpaired surrogate, which ``json.loads`` makes of ``"\\ud800"``.

    Such text cannot be stored in SQLite or sent as UTF-8: an engine that sends
    it is faulty, like one that sends malformed JSON.
    """
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _error_message(error: Any) -> str:
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        message: str = error["message"]
    elif isinstance(error, str):
        message = error
    else:
        return json.dumps(error)[:200]
    return message[:200] if _is_unicode(message) else ascii(message)[1:-1][:200]


class OpenAIEngine:
    """One replica served by an OpenAI-compatible ``/v1/completions`` endpoint."""

    def __init__(
        self,
        replica_id: str,
        base_url: str,
        model: str,
        api_key: str | None = None,
        request_timeout_ms: int = 30_000,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._replica_id = replica_id
        self._model = model
        self._api_key = api_key
        self._timeout_s = request_timeout_ms / 1000.0
        self._transport = transport
        root = normalise_base_url(base_url)
        self.completions_url = f"{root}/v1/completions"
        self.models_url = f"{root}/v1/models"
        self.health_url = f"{root}/health"
        self._client: httpx.AsyncClient | None = None
        self._closed = False

    @property
    def name(self) -> str:
        return ENGINE_NAME

    @property
    def version(self) -> str:
        # Stable for the engine's lifetime: a version that changed mid-run
        # (e.g. from a streamed system_fingerprint) would split one replica's
        # tasks into two provenance groups.
        return f"{ENGINE_NAME}:{self._model}"

    def _http(self) -> httpx.AsyncClient:
        """The engine's one client, created on first use so an idle engine holds no sockets."""
        if self._closed:
            raise EngineUnavailable(f"replica {self._replica_id}: engine is closed")
        if self._client is None:
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            self._client = httpx.AsyncClient(
                headers=headers,
                # One timeout for connect, read, write and pool: the runtime's
                # decode timeout (by cancellation) is the real per-token limit.
                timeout=httpx.Timeout(self._timeout_s),
                # The replica's slot count already bounds concurrency; httpx's
                # default cap of 100 would turn larger slot counts into pool timeouts.
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
                transport=self._transport,
            )
        return self._client

    async def warmup(self) -> None:
        client = self._http()
        timeout = httpx.Timeout(min(self._timeout_s, WARMUP_TIMEOUT_S))
        url = self.models_url
        try:
            response = await client.get(url, timeout=timeout)
            if response.status_code == 404:  # a server without a model list may still have /health
                url = self.health_url
                response = await client.get(url, timeout=timeout)
        except httpx.RequestError as exc:
            raise EngineUnavailable(
                f"replica {self._replica_id}: cannot reach {url}: {type(exc).__name__}: {exc}"
            ) from exc
        if not response.is_success:
            raise EngineUnavailable(
                f"replica {self._replica_id}: {url} answered HTTP {response.status_code}"
                f"{_excerpt(response.text)}"
            )

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Token]:
        if request.max_tokens <= 0:
            return
        client = self._http()
        body = {
            "model": self._model,
            "prompt": request.prompt,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
            "stream": True,
        }
        started = False  # True once 2xx headers arrived: later failures are resets
        count = 0
        try:
            async with client.stream(
                "POST",
                self.completions_url,
                json=body,
                headers={"Accept": "text/event-stream", "Cache-Control": "no-store"},
            ) as response:
                await self._check_response(response)
                started = True
                async with aclosing(_sse_data(response)) as payloads:
                    async for payload in payloads:
                        if payload == "[DONE]":
                            return
                        chunk = self._decode_chunk(payload, count)
                        if chunk is None:
                            continue
                        text, token_id, finished = chunk
                        if text:
                            yield Token(index=count, text=text, token_id=token_id)
                            count += 1
                            if count >= request.max_tokens:
                                return  # the server may send more; the contract caps it here
                        if finished:
                            return
        except httpx.RequestError as exc:
            if started:
                raise EngineReset(
                    f"replica {self._replica_id}: stream broke after {count} tokens: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            raise EngineUnavailable(
                f"replica {self._replica_id}: cannot reach {self.completions_url}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        raise EngineReset(
            f"replica {self._replica_id}: stream ended after {count} tokens "
            "without [DONE] or a finish reason"
        )

    async def _check_response(self, response: httpx.Response) -> None:
        """Raise the engine error for a response that will not stream tokens."""
        status = response.status_code
        if status == 429:
            retry_after_s = parse_retry_after(response.headers.get("Retry-After"))
            raise EngineRateLimited(
                f"replica {self._replica_id} is rate limited (HTTP 429)"
                f"{await _read_excerpt(response)}",
                retry_after_s=retry_after_s,
            )
        if not response.is_success:
            raise EngineUnavailable(
                f"replica {self._replica_id}: {self.completions_url} answered HTTP {status}"
                f"{await _read_excerpt(response)}"
            )
        content_type = response.headers.get("Content-Type", "")
        if content_type and not content_type.lower().startswith("text/event-stream"):
            # e.g. a proxy's HTML page or a server that ignored "stream": nothing to parse
            raise EngineUnavailable(
                f"replica {self._replica_id}: {self.completions_url} answered HTTP {status} "
                f"with {content_type!r} instead of an event stream"
                f"{await _read_excerpt(response)}"
            )

    def _decode_chunk(self, payload: str, count: int) -> tuple[str, int, bool] | None:
        """(text, token_id, finished) of one streamed chunk; None for chunks without choices."""
        try:
            chunk = json.loads(payload)
        except ValueError as exc:
            raise EngineReset(
                f"replica {self._replica_id}: malformed chunk after {count} tokens: "
                f"{payload[:200]!r}"
            ) from exc
        if not isinstance(chunk, dict):
            raise EngineReset(
                f"replica {self._replica_id}: malformed chunk after {count} tokens: "
                f"{payload[:200]!r}"
            )
        if chunk.get("error") is not None:
            raise EngineReset(
                f"replica {self._replica_id}: error in stream after {count} tokens: "
                f"{_error_message(chunk['error'])}"
            )
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return None  # e.g. vLLM's trailing usage chunk
        choice: dict[str, Any] = choices[0]
        text = choice.get("text")
        if not isinstance(text, str):
            text = ""
        elif not _is_unicode(text):
            raise EngineReset(
                f"replica {self._replica_id}: the text of the chunk after {count} tokens is "
                f"not valid Unicode (an unpaired surrogate): {ascii(text)[:200]}"
            )
        token_id = _first_int(choice.get("token_ids"))
        if token_id is None:
            token_id = _first_int(chunk.get("tokens"))
        if token_id is None:
            token_id = text_token_id(text)
        return text, token_id, choice.get("finish_reason") is not None

    async def aclose(self) -> None:
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


async def _sse_data(response: httpx.Response) -> AsyncGenerator[str, None]:
    """The ``data`` payloads of a server-sent event stream, one per event (WHATWG rules).

    ``event: error`` events are surfaced as an ``error`` object so they fail
    like an in-band error chunk. A trailing event without its blank line is
    still delivered: servers often end with ``data: [DONE]`` and close.
    """
    data: list[str] = []
    event = ""
    async with aclosing(cast(AsyncGenerator[str, None], response.aiter_lines())) as lines:
        async for line in lines:
            if not line:
                if data:
                    payload = "\n".join(data)
                    yield json.dumps({"error": payload}) if event == "error" else payload
                data, event = [], ""
                continue
            if line.startswith(":"):
                continue  # comment / keep-alive
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "data":
                data.append(value)
            elif field == "event":
                event = value
            elif field == "error":  # some llama.cpp builds send "error: {...}" lines
                data, event = [value], "error"
    if data:
        payload = "\n".join(data)
        yield json.dumps({"error": payload}) if event == "error" else payload


def _excerpt(text: str) -> str:
    text = " ".join(text.split())[:200]
    return f": {text}" if text else ""


async def _read_excerpt(response: httpx.Response) -> str:
    """The start of an error body, read without trusting its size or liveness."""
    buffer = b""
    try:
        async with aclosing(cast(AsyncGenerator[bytes, None], response.aiter_bytes())) as parts:
            async for part in parts:
                buffer += part
                if len(buffer) >= _ERROR_EXCERPT_BYTES:
                    break
    except httpx.RequestError:
        pass
    return _excerpt(buffer[:_ERROR_EXCERPT_BYTES].decode("utf-8", errors="replace"))
