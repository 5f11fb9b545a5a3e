"""Prometheus metrics of one orchestrator instance.

Every instance gets its own ``CollectorRegistry`` so many apps can live in one
test process. Label values only ever come from configuration (pool, replica,
engine) or closed enums (priority, state, kind, finish reason), never from
request input, so cardinality is bounded by the config. Gauges that mirror
state (queue depth, running, replicas) are computed at scrape time instead of
being updated on every change.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from orchestrator import __version__
from orchestrator.vocabulary import CHECKPOINT_WHENS, PRIORITIES, REPLICA_STATES

disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_Labelled = TypeVar("_Labelled", bound=MetricWrapperBase)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_DECISION_BUCKETS = (0.1, 1, 10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400)
"""A person decides a checkpoint: seconds to a day."""


@dataclass(frozen=True)
class PoolSnapshot:
    pool_id: str
    depth: dict[str, int]
    running: int
    replicas: list[tuple[str, str, str]]
    """``(replica_id, engine, state)`` of every replica."""


class _StateCollector(Collector):
    def __init__(self, snapshot: Callable[[], Iterable[PoolSnapshot]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        depth = GaugeMetricFamily(
            "orchq_queue_depth",
            "Tasks waiting in the admission queue.",
            labels=["pool", "priority"],
        )
        running = GaugeMetricFamily(
            "orchq_tasks_running", "Tasks currently decoding on a replica.", labels=["pool"]
        )
        replicas = GaugeMetricFamily(
            "orchq_replicas", "Replicas by state.", labels=["pool", "state"]
        )
        for pool in self._snapshot():
            for priority in PRIORITIES:
                depth.add_metric([pool.pool_id, priority], pool.depth.get(priority, 0))
            running.add_metric([pool.pool_id], pool.running)
            for state in REPLICA_STATES:
                count = sum(1 for _, _, s in pool.replicas if s == state)
                replicas.add_metric([pool.pool_id, state], count)
        return [depth, running, replicas]


class Metrics:
    def __init__(
        self, snapshot: Callable[[], Iterable[PoolSnapshot]], *, cache_children: bool = True
    ) -> None:
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}
        self._cache_children = cache_children
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.tasks_admitted = Counter(
            "orchq_tasks_admitted_total",
            "Tasks admitted to a queue.",
            ["pool", "priority"],
            registry=r,
        )
        self.tasks_rejected = Counter(
            "orchq_tasks_rejected_total",
            "Task admissions refused.",
            ["pool", "priority", "kind"],
            registry=r,
        )
        self.tasks_dropped = Counter(
            "orchq_tasks_dropped_total",
            "Queued tasks evicted by drop_lru.",
            ["pool", "priority"],
            registry=r,
        )
        self.tasks_finished = Counter(
            "orchq_tasks_finished_total",
            "Tasks that reached a terminal state, by state and reason "
            "(finish reason or error kind).",
            ["pool", "priority", "state", "reason"],
            registry=r,
        )
        self.attempts = Counter(
            "orchq_attempts_total",
            "Dispatches of a task to a replica, by outcome.",
            ["pool", "replica", "outcome"],
            registry=r,
        )
        self.generated_tokens = Counter(
            "orchq_generated_tokens_total",
            "Tokens streamed to clients (a retry's replayed tokens are not counted).",
            ["pool", "engine"],
            registry=r,
        )
        self.stream_resumes = Counter(
            "orchq_stream_resumes_total",
            "Stream requests resuming with Last-Event-ID.",
            ["pool"],
            registry=r,
        )
        self.queue_wait = Histogram(
            "orchq_queue_wait_seconds",
            "Time from admission to first dispatch.",
            ["pool", "priority"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.time_to_first_token = Histogram(
            "orchq_time_to_first_token_seconds",
            "Time from admission to the first token sent.",
            ["pool"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.inter_token_latency = Histogram(
            "orchq_inter_token_latency_seconds",
            "Time between consecutive tokens of a task.",
            ["pool"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.runs_started = Counter("orchq_runs_started_total", "Runs created.", registry=r)
        self.runs_finished = Counter(
            "orchq_runs_finished_total",
            "Runs that reached a terminal state.",
            ["state"],
            registry=r,
        )
        self.run_steps_finished = Counter(
            "orchq_run_steps_finished_total",
            "Steps of runs that reached a terminal state.",
            ["state"],
            registry=r,
        )
        self.run_step_start_delay = Histogram(
            "orchq_run_step_start_delay_seconds",
            "Time from a step's last dependency succeeding to its first task's admission.",
            ["pool"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.checkpoints_pending = Gauge(
            "orchq_checkpoints_pending",
            "Checkpoints of runs waiting for a decision, by when.",
            ["when"],
            registry=r,
        )
        for when in CHECKPOINT_WHENS:
            self.checkpoints_pending.labels(when).set(0)
        self.checkpoint_wait = Histogram(
            "orchq_checkpoint_wait_seconds",
            "Time from a checkpoint's request to its decision, by decision.",
            ["decision"],
            buckets=_DECISION_BUCKETS,
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "orchq_webhook_deliveries_total",
            "Webhook delivery attempts that ended, by outcome (delivered, retried, failed).",
            ["outcome"],
            registry=r,
        )
        self.webhook_attempt_duration = Histogram(
            "orchq_webhook_attempt_duration_seconds",
            "Time from sending a webhook delivery attempt to its answer or failure.",
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.webhook_pending = Gauge(
            "orchq_webhook_deliveries_pending",
            "Webhook deliveries not yet delivered or failed.",
            registry=r,
        )
        build = Gauge(
            "orchq_build_info",
            "Build of orchestratord (always 1).",
            ["version", "python"],
            registry=r,
        )
        build.labels(__version__, platform.python_version()).set(1)
        r.register(_StateCollector(snapshot))

    def child(self, metric: _Labelled, *values: str) -> _Labelled:
        """``metric.labels(*values)``, resolved once per label set.

        prometheus-client validates and hashes the labels on every ``labels()``
        call (~4 us); the hot paths update a handful of children per task.
        Label sets are bounded by the config and closed enums, so is this cache.
        """
        if not self._cache_children:
            return metric.labels(*values)
        key = (metric, values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
