"""A ``/v1/completions`` request validated, and the two decoders that answer it.

:func:`parse_completion` turns a body into a :class:`Completion` or a :class:`BadRequest`
(OpenAI's ``invalid_request_error``). :class:`EngineService` decodes for a real model,
one request at a time on one dedicated thread, its sampler seeded per request, so
concurrent requests get the tokens they would get alone; :class:`MockService` runs
the mock token function on the event loop. Text is released only as whole characters.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Protocol

from harness.engine.mock import MockModel
from harness.engine.model import CompletionModel, SamplingParams

MAX_SEED = 2**64 - 1
"""torch generators take 64-bit seeds; OrchQueue seeds go up to 2^63 - 1."""

DEFAULT_MAX_TOKENS = 16
"""OpenAI's default for ``/v1/completions``."""

MOCK_MAX_TOKENS = 1 << 20
"""The mock model has no context window; this only bounds a request's work."""


class BadRequest(Exception):
    """A request the server refuses with 400 (OpenAI's ``invalid_request_error``)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class EngineDied(Exception):
    """Raised on purpose (fault ``die_after_tokens``): the server drops the connection."""


@dataclass(frozen=True)
class Completion:
    """A validated ``/v1/completions`` request."""

    prompt: str
    prompt_ids: list[int]
    params: SamplingParams
    stream: bool
    requested_seed: int | None
    """The seed the request carried; ``params.seed`` is drawn at random without one."""


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{name} must be a number", name)
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}", name)
    return float(value)


def _integer(body: dict[str, Any], name: str, default: int | None, high: int) -> int | None:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{name} must be an integer", name)
    if not 0 <= value <= high:
        raise BadRequest(f"{name} must be between 0 and {high}", name)
    return value


def parse_completion(body: Any, names: Sequence[str], max_tokens_limit: int) -> Completion:
    """Validate a request body for any model (400 :class:`BadRequest` naming the field)."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    model = body.get("model")
    if model is not None and model not in names:
        served = " or ".join(repr(name) for name in names)
        raise BadRequest(f"unknown model {model!r}; this server serves {served}", "model")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise BadRequest("prompt must be one non-empty string", "prompt")
    max_tokens = _integer(body, "max_tokens", DEFAULT_MAX_TOKENS, max_tokens_limit)
    seed = _integer(body, "seed", None, MAX_SEED)
    params = SamplingParams(
        max_tokens=DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens,
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0),
        # Without a seed a request is random, as with OpenAI; with one it is reproducible.
        seed=secrets.randbits(63) if seed is None else seed,
    )
    if params.top_p <= 0.0:
        raise BadRequest("top_p must be greater than 0", "top_p")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("stream must be a boolean", "stream")
    return Completion(prompt, [], params, stream, seed)


class TextStream:
    """Turns token ids into the text each one adds, never splitting a UTF-8 character.

    Byte-level BPE tokens can end inside a multi-byte character; decoding such a
    prefix gives U+FFFD, so that text is held back until the character is whole.
    Decoding the whole sequence each time (not token by token) keeps spaces and
    merges exactly as the full decode has them.
    """

    def __init__(self, decode: Callable[[Sequence[int]], str]) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._sent = ""

    def push(self, token_id: int) -> str:
        self._ids.append(token_id)
        text = self._decode(self._ids)
        if text.endswith("\ufffd"):
            return ""
        return self._take(text)

    def flush(self) -> str:
        """Whatever is still held back at the end of the completion."""
        return self._take(self._decode(self._ids)) if self._ids else ""

    def _take(self, text: str) -> str:
        delta = text[len(self._sent) :]
        self._sent = text
        return delta


def model_names(model: CompletionModel | MockModel) -> list[str]:
    """The names a client may send as ``model``: the plain id, then ``id@pin`` if pinned.

    A model with a ``pin`` attribute (SmolLM2: the first 12 hex digits of its file's
    SHA-256) also answers to ``id@pin``. orchestratord's ``openai`` engine reports
    ``openai:<model>`` as its engine version, so configuring the pinned name puts the
    model hash into every task's ``engine_version``, and a replica serving another
    file refuses the request instead of producing other tokens under that version.
    """
    pin = getattr(model, "pin", None)
    names = [model.model_id]
    if isinstance(pin, str) and pin:
        names.append(f"{model.model_id}@{pin}")
    return names


class Decoder(Protocol):
    """What the HTTP layer needs from a model: validation, turn-taking and tokens."""

    names: list[str]

    def parse(self, body: Any) -> Completion: ...

    def busy(self) -> bool: ...

    def turn(self) -> contextlib.AbstractAsyncContextManager[None]: ...

    def decode(self, completion: Completion) -> AsyncIterator[tuple[int | None, str]]: ...

    def close(self) -> None: ...


class EngineService:
    """A real model: its one decode thread and the request lock."""

    def __init__(self, model: CompletionModel, *, max_waiting: int = 8) -> None:
        self.model = model
        self.max_waiting = max_waiting
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="orchq-engine")
        self._lock: asyncio.Lock | None = None
        self._waiting = 0
        self.names = model_names(model)
        limit = getattr(model, "context_length", None)
        self._context_length = limit if isinstance(limit, int) else None

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def parse(self, body: Any) -> Completion:
        """Validate a request body (400 :class:`BadRequest` naming the field otherwise)."""
        completion = parse_completion(body, self.names, 1 << 20)
        ids = list(self.model.encode(completion.prompt))
        if not ids:
            raise BadRequest("prompt encodes to no tokens", "prompt")
        limit = self._context_length
        max_tokens = completion.params.max_tokens
        if limit is not None and len(ids) + max_tokens > limit:
            raise BadRequest(
                f"prompt ({len(ids)} tokens) plus max_tokens ({max_tokens}) exceeds "
                f"the context length {limit}",
                "max_tokens",
            )
        return replace(completion, prompt_ids=ids)

    def busy(self) -> bool:
        """Whether a new request would wait behind ``max_waiting`` others (answer 429)."""
        return self._lock is not None and self._lock.locked() and self._waiting >= self.max_waiting

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold the model for one request; waiting requests go in arrival order."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        self._waiting += 1
        acquired = False
        try:
            async with self._lock:
                self._waiting -= 1
                acquired = True
                yield
        finally:
            if not acquired:
                self._waiting -= 1

    async def decode(self, completion: Completion) -> AsyncIterator[tuple[int | None, str]]:
        """(token id, the text it adds) per generated token, computed on the model thread.

        Call it inside :meth:`turn`. A last ``(None, text)`` carries text held back
        by :class:`TextStream` when the completion ends inside a character.
        """
        loop = asyncio.get_running_loop()
        iterator = self.model.generate(completion.prompt_ids, completion.params)
        text = TextStream(self.model.decode)
        try:
            while True:
                step = await loop.run_in_executor(self._executor, _next_token, iterator, text)
                if step is None:
                    break
                yield step
            rest = await loop.run_in_executor(self._executor, text.flush)
            if rest:
                yield None, rest
        finally:
            # Queued on the model thread behind any pending step (also when the client
            # went away mid-step), so it never overlaps the next request's work.
            self._executor.submit(iterator.close)


def _next_token(iterator: Generator[int, None, None], text: TextStream) -> tuple[int, str] | None:
    try:
        token_id = next(iterator)
    except StopIteration:
        return None
    return token_id, text.push(token_id)


class MockService:
    """The mock model: no lock, no thread, every request decoded as it comes."""

    def __init__(self, model: MockModel) -> None:
        self.model = model
        self.names = model_names(model)

    def close(self) -> None:
        return None

    def parse(self, body: Any) -> Completion:
        completion = parse_completion(body, self.names, MOCK_MAX_TOKENS)
        return replace(completion, prompt_ids=list(completion.prompt.encode("utf-8")))

    def busy(self) -> bool:
        return False

    def turn(self) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    async def decode(self, completion: Completion) -> AsyncIterator[tuple[int | None, str]]:
        params = completion.params
        tokens = self.model.generate(
            completion.prompt, params.seed, params.max_tokens, params.temperature, params.top_p
        )
        async for token_id, text in tokens:
            yield token_id, text


def decoder_for(model: CompletionModel | MockModel, *, max_waiting: int = 8) -> Decoder:
    if isinstance(model, MockModel):
        return MockService(model)
    return EngineService(model, max_waiting=max_waiting)
