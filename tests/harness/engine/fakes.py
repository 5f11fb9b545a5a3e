"""Tiny deterministic models implementing :class:`harness.engine.model.CompletionModel`.

They let the engine server, the CLI and orchestratord's ``openai`` engine be
tested over real HTTP without torch or a model file. The fake is byte-level
like SmolLM2's tokenizer: prompt bytes are ids ``BYTE_BASE + b`` and one
vocabulary entry ends inside a UTF-8 character, so the server's hold-back of
partial characters is exercised.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Generator, Sequence

from harness.engine.model import SamplingParams

STOP_ID = 0
BYTE_BASE = 1000
VOCAB: tuple[bytes, ...] = (
    b"<stop>",
    b"\n",
    b" queue",
    b" lines",
    b" moon",
    b" rain",
    b" falls",
    b"\xe2\x9c",  # the first two bytes of U+2728 SPARKLES...
    b"\xa8",  # ...and its last one: always generated right after
    b" slow",
    b" river",
)
SPLIT_FIRST = VOCAB.index(b"\xe2\x9c")
SPLIT_REST = VOCAB.index(b"\xa8")
STOP_MARKER = "[stop after 3]"
"""A prompt containing this makes the model emit its stop token after 3 tokens."""
FAIL_MARKER = "[fail after 2]"
"""A prompt containing this makes the model raise after 2 tokens."""


class FakeModel:
    """Seeded, byte-level, with optional per-token delay and a decode-overlap detector."""

    def __init__(self, *, delay_s: float = 0.0, salt: str = "", use_seed: bool = True) -> None:
        self.delay_s = delay_s
        self.salt = salt
        self.use_seed = use_seed
        self.context_length = 4096
        self.pin = "f00d"
        self.active = 0
        self.max_active = 0
        self._guard = threading.Lock()

    @property
    def model_id(self) -> str:
        return "fake"

    @property
    def version(self) -> str:
        return "fake-1"

    def encode(self, text: str) -> list[int]:
        return [BYTE_BASE + b for b in text.encode("utf-8")]

    def decode(self, ids: Sequence[int]) -> str:
        data = b"".join(bytes([i - BYTE_BASE]) if i >= BYTE_BASE else VOCAB[i] for i in ids)
        return data.decode("utf-8", errors="replace")

    def generate(
        self, prompt_ids: Sequence[int], params: SamplingParams
    ) -> Generator[int, None, None]:
        prompt = self.decode(prompt_ids)
        seed = params.seed if self.use_seed else 0
        key = f"{self.salt}|{seed}|{params.temperature}|{params.top_p}|{prompt}"
        rng = random.Random(key)
        with self._guard:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            pending: int | None = None
            for index in range(params.max_tokens):
                if self.delay_s:
                    time.sleep(self.delay_s)
                if STOP_MARKER in prompt and index == 3:
                    return
                if FAIL_MARKER in prompt and index == 2:
                    raise RuntimeError("fake model failure")
                if pending is not None:
                    token, pending = pending, None
                else:
                    token = rng.randrange(1, SPLIT_REST) if params.temperature else 1 + index % 6
                    if token == SPLIT_FIRST:
                        pending = SPLIT_REST
                yield token
        finally:
            with self._guard:
                self.active -= 1


def make_fake(threads: int) -> FakeModel:
    """``orchq engine serve --model tests.harness.engine.fakes:make_fake``."""
    return FakeModel(delay_s=0.002)


def make_nondeterministic(threads: int) -> FakeModel:
    """A broken engine: every process samples differently (its pid salts the seed)."""
    return FakeModel(delay_s=0.002, salt=f"{os.getpid()}-{time.monotonic_ns()}")


def make_seedless(threads: int) -> FakeModel:
    """A broken engine: it ignores the request's seed (every seed samples alike)."""
    return FakeModel(delay_s=0.002, use_seed=False)
