"""What the engine server does wrong on purpose, and what it generated: fault rules and a ledger.

A :class:`FaultBook` holds ordered :class:`FaultRule` objects. Each rule selects
completions by replica (the ``/replicas/{id}/...`` prefix a request came in
on), by a substring of the prompt, or both, and may retire after ``times``
uses. Every rule that selects a request contributes the fault fields it sets,
later rules overriding earlier ones, so "20 ms a token for everyone" and "die
after 2 tokens for this prompt" combine. The effective :class:`Faults` are
applied by the HTTP layer (:mod:`harness.engine.server`) around any model, so
they mean the same for the mock model and for a real one.

The :class:`Ledger` records every completion request: who sent it, what it
asked for, which faults it got, how many tokens the engine generated for it
and how it ended. The harness reads it over HTTP (``GET /orchq/requests``) to
judge what an orchestrator made its engine do, e.g. that no token is generated
once a cancel was acknowledged.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

__all__ = [
    "LEDGER_LIMIT",
    "FaultBook",
    "FaultError",
    "FaultRule",
    "Faults",
    "Ledger",
    "RequestRecord",
    "RequestState",
]

LEDGER_LIMIT = 100_000
"""Requests the ledger keeps; older ones are forgotten first (a long-running engine stays small)."""

RequestState = Literal["refused", "running", "hanging", "completed", "died", "disconnected"]
FINISHED_STATES = frozenset({"refused", "completed", "died", "disconnected"})
"""States of a request the engine no longer works on."""


class FaultError(ValueError):
    """A fault rule that cannot be applied; the message names the key."""


@dataclass(frozen=True)
class Faults:
    """The faults one completion request suffers (every field off by default)."""

    token_delay_ms: float = 0.0
    """Wait before each token (decode speed)."""
    warmup_ms: float = 0.0
    """Delay of the model list (``GET /v1/models``): an orchestrator's warm-up probe waits."""
    stop_after_tokens: int | None = None
    """The model stops by itself after this many tokens (finish reason ``stop``)."""
    die_after_tokens: int | None = None
    """The engine dies after this many tokens: the connection drops mid-response."""
    hang_after_tokens: int | None = None
    """After this many tokens nothing more is sent, and the connection stays open."""
    rate_limit_retry_after_s: int | None = None
    """Answer 429 with this ``Retry-After`` (whole seconds) before generating anything."""
    unavailable: bool = False
    """Answer 503 to completions and to the model list (the replica is down)."""
    nondeterministic: bool = False
    """Sample with a fresh random seed instead of the request's."""

    @classmethod
    def parse(cls, data: Any, where: str = "faults") -> dict[str, Any]:
        """The fault fields ``data`` sets, validated (unknown keys and bad values refused)."""
        if not isinstance(data, Mapping):
            raise FaultError(f"{where}: must be an object")
        known = {f.name for f in fields(cls)}
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                raise FaultError(
                    f"{where}.{key}: unknown fault (known: {', '.join(sorted(known))})"
                )
            out[key] = _value(key, value, f"{where}.{key}")
        return out

    def active(self) -> dict[str, Any]:
        """The fields that differ from the defaults (what a ledger record shows)."""
        default = Faults()
        return {k: v for k, v in asdict(self).items() if v != getattr(default, k)}


def _value(key: str, value: Any, where: str) -> Any:
    if key in ("unavailable", "nondeterministic"):
        if not isinstance(value, bool):
            raise FaultError(f"{where}: must be true or false")
        return value
    if key.endswith("_tokens") or key == "rate_limit_retry_after_s":
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise FaultError(f"{where}: must be an integer >= 0 or null")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FaultError(f"{where}: must be a number")
    if not 0 <= value <= 3_600_000:
        raise FaultError(f"{where}: must be between 0 and 3600000")
    return float(value)


@dataclass
class FaultRule:
    """Faults for the completions a rule selects; ``times`` uses at most (``None``: forever)."""

    faults: dict[str, Any]
    replica: str | None = None
    prompt_contains: str | None = None
    times: int | None = None

    @classmethod
    def parse(cls, data: Any, where: str = "rule") -> FaultRule:
        if not isinstance(data, Mapping):
            raise FaultError(f"{where}: must be an object")
        unknown = set(data) - {"faults", "replica", "prompt_contains", "times"}
        if unknown:
            raise FaultError(f"{where}.{sorted(unknown)[0]}: unknown key")
        for key in ("replica", "prompt_contains"):
            value = data.get(key)
            if value is not None and (not isinstance(value, str) or not value):
                raise FaultError(f"{where}.{key}: must be a non-empty string or null")
        times = data.get("times")
        if times is not None and (
            isinstance(times, bool) or not isinstance(times, int) or times < 1
        ):
            raise FaultError(f"{where}.times: must be an integer >= 1 or null")
        return cls(
            faults=Faults.parse(data.get("faults", {}), f"{where}.faults"),
            replica=data.get("replica"),
            prompt_contains=data.get("prompt_contains"),
            times=times,
        )

    def selects(self, replica: str | None, prompt: str | None) -> bool:
        """Whether the rule applies; a prompt rule never applies to a model-list probe."""
        if self.times is not None and self.times < 1:
            return False
        if self.replica is not None and self.replica != replica:
            return False
        if self.prompt_contains is not None:
            return prompt is not None and self.prompt_contains in prompt
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "faults": dict(self.faults),
            "replica": self.replica,
            "prompt_contains": self.prompt_contains,
            "times": self.times,
        }


@dataclass
class FaultBook:
    """The engine's fault rules, in order."""

    rules: list[FaultRule] = field(default_factory=list)

    @classmethod
    def parse(cls, data: Any, where: str = "rules") -> FaultBook:
        """``{"rules": [...]}`` (a fault file, the body of ``PUT /orchq/faults``)."""
        if not isinstance(data, Mapping) or set(data) - {"rules"}:
            raise FaultError(f"{where}: must be an object with the single key 'rules'")
        rules = data.get("rules", [])
        if not isinstance(rules, list):
            raise FaultError(f"{where}.rules: must be a list")
        return cls([FaultRule.parse(rule, f"{where}.rules[{i}]") for i, rule in enumerate(rules)])

    def completion(self, replica: str | None, prompt: str) -> Faults:
        """The faults of one completion request; uses up one of each selecting rule's ``times``."""
        merged: dict[str, Any] = {}
        for rule in self.rules:
            if rule.selects(replica, prompt):
                merged.update(rule.faults)
                if rule.times is not None:
                    rule.times -= 1
        return Faults(**merged)

    def probe(self, replica: str | None) -> Faults:
        """The faults of a model-list probe (rules without a prompt; nothing is used up)."""
        merged: dict[str, Any] = {}
        for rule in self.rules:
            if rule.prompt_contains is None and rule.selects(replica, None):
                merged.update(rule.faults)
        return Faults(**merged)

    def to_json(self) -> dict[str, Any]:
        return {"rules": [rule.to_json() for rule in self.rules]}


@dataclass
class RequestRecord:
    """One completion request as the engine saw it (and as ``GET /orchq/requests`` lists it)."""

    number: int
    """1 for the engine's first request, then 2, 3, ..."""
    replica: str | None
    prompt: str
    seed: int | None
    """The seed the request carried (``None`` if none)."""
    max_tokens: int
    temperature: float
    top_p: float
    stream: bool
    faults: dict[str, Any]
    status: int = 200
    state: RequestState = "running"
    generated: int = 0
    """Tokens the engine generated for it (sent, or on their way when it ended)."""
    finish_reason: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Ledger:
    """Every completion request the engine received, in arrival order (the newest kept)."""

    def __init__(self, limit: int = LEDGER_LIMIT) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=limit)
        self._count = 0

    def open(self, **values: Any) -> RequestRecord:
        self._count += 1
        record = RequestRecord(number=self._count, **values)
        self._records.append(record)
        return record

    def records(self, prompt_contains: str | None = None) -> list[RequestRecord]:
        return [r for r in self._records if prompt_contains is None or prompt_contains in r.prompt]

    def clear(self) -> None:
        self._records.clear()

    def to_json(self, records: Iterable[RequestRecord]) -> dict[str, Any]:
        return {"requests": [record.to_json() for record in records]}
