"""Deliberately broken orchestrators for the checks driven through the harness's engine.

Each mutant is orchestratord with one realistic bug in how it drives its
engines, applied to every replica's engine (``mutate_every_server(wrap_engine=...)``)
or to the configuration it really runs (``change_config=...``). The rest of the
server is untouched, so the check of the broken requirement must be the one
that fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from orchestrator.engines import (
    Engine,
    EngineError,
    EngineRateLimited,
    EngineReset,
    EngineUnavailable,
    GenerationRequest,
    Token,
)


class _Delegating:
    """An engine that behaves exactly like ``inner`` except where a subclass says."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def version(self) -> str:
        return self.inner.version

    async def warmup(self) -> None:
        await self.inner.warmup()

    def generate(self, request: GenerationRequest) -> AsyncIterator[Token]:
        return self.inner.generate(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class KeepsDecoding(_Delegating):
    """Cancel that does not stop the work: the engine stream is read by a detached task.

    The runner sees tokens through a queue; when it stops reading (a cancel, a
    decode timeout), the detached reader goes on, so the engine keeps decoding a
    task that already reads ``cancelled`` (ORCH-0068).
    """

    def __init__(self, inner: Engine) -> None:
        super().__init__(inner)
        self._readers: set[asyncio.Task[None]] = set()

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Token]:
        queue: asyncio.Queue[Token | BaseException | None] = asyncio.Queue()

        async def read() -> None:
            try:
                async for token in self.inner.generate(request):
                    queue.put_nowait(token)
            except Exception as exc:
                queue.put_nowait(exc)
            queue.put_nowait(None)

        reader = asyncio.get_running_loop().create_task(read())
        self._readers.add(reader)
        reader.add_done_callback(self._readers.discard)
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    async def aclose(self) -> None:
        for reader in list(self._readers):
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        await super().aclose()


class TruncatedSeed(_Delegating):
    """Seeds go to the engine as 32-bit integers (a C ``int`` on the way): ORCH-0044/ORCH-0113."""

    def generate(self, request: GenerationRequest) -> AsyncIterator[Token]:
        return self.inner.generate(dataclasses.replace(request, seed=request.seed & 0xFFFF_FFFF))


class _TranslatingErrors(_Delegating):
    """Tokens pass through; an engine error is replaced by :meth:`translate`'s."""

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Token]:
        try:
            async for token in self.inner.generate(request):
                yield token
        except EngineError as exc:
            raise self.translate(exc) from exc

    def translate(self, exc: EngineError) -> EngineError:
        return exc


class IgnoresRetryAfter(_TranslatingErrors):
    """The engine's ``Retry-After`` is lost on the way (read as milliseconds): ORCH-0110."""

    def translate(self, exc: EngineError) -> EngineError:
        if isinstance(exc, EngineRateLimited):
            return EngineRateLimited(str(exc), retry_after_s=exc.retry_after_s / 1000)
        return exc


class EveryFailureIsAReset(_TranslatingErrors):
    """An engine that refused the request is reported like one that died mid-stream:
    attempts say ``WORKER_RESET`` where ORCH-0151 names ``ENGINE_UNAVAILABLE``."""

    def translate(self, exc: EngineError) -> EngineError:
        return EngineReset(str(exc)) if isinstance(exc, EngineUnavailable) else exc


def one_attempt_too_many(config: Any) -> Any:
    """Every pool makes ``max_attempts + 1`` attempts (an off-by-one): ORCH-0101."""
    pools = [
        pool.model_copy(update={"max_attempts": pool.max_attempts + 1}) for pool in config.pools
    ]
    return config.model_copy(update={"pools": pools})


def warm_up_ignored(config: Any) -> Any:
    """Replicas are ready as soon as their engine answers: ``warmup_ms`` is ignored
    (ORCH-0250; before the fix, orchestratord did this for every engine but its mock)."""
    pools = [
        pool.model_copy(
            update={"replicas": [r.model_copy(update={"warmup_ms": 0}) for r in pool.replicas]}
        )
        for pool in config.pools
    ]
    return config.model_copy(update={"pools": pools})


MUTANTS: dict[str, tuple[dict[str, Any], str, str, str]] = {
    "cancel keeps the engine decoding": (
        {"wrap_engine": KeepsDecoding}, "test_contract_engine",
        "test_cancel_stops_the_engine_and_frees_the_slot", "ORCH-0068",
    ),
    "a timed-out engine request is never closed": (
        {"wrap_engine": KeepsDecoding}, "test_contract_engine",
        "test_hanging_engine_ends_decode_timeout", "ORCH-0068",
    ),
    "seed truncated to 32 bits": (
        {"wrap_engine": TruncatedSeed}, "test_determinism_engine",
        "test_strict_streams_are_the_known_token_function", "ORCH-0113",
    ),
    "the engine's Retry-After read as milliseconds": (
        {"wrap_engine": IgnoresRetryAfter}, "test_contract_engine",
        "test_engine_429_in_intelligent_pacing", "ORCH-0110",
    ),
    "an engine's refusal reported as a reset": (
        {"wrap_engine": EveryFailureIsAReset}, "test_contract_engine",
        "test_engine_refusing_a_request", "ORCH-0151",
    ),
    "one attempt more than max_attempts": (
        {"change_config": one_attempt_too_many}, "test_contract_engine",
        "test_engine_dying_on_every_attempt", "ORCH-0101",
    ),
    "configured warm-up ignored": (
        {"change_config": warm_up_ignored}, "test_contract_bounds",
        "test_warming_pool_suggests", "ORCH-0250",
    ),
}  # fmt: skip
"""name -> (``mutate_every_server`` keywords, conformance module, ``-k`` test, ORCH ID)."""
