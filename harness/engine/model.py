"""The decode interface between the completions server and a model.

The server needs only this small protocol, so its HTTP and streaming logic is
tested with a tiny deterministic fake (no torch) and runs unchanged around the
real SmolLM2 model (:mod:`harness.engine.smollm2`).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SamplingParams:
    """One request's sampling parameters; ``seed`` alone decides the random draws."""

    max_tokens: int
    temperature: float
    top_p: float
    seed: int


class ModelError(Exception):
    """The model cannot be loaded (missing extra, missing model file): one line for the user."""


class CompletionModel(Protocol):
    """A causal language model that decodes one request at a time.

    ``generate`` yields token ids until ``max_tokens`` or a stop token (which it
    does not yield). It is called from one thread at a time; its output must
    depend only on the prompt ids and the :class:`SamplingParams`.
    """

    @property
    def model_id(self) -> str:
        """The name clients send as ``model`` and ``/v1/models`` lists."""
        ...

    @property
    def version(self) -> str:
        """What produces the tokens: model file hash and library versions."""
        ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def generate(
        self, prompt_ids: Sequence[int], params: SamplingParams
    ) -> Generator[int, None, None]: ...
