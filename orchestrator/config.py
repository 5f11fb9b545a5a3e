"""Configuration of orchestratord: the embedded default and YAML files.

The keys are the ones README.md ("Configuration reference") lists. Validation is
strict (unknown keys are refused) and every problem is reported as one line naming the key path,
because a typo in a pool definition must not silently fall back to a default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestrator.validators import StrictFloat, StrictInt
from orchestrator.vocabulary import FallbackMode, OverflowPolicy
from orchestrator.webhooks.subscriptions import (
    MAX_SECRET_CHARS,
    MIN_SECRET_CHARS,
    check_events,
    check_url,
)

if TYPE_CHECKING:
    from orchestrator.runs import ParsedDefinition
    from orchestrator.runs.children import Lookup

DEFINITION_SUFFIXES = (".json", ".yaml", ".yml")


class ConfigError(Exception):
    """A configuration problem, phrased as one line for the operator."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MockFaults(_Strict):
    """Fault knobs of the mock engine, so the harness can be shown to catch faults."""

    fail_after_tokens: Annotated[StrictInt, Field(ge=0)] | None = None
    """The replica dies (``WORKER_RESET``) after emitting this many tokens of an attempt."""
    stall_after_tokens: Annotated[StrictInt, Field(ge=0)] | None = None
    """The replica stops emitting after this many tokens (ends in ``DECODE_TIMEOUT``)."""
    rate_limit: bool = False
    """The replica answers every generation with an engine 429."""
    rate_limit_retry_after_s: Annotated[StrictFloat, Field(ge=0, le=3600)] = 1.0
    nondeterministic: bool = False
    """Tokens also depend on the replica and on wall-clock entropy."""
    unavailable: bool = False
    """The replica never becomes ready (state ``down``)."""


class ReplicaConfig(_Strict):
    replica_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    engine: Literal["mock", "openai"] = "mock"
    slots: Annotated[StrictInt, Field(ge=1, le=1024)] = 4
    """How many tasks the replica decodes at once."""
    warmup_ms: Annotated[StrictInt, Field(ge=0, le=3_600_000)] = 0
    token_delay_ms: Annotated[StrictFloat, Field(ge=0, le=60_000)] = 0.0
    faults: MockFaults = MockFaults()
    base_url: str | None = None
    model: str | None = None
    api_key: str | None = None
    request_timeout_ms: Annotated[StrictInt, Field(ge=1, le=3_600_000)] = 30_000

    @model_validator(mode="after")
    def _engine_fields(self) -> ReplicaConfig:
        if self.engine == "openai":
            if not self.base_url:
                raise ValueError("engine 'openai' needs base_url")
            if not self.model:
                raise ValueError("engine 'openai' needs model")
        return self


class PoolConfig(_Strict):
    pool_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    queue_capacity: Annotated[StrictInt, Field(ge=1, le=10_000_000)] = 1024
    overflow_policy: OverflowPolicy = "reject"
    max_attempts: Annotated[StrictInt, Field(ge=1, le=16)] = 2
    batch_share_every: Annotated[StrictInt, Field(ge=2, le=1000)] = 4
    decode_timeout_ms: Annotated[StrictInt, Field(ge=1, le=3_600_000)] = 30_000
    replicas: Annotated[list[ReplicaConfig], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_replicas(self) -> PoolConfig:
        seen: set[str] = set()
        for replica in self.replicas:
            if replica.replica_id in seen:
                raise ValueError(f"duplicate replica_id {replica.replica_id!r}")
            seen.add(replica.replica_id)
        return self


class WebhookConfig(_Strict):
    """A subscription made at start (spec section 12.9); its rules are the API's (ORCH-0400)."""

    url: str
    events: Annotated[list[str], Field(min_length=1)]
    secret: Annotated[str, Field(min_length=MIN_SECRET_CHARS, max_length=MAX_SECRET_CHARS)]

    def fields(self) -> tuple[str, list[str], str]:
        """``(url, events, secret)``."""
        return self.url, self.events, self.secret

    @model_validator(mode="after")
    def _rules(self) -> WebhookConfig:
        try:
            check_url(self.url)
        except ValueError as exc:
            raise ValueError(f"url: {exc}") from None
        try:
            check_events(self.events)
        except ValueError as exc:
            raise ValueError(f"events: {exc}") from None
        return self


class Tuning(_Strict):
    """Switches for the optimisations docs/design/performance.md records, all on by default.

    Behaviour is the same either way: only the benchmarks switch one off, to
    measure what it buys (``bench/ab_admission.py --toggle NAME``).
    """

    reuseport_listeners: bool = True
    """``orchq serve`` on uvloop on Linux listens on a group of ``SO_REUSEPORT`` sockets."""
    gc_freeze: bool = True
    """``orchq serve`` freezes what exists at start and raises the young-generation threshold."""
    packed_queued_tasks: bool = True
    """A queued task is kept as ``marshal`` bytes, which the garbage collector never scans."""
    background_checkpoint: bool = True
    """The WAL is copied into the database file by a thread, not inside commits."""
    compact_json: bool = True
    """Stream events and stored JSON are encoded by pydantic-core instead of the ``json`` module."""
    session_cache: bool = True
    """Open sessions are kept in memory; an admission reads none from the database."""
    metric_children_cache: bool = True
    """Labelled metric children are resolved once per label set."""
    ordered_ids: bool = True
    """Ids start with the time, so new rows go to the right edge of the primary-key index."""


def _default_pools() -> list[PoolConfig]:
    return [
        PoolConfig(
            pool_id="default",
            replicas=[ReplicaConfig(replica_id="r1"), ReplicaConfig(replica_id="r2")],
        )
    ]


class Config(_Strict):
    database: str = "./orchq.db"
    auth_token: Annotated[str, Field(min_length=1)] | None = None
    max_body_bytes: Annotated[StrictInt, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    sse_ping_interval_ms: Annotated[StrictInt, Field(ge=10, le=3_600_000)] = 15_000
    sse_retry_ms: Annotated[StrictInt, Field(ge=0, le=3_600_000)] = 3_000
    fallback_mode: FallbackMode = "aggressive_fallback"
    """Initial routing mode; the persisted setting wins once it has been set."""
    retention_seconds: Annotated[StrictInt, Field(ge=60)] = 7 * 24 * 3600
    """Ended or expired sessions are purged (with their tasks) after this long."""
    header_timeout_s: Annotated[StrictInt, Field(ge=1, le=3600)] = 10
    """A connection must deliver each request head (line and headers) within this."""
    keep_alive_timeout_s: Annotated[StrictInt, Field(ge=1, le=3600)] = 5
    """An idle keep-alive connection is closed after this."""
    max_header_bytes: Annotated[StrictInt, Field(ge=1024, le=16 * 1024 * 1024)] = 65_536
    """A larger request head is answered 431."""
    max_connections: Annotated[StrictInt, Field(ge=1, le=1_000_000)] = 4096
    """Open connections; lowered at start when the open-file limit cannot hold them."""
    raise_open_file_limit: bool = True
    """``orchq serve`` raises its soft open-file limit to the hard limit at start."""
    pools: Annotated[list[PoolConfig], Field(min_length=1)] = Field(default_factory=_default_pools)
    definitions_dir: Annotated[str, Field(min_length=1)] | None = None
    """A folder whose ``*.json``, ``*.yaml`` and ``*.yml`` files are run definitions,
    registered at start (spec section 12.2)."""
    max_run_steps: Annotated[StrictInt, Field(ge=1, le=10_000)] = 100
    """Steps a run definition may have (ORCH-0309)."""
    max_definition_bytes: Annotated[StrictInt, Field(ge=1024, le=64 * 1024 * 1024)] = 262_144
    """Bytes a run definition document may have (ORCH-0309)."""
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    """Subscriptions to run events made at start (spec section 12.9)."""
    webhook_timeout_ms: Annotated[StrictInt, Field(ge=1, le=600_000)] = 5_000
    """An attempt not answered 2xx within this failed (ORCH-0413)."""
    webhook_max_attempts: Annotated[StrictInt, Field(ge=1, le=100)] = 8
    webhook_backoff_base_ms: Annotated[StrictInt, Field(ge=0, le=3_600_000)] = 1_000
    webhook_backoff_cap_ms: Annotated[StrictInt, Field(ge=0, le=86_400_000)] = 60_000
    """Attempt n + 1 waits ``min(cap, base * 2**(n - 1))`` ms after attempt n failed (ORCH-0414)."""
    tuning: Tuning = Tuning()

    @model_validator(mode="after")
    def _unique_pools(self) -> Config:
        seen: set[str] = set()
        for pool in self.pools:
            if pool.pool_id in seen:
                raise ValueError(f"duplicate pool_id {pool.pool_id!r}")
            seen.add(pool.pool_id)
        return self

    def pool(self, pool_id: str) -> PoolConfig | None:
        return next((p for p in self.pools if p.pool_id == pool_id), None)


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in {"function-after[_engine_fields()]", "function-after[_rules()]"}:
            continue
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def parse_config(data: Any, *, source: str = "config") -> Config:
    """Validate a decoded config mapping; raise :class:`ConfigError` on the first problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(p for p in first["loc"] if not str(p).startswith("function-"))
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        elif first["type"] == "missing":
            message = "required key is missing"
        raise ConfigError(f"{source}: {_key_path(loc)}: {message}") from None


def load_config(path: str | Path | None, *, database: str | None = None) -> Config:
    """Load a YAML config file (or the embedded default) and apply ``--db``."""
    if path is None:
        config = Config()
    else:
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{file}: config file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: cannot read config file: {exc}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or "invalid YAML"
            raise ConfigError(f"{file}: invalid YAML{where}: {problem}") from None
        config = parse_config(data, source=str(file))
        if config.definitions_dir is not None:
            folder = file.parent / config.definitions_dir
            config = config.model_copy(update={"definitions_dir": str(folder)})
    if database is not None:
        config = config.model_copy(update={"database": database})
    load_definitions(config)
    return config


def load_definitions(config: Config, registered: Lookup | None = None) -> list[ParsedDefinition]:
    """The run definitions of ``definitions_dir`` in file-name order; a file that is not one
    raises :class:`ConfigError` naming the file and the field (spec section 12.2).

    A child run names a definition of the folder or one ``registered`` knows (a
    database's); without ``registered``, a child the folder does not hold is passed over."""
    from orchestrator.runs import DefinitionError, DefinitionLimits, validate_definition
    from orchestrator.runs.children import check_children

    if config.definitions_dir is None:
        return []
    folder = Path(config.definitions_dir)
    if not folder.is_dir():
        raise ConfigError(f"definitions_dir: {folder} is not a folder")
    limits = DefinitionLimits(config.max_run_steps, config.max_definition_bytes)
    parsed: list[ParsedDefinition] = []
    files = sorted(p for p in folder.iterdir() if p.suffix in DEFINITION_SUFFIXES)
    for file in files:
        try:
            raw = file.read_bytes()
            if len(raw) > limits.max_bytes:
                raise DefinitionError(
                    "(document)", f"{len(raw)} bytes is over the limit of {limits.max_bytes} bytes"
                )
            data = yaml.safe_load(raw) if file.suffix != ".json" else json.loads(raw)
            parsed.append(validate_definition(data, limits))
        except DefinitionError as exc:
            raise ConfigError(f"{file}: {exc}") from None
        except (OSError, ValueError, RecursionError, yaml.YAMLError) as exc:
            raise ConfigError(f"{file}: not a definition document: {exc}") from None
    known = {(p.name, p.version): p for p in parsed}
    for file, definition in zip(files, parsed, strict=True):
        try:  # child runs among the folder's own definitions (ORCH-0483, ORCH-0484)
            check_children(
                definition,
                lambda n, v: known.get((n, v)) or (registered(n, v) if registered else None),
                unknown_ok=registered is None,
            )
        except DefinitionError as exc:
            raise ConfigError(f"{file}: {exc}") from None
    return parsed
