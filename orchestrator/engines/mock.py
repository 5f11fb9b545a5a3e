"""The embedded ``mock`` engine: deterministic tokens without a model.

Token ``i`` of a completion is a pure function of (prompt, seed, sampler
profile, sampling knobs, ``i``): a counter-based PRNG (BLAKE2b keyed by the
request, counter = token index). Nothing about the replica, the batch, timing
or the process enters, which is exactly the strict-determinism contract. The
fault knobs break that contract (or the replica) on purpose, so the harness
can be shown to catch each fault.

:func:`request_key` and :func:`token_at` are the token function itself and a
public interface: the harness's mock engine server (``orchq engine serve
--model mock``) serves the same tokens over HTTP and predicts them.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import struct
from collections.abc import AsyncIterator

from orchestrator.config import MockFaults
from orchestrator.engines.base import (
    EngineRateLimited,
    EngineReset,
    EngineUnavailable,
    GenerationRequest,
    Token,
)

ENGINE_NAME = "mock"
ENGINE_VERSION = "mock-1"

_SYLLABLES = (
    "ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "du",
    "sha", "qui", "zo", "bel", "fan", "gor", "hin", "jet", "kol", "mur",
)  # fmt: skip
_PUNCTUATION = (".", ",", "\n")
VOCABULARY: tuple[str, ...] = tuple(
    [f" {a}{b}" for a in _SYLLABLES for b in _SYLLABLES[:12]] + list(_PUNCTUATION)
)
"""240 words plus 3 punctuation tokens; ``token_id`` is the index in this tuple."""

_YIELD_EVERY = 32  # with zero token delay, let other coroutines run this often


def request_key(request: GenerationRequest) -> bytes:
    """The 32-byte key that, with a token index, fixes every token of a completion."""
    material = "\x1f".join(
        (
            request.prompt,
            str(request.seed),
            request.sampler_profile_version,
            repr(float(request.temperature)),
            repr(float(request.top_p)),
        )
    )
    return hashlib.blake2b(material.encode("utf-8"), digest_size=32).digest()


def token_at(key: bytes, index: int, salt: bytes = b"") -> Token:
    digest = hashlib.blake2b(struct.pack("<Q", index) + salt, key=key, digest_size=8).digest()
    token_id = int.from_bytes(digest, "little") % len(VOCABULARY)
    return Token(index=index, text=VOCABULARY[token_id], token_id=token_id)


class MockEngine:
    """A deterministic engine with configurable speed, warm-up and faults."""

    def __init__(
        self,
        replica_id: str,
        *,
        token_delay_ms: float = 0.0,
        faults: MockFaults | None = None,
    ) -> None:
        self._replica_id = replica_id
        self._token_delay_s = token_delay_ms / 1000.0
        self._faults = faults or MockFaults()

    @property
    def name(self) -> str:
        return ENGINE_NAME

    @property
    def version(self) -> str:
        return ENGINE_VERSION

    async def warmup(self) -> None:
        if self._faults.unavailable:
            raise EngineUnavailable(f"replica {self._replica_id} is configured unavailable")

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Token]:
        faults = self._faults
        if faults.rate_limit:
            raise EngineRateLimited(
                f"replica {self._replica_id} is rate limited",
                retry_after_s=faults.rate_limit_retry_after_s,
            )
        key = request_key(request)
        salt = b""
        if faults.nondeterministic:
            salt = self._replica_id.encode() + os.urandom(8)
        for index in range(request.max_tokens):
            if faults.fail_after_tokens is not None and index >= faults.fail_after_tokens:
                raise EngineReset(f"replica {self._replica_id} reset after {index} tokens")
            if faults.stall_after_tokens is not None and index >= faults.stall_after_tokens:
                await asyncio.Event().wait()  # stalls until the runtime's decode timeout
            if self._token_delay_s:
                await asyncio.sleep(self._token_delay_s)
            elif index % _YIELD_EVERY == _YIELD_EVERY - 1:
                await asyncio.sleep(0)
            yield token_at(key, index, salt)

    async def aclose(self) -> None:
        return None
