"""Run strict tasks over HTTP and count unique outputs per seed and per replica.

The determinism tests of vLLM and SGLang count *unique outputs over many
trials* rather than comparing one pair: a healthy server shows exactly one
output per seed whatever replica, concurrency or restart served it, and a
negative control (distinct seeds) proves the probe can see drift at all. This
module does that counting for the conformance suite and ``orchq determinism
run`` alike. It speaks only the public client (:mod:`orchestrator.client`), so
it certifies any OrchQueue v1 implementation, and it reads which replica served
each run from the stream's ``started`` event (ORCH-0117).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.client import AsyncOrchClient

__all__ = [
    "DEFAULT_PROMPT",
    "DEFAULT_TOKENS",
    "Output",
    "ProbeError",
    "SeedRow",
    "Sweep",
    "TokenSeq",
    "diverging_seeds",
    "ready_replicas",
    "run_many",
    "run_strict",
    "sweep",
]

DEFAULT_PROMPT = "Write a haiku about determinism."
DEFAULT_TOKENS = 32
MAX_EXTRA_ROUNDS = 8
"""Re-runs of a seed that has not yet met every required replica (routing decides)."""

TokenSeq = tuple[tuple[int, str], ...]
"""A completion as ``(token_id, text)`` pairs, in index order."""

Progress = Callable[[int, int], None]
"""``progress(done, total)`` after every finished run; ``total`` can grow (re-runs)."""


class ProbeError(Exception):
    """A strict task could not be run to completion (refused, or its stream ended in error)."""


@dataclass(frozen=True)
class Output:
    """One strict task's completion and who produced it; ``seconds`` is never compared."""

    seed: int
    prompt: str
    sampler_profile_version: str
    replica_id: str
    engine: str
    engine_version: str
    task_id: str
    tokens: TokenSeq
    seconds: float = field(default=0.0, compare=False)

    @property
    def texts(self) -> list[str]:
        return [text for _, text in self.tokens]

    @property
    def token_ids(self) -> list[int]:
        return [token_id for token_id, _ in self.tokens]

    @property
    def digest(self) -> str:
        """A short, stable fingerprint of the token stream (ids and exact texts)."""
        return digest_of(self.tokens)


def digest_of(tokens: TokenSeq) -> str:
    encoded = json.dumps([list(pair) for pair in tokens], ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()[:12]


async def run_strict(
    client: AsyncOrchClient,
    session_id: str,
    seed: int,
    *,
    prompt: str = DEFAULT_PROMPT,
    tokens: int = DEFAULT_TOKENS,
    sampler_profile_version: str = "v1",
    pool: str = "default",
) -> Output:
    """Admit one strict task and read its whole stream (no reconnect: a drop is a failure)."""
    from orchestrator.client import OrchError

    start = time.perf_counter()
    try:
        admitted = await client.submit_task(
            session_id,
            prompt,
            pool=pool,
            max_tokens=tokens,
            seed=seed,
            determinism="strict",
            sampler_profile_version=sampler_profile_version,
        )
    except OrchError as exc:
        raise ProbeError(f"seed {seed}: admission refused: {exc}") from exc
    result = await client.collect_stream(admitted.task_id, reconnect=False)
    if result.error is not None:
        raise ProbeError(
            f"seed {seed}: task {admitted.task_id} did not complete "
            f"({result.error.kind}: {result.error.message})"
        )
    if result.started is None:
        raise ProbeError(
            f"seed {seed}: task {admitted.task_id} ended without its `started` event "
            "(ORCH-0077: once per task), so the replica that ran it is unknown"
        )
    started = result.started
    return Output(
        seed=seed,
        prompt=prompt,
        sampler_profile_version=started.sampler_profile_version,
        replica_id=started.replica_id,
        engine=started.engine,
        engine_version=started.engine_version,
        task_id=admitted.task_id,
        tokens=tuple((t.token_id, t.text) for t in result.tokens),
        seconds=time.perf_counter() - start,
    )


async def run_many(
    client: AsyncOrchClient,
    session_id: str,
    seeds: Iterable[int],
    *,
    concurrency: int,
    progress: Callable[[], None] | None = None,
    **kwargs: object,
) -> list[Output]:
    """Run one strict task per entry of ``seeds`` with at most ``concurrency`` in flight."""
    gate = asyncio.Semaphore(concurrency)

    async def one(seed: int) -> Output:
        async with gate:
            output = await run_strict(client, session_id, seed, **kwargs)  # type: ignore[arg-type]
        if progress is not None:
            progress()
        return output

    return list(await asyncio.gather(*(one(seed) for seed in seeds)))


def diverging_seeds(reference: Sequence[Output], other: Sequence[Output]) -> list[int]:
    """Seeds whose tokens differ between two runs of the same seed list."""
    want = {o.seed: o.tokens for o in reference}
    return sorted({o.seed for o in other if want.get(o.seed) != o.tokens})


async def ready_replicas(client: AsyncOrchClient, pool: str = "default") -> list[str]:
    """The ``ready`` replicas of ``pool``, as the server reports them."""
    info = await client.get_pool(pool)
    return sorted(r.replica_id for r in info.replicas if r.state == "ready")


@dataclass(frozen=True)
class SeedRow:
    """Every run of one seed: a healthy server gives exactly one unique output."""

    seed: int
    outputs: tuple[Output, ...]

    @property
    def unique(self) -> int:
        return len({o.tokens for o in self.outputs})

    @property
    def replicas(self) -> list[str]:
        return sorted({o.replica_id for o in self.outputs})

    def unique_on(self, replica_id: str) -> int:
        return len({o.tokens for o in self.outputs if o.replica_id == replica_id})

    @property
    def digests(self) -> list[str]:
        return sorted({o.digest for o in self.outputs})

    @property
    def drifts_within_a_replica(self) -> bool:
        return any(self.unique_on(r) > 1 for r in self.replicas)


@dataclass(frozen=True)
class Sweep:
    """The outcome of :func:`sweep`: unique outputs per seed and per replica, and verdicts."""

    rows: tuple[SeedRow, ...]
    replicas_required: int
    replicas_ready: tuple[str, ...]
    tokens: int
    seconds: float = field(default=0.0, compare=False)

    @property
    def runs(self) -> int:
        return sum(len(row.outputs) for row in self.rows)

    @property
    def replicas_observed(self) -> list[str]:
        return sorted({o.replica_id for row in self.rows for o in row.outputs})

    @property
    def diverging(self) -> list[int]:
        return [row.seed for row in self.rows if row.unique != 1]

    @property
    def uncovered(self) -> list[int]:
        """Seeds that did not run on ``replicas_required`` distinct replicas."""
        return [row.seed for row in self.rows if len(row.replicas) < self.replicas_required]

    @property
    def distinct_outputs(self) -> int:
        """How many different outputs the distinct seeds gave (first run of each)."""
        return len({row.outputs[0].tokens for row in self.rows if row.outputs})

    @property
    def min_distinct(self) -> int:
        """The negative control's bar: 60 of 64 distinct seeds must differ (15/16)."""
        return math.ceil(len(self.rows) * 15 / 16)

    @property
    def engines(self) -> list[str]:
        return sorted({f"{o.engine} {o.engine_version}" for row in self.rows for o in row.outputs})

    def replica_problems(self) -> list[str]:
        """Failures of the byte-exact check (ORCH-0113/0114) and of replica coverage."""
        problems: list[str] = []
        if len(self.replicas_ready) < self.replicas_required:
            problems.append(
                f"the pool has {len(self.replicas_ready)} ready replica(s) "
                f"({', '.join(self.replicas_ready) or 'none'}); {self.replicas_required} needed"
            )
        within = [r.seed for r in self.rows if r.unique != 1 and r.drifts_within_a_replica]
        across = [r.seed for r in self.rows if r.unique != 1 and not r.drifts_within_a_replica]
        if within:
            problems.append(
                "ORCH-0113: a strict task's tokens must be byte-identical for the same inputs, "
                f"but {len(within)} seed(s) gave more than one output on one replica: "
                f"{_seeds(within)}"
            )
        if across:
            problems.append(
                "ORCH-0114: a strict task's tokens must be the same on every replica, but "
                f"{len(across)} seed(s) differ between replicas: {_seeds(across)}"
            )
        observed = self.replicas_observed
        if len(observed) < self.replicas_required:
            problems.append(
                f"ORCH-0114 not verifiable: only replica(s) {', '.join(observed) or 'none'} "
                f"served, the pool has {len(self.replicas_ready)} ready "
                f"({', '.join(self.replicas_ready)})"
            )
        elif self.uncovered:
            problems.append(
                f"ORCH-0114 not verified for {len(self.uncovered)} seed(s) that never ran on "
                f"{self.replicas_required} replicas: {_seeds(self.uncovered)}"
            )
        return problems

    def control_problems(self) -> list[str]:
        """The negative control: distinct seeds must diverge, or the probe is blind."""
        if self.distinct_outputs >= self.min_distinct:
            return []
        empty = [row.seed for row in self.rows if row.outputs and not row.outputs[0].tokens]
        why = (
            f"{len(empty)} seed(s) gave no token at all ({_seeds(empty)}): the engine stops "
            "at once on this prompt, so there is nothing to compare; use a --prompt it continues"
            if empty
            else "the seed does not reach the engine, so the byte-exact check cannot see drift"
        )
        return [
            f"control for ORCH-0113 failed: {len(self.rows)} distinct seeds gave only "
            f"{self.distinct_outputs} distinct outputs (need >= {self.min_distinct}): {why}"
        ]

    @property
    def ok(self) -> bool:
        return not self.replica_problems() and not self.control_problems()

    def seed_table(self, only_failing: bool = False) -> str:
        """Plain-text table: runs, unique outputs overall and per replica, digests."""
        replicas = sorted(set(self.replicas_ready) | set(self.replicas_observed))
        header = ["seed", "runs", "unique", *(f"{r} (runs/unique)" for r in replicas), "digests"]
        lines: list[list[str]] = []
        for row in self.rows:
            if only_failing and row.unique == 1 and len(row.replicas) >= self.replicas_required:
                continue
            per = [
                f"{sum(1 for o in row.outputs if o.replica_id == r)}/{row.unique_on(r)}"
                for r in replicas
            ]
            lines.append(
                [str(row.seed), str(len(row.outputs)), str(row.unique), *per, " ".join(row.digests)]
            )
        return _render([header, *lines])

    def replica_table(self) -> str:
        """Plain-text table per replica: runs, seeds served, seeds with > 1 output there."""
        header = ["replica", "ready", "runs", "seeds", "seeds with >1 output"]
        lines = []
        for replica in sorted(set(self.replicas_ready) | set(self.replicas_observed)):
            rows = [row for row in self.rows if replica in row.replicas]
            lines.append(
                [
                    replica,
                    "yes" if replica in self.replicas_ready else "no",
                    str(
                        sum(1 for row in self.rows for o in row.outputs if o.replica_id == replica)
                    ),
                    str(len(rows)),
                    str(sum(1 for row in rows if row.unique_on(replica) > 1)),
                ]
            )
        return _render([header, *lines])

    def summary(self) -> str:
        return (
            f"{len(self.rows)} seeds x {self.replicas_required} replicas x {self.tokens} tokens: "
            f"{self.runs} runs on {', '.join(self.replicas_observed) or 'no replica'} "
            f"({', '.join(self.engines) or '?'}), {len(self.diverging)} seed(s) with more than "
            f"one output, {self.distinct_outputs}/{len(self.rows)} distinct across seeds, "
            f"{self.seconds:.2f} s"
        )

    def failure_report(self) -> str:
        """Everything a failing test or CLI run prints: verdicts, then the tables."""
        problems = self.replica_problems() + self.control_problems()
        return "\n".join(
            [
                *problems,
                self.summary(),
                "",
                "unique outputs per seed:",
                self.seed_table(),
                "",
                "per replica:",
                self.replica_table(),
            ]
        )


def _seeds(seeds: Sequence[int], limit: int = 16) -> str:
    shown = ", ".join(str(s) for s in seeds[:limit])
    return shown + (f" ... ({len(seeds) - limit} more)" if len(seeds) > limit else "")


def _render(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


async def sweep(
    client: AsyncOrchClient,
    *,
    seeds: Sequence[int],
    replicas: int = 2,
    tokens: int = DEFAULT_TOKENS,
    prompt: str = DEFAULT_PROMPT,
    pool: str = "default",
    concurrency: int = 32,
    max_extra_rounds: int = MAX_EXTRA_ROUNDS,
    progress: Progress | None = None,
) -> Sweep:
    """Run every seed on ``replicas`` distinct replicas and gather the outputs per seed.

    Each seed is admitted ``replicas`` times at once (up to ``concurrency`` tasks in
    flight, so the server's routing spreads them); seeds that did not yet meet
    ``replicas`` distinct replicas (as the ``started`` events report) are run again,
    one seed at a time with its ``replicas`` copies in flight together (least-loaded
    routing spreads them), for at most ``max_extra_rounds`` rounds.
    Extra runs count like the others: every output of a seed must be identical.
    """
    start = time.perf_counter()
    ready = await ready_replicas(client, pool)
    session_id = (await client.create_session(ttl_seconds=3600)).session_id
    total = len(seeds) * replicas
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    kwargs: dict[str, object] = {"prompt": prompt, "tokens": tokens, "pool": pool}
    planned = [seed for seed in seeds for _ in range(replicas)]
    outputs = await run_many(
        client, session_id, planned, concurrency=concurrency, progress=tick, **kwargs
    )
    by_seed: dict[int, list[Output]] = {seed: [] for seed in seeds}
    for output in outputs:
        by_seed[output.seed].append(output)
    needed = min(replicas, len(ready))
    for _ in range(max_extra_rounds):
        missing = [s for s in seeds if len({o.replica_id for o in by_seed[s]}) < needed]
        if not missing:
            break
        total += len(missing) * replicas
        for seed in missing:
            # All copies of one seed at once, nothing else in flight: least-loaded
            # routing then has to put them on different replicas.
            for output in await run_many(
                client,
                session_id,
                [seed] * replicas,
                concurrency=replicas,
                progress=tick,
                **kwargs,
            ):
                by_seed[seed].append(output)
    rows = tuple(SeedRow(seed, tuple(by_seed[seed])) for seed in seeds)
    return Sweep(rows, replicas, tuple(ready), tokens, time.perf_counter() - start)
