"""/metrics after a real workload: promtool-style hygiene, the spec's metric set,
bounded label cardinality and counters that agree with what was streamed.

Spec: ORCH-0131, ORCH-0132, ORCH-0133, ORCH-0134, ORCH-0135, ORCH-0136.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from orchestrator.client import OrchClient, OrchError
from orchestrator.config import Config
from orchestrator.vocabulary import TERMINAL_STATES
from tests.orchestrator.runtime.gated_engine import Gate
from tests.support import config_with, pool, wait_until

NAME = re.compile(r"^orchq_[a-z0-9_]+$")
LABEL_ALLOWLIST = {
    "pool",
    "priority",
    "kind",
    "state",
    "reason",
    "replica",
    "outcome",
    "engine",
    "version",
    "python",
    "when",
    "decision",
}
NON_BASE_UNITS = ("_ms", "_milliseconds", "_msec", "_sec", "_secs", "_minutes", "_hours", "_us")
TYPE_WORDS = ("_counter", "_gauge", "_histogram", "_summary")
REQUIRED = {
    "orchq_tasks_admitted_total": "counter",
    "orchq_tasks_rejected_total": "counter",
    "orchq_tasks_dropped_total": "counter",
    "orchq_tasks_finished_total": "counter",
    "orchq_queue_depth": "gauge",
    "orchq_tasks_running": "gauge",
    "orchq_replicas": "gauge",
    "orchq_generated_tokens_total": "counter",
    "orchq_queue_wait_seconds": "histogram",
    "orchq_time_to_first_token_seconds": "histogram",
    "orchq_inter_token_latency_seconds": "histogram",
    "orchq_stream_resumes_total": "counter",
    "orchq_build_info": "gauge",
}
REQUIRED_LABELS = {
    "orchq_tasks_admitted_total": {"pool", "priority"},
    "orchq_tasks_rejected_total": {"pool", "priority", "kind"},
    "orchq_tasks_dropped_total": {"pool", "priority"},
    "orchq_tasks_finished_total": {"pool", "priority", "state", "reason"},
    "orchq_queue_depth": {"pool", "priority"},
    "orchq_tasks_running": {"pool"},
    "orchq_replicas": {"pool", "state"},
    "orchq_generated_tokens_total": {"pool", "engine"},
    "orchq_queue_wait_seconds": {"pool", "priority"},
    "orchq_time_to_first_token_seconds": {"pool"},
    "orchq_inter_token_latency_seconds": {"pool"},
    "orchq_stream_resumes_total": {"pool"},
    "orchq_build_info": {"version"},
}
"""The labels the spec's metric table (section 9) gives each metric, at least."""


# ---------------------------------------------------------------- helpers


def scrape(base_url: str) -> tuple[str, list[Any]]:
    response = httpx.get(f"{base_url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    return text, list(text_string_to_metric_families(text))


def samples(families: list[Any]) -> list[Sample]:
    return [s for family in families for s in family.samples]


def total(families: list[Any], name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in samples(families)
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def stream_body(base_url: str, task_id: str, last_event_id: int | None = None) -> str:
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    response = httpx.get(f"{base_url}/v1/tasks/{task_id}/stream", headers=headers, timeout=30)
    assert response.status_code == 200
    return response.text


def token_events(body: str) -> int:
    return sum(1 for line in body.splitlines() if line == "event: token")


def check_hygiene(text: str, families: list[Any]) -> None:
    """The ``promtool check metrics`` rules, on the raw text and on the parsed families."""
    helps: dict[str, str] = {}
    types: dict[str, str] = {}
    sample_names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, doc = line.removeprefix("# HELP ").partition(" ")
            assert name not in helps, f"two HELP lines for {name}"
            helps[name] = doc
        elif line.startswith("# TYPE "):
            name, _, kind = line.removeprefix("# TYPE ").partition(" ")
            assert name not in types, f"two TYPE lines for {name}"
            types[name] = kind
        elif line and not line.startswith("#"):
            sample_names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    assert set(helps) == set(types), "every metric needs both HELP and TYPE"
    assert all(doc.strip() for doc in helps.values()), "empty HELP"
    for name, kind in types.items():
        assert NAME.match(name), f"bad metric name {name!r}"
        assert ":" not in name
        assert not any(name.endswith(u) or f"{u}_" in name for u in NON_BASE_UNITS), name
        assert not any(word in name for word in TYPE_WORDS), f"type name inside {name}"
        assert kind in {"counter", "gauge", "histogram"}, (name, kind)
        if kind == "counter":
            assert name.endswith("_total"), f"counter {name} lacks _total"
        else:
            assert not name.endswith("_total"), f"{kind} {name} ends with _total"
        if kind == "histogram":
            assert name.endswith("_seconds"), f"histogram {name} is not in base units"
    for sample in sample_names:
        assert NAME.match(sample), sample
        assert not sample.endswith("_created"), f"{sample}: _created series must be disabled"
        owner = [
            n
            for n in types
            if sample == n or (types[n] == "histogram" and sample.startswith(n + "_"))
        ]
        assert owner, f"sample {sample} has no TYPE/HELP"

    for family in families:
        assert family.type != "unknown", family.name
        assert family.documentation, family.name
        for s in family.samples:
            assert not s.name.endswith("_created"), s.name
            if family.type == "counter":
                assert s.name.endswith("_total"), s.name
            else:
                assert not s.name.endswith("_total"), s.name
            if family.type == "histogram":
                suffix = s.name.removeprefix(family.name)
                assert suffix in {"_bucket", "_count", "_sum"}, s.name
                if suffix == "_bucket":
                    assert "le" in s.labels
            names = set(s.labels) - ({"le"} if s.name.endswith("_bucket") else set())
            assert names <= LABEL_ALLOWLIST, (s.name, names - LABEL_ALLOWLIST)
        if family.type == "histogram":
            suffixes = {s.name.removeprefix(family.name) for s in family.samples}
            if family.samples:
                assert suffixes == {"_bucket", "_count", "_sum"}, (family.name, suffixes)
                # per label set, +Inf bucket equals _count
                for s in family.samples:
                    if s.name.endswith("_bucket") and s.labels["le"] == "+Inf":
                        other = {k: v for k, v in s.labels.items() if k != "le"}
                        count = [
                            c.value
                            for c in family.samples
                            if c.name.endswith("_count") and c.labels == other
                        ]
                        assert count == [s.value], family.name


# ---------------------------------------------------------------- the workload test


def blocked_replica() -> list[dict[str, Any]]:
    return [{"replica_id": "r1", "slots": 1, "token_delay_ms": 2}]


@pytest.mark.req("ORCH-0131", "ORCH-0132", "ORCH-0133", "ORCH-0134", "ORCH-0136")
def test_metrics_after_a_mixed_workload(
    serve: Callable[..., Any], make_config: Callable[..., Config]
) -> None:
    server = serve(
        make_config(
            pools=[
                pool("default", replicas=blocked_replica(), queue_capacity=2),
                pool(
                    "lru", replicas=blocked_replica(), queue_capacity=1, overflow_policy="drop_lru"
                ),
            ]
        )
    )
    url = server.url
    _, before = scrape(url)
    assert total(before, "orchq_generated_tokens_total") == 0

    task_ids: list[str] = []
    seeds: list[int] = []
    prompts: list[str] = []
    with OrchClient(url) as client:
        sid = client.create_session().session_id

        def submit(pool_id: str, max_tokens: int, priority: str = "interactive") -> str:
            seed = 918_273_645 + len(seeds)
            prompt = f"metrics workload prompt number {len(prompts)}"
            seeds.append(seed)
            prompts.append(prompt)
            admitted = client.submit_task(
                sid,
                prompt,
                pool=pool_id,
                max_tokens=max_tokens,
                seed=seed,
                priority=priority,  # type: ignore[arg-type]
            )
            task_ids.append(admitted.task_id)
            return admitted.task_id

        def running_with_a_token(task_id: str) -> None:
            wait_until(lambda: client.get_task(task_id).tokens_out >= 1, timeout=5)

        # completed
        for _ in range(3):
            assert client.collect_stream(submit("default", 5), reconnect=False).ok
        # rejected (reject policy), then a cancelled queued task and a cancelled running one
        blocker = submit("default", 4096)
        running_with_a_token(blocker)
        queued = submit("default", 3)
        survivor = submit("default", 4, priority="batch")
        with pytest.raises(OrchError) as rejected:
            submit("default", 3)
        assert rejected.value.kind == "ADMISSION_REJECT"
        client.cancel_task(queued)
        client.cancel_task(blocker)
        # dropped, and refused by drop_lru
        blocker2 = submit("lru", 4096)
        running_with_a_token(blocker2)
        victim = submit("lru", 3, priority="batch")
        newcomer = submit("lru", 6)
        with pytest.raises(OrchError) as refused:
            submit("lru", 3, priority="batch")
        assert refused.value.kind == "QUEUE_FULL_DROP_LRU"
        client.cancel_task(blocker2)

        wait_until(
            lambda: all(client.get_task(t).state in TERMINAL_STATES for t in task_ids), timeout=10
        )
        states = {t: client.get_task(t).state for t in task_ids}
        assert states[victim] == "dropped"
        assert states[survivor] == states[newcomer] == "completed"
        assert states[blocker] == states[blocker2] == states[queued] == "cancelled"

        streamed = {t: stream_body(url, t) for t in task_ids}
        tokens_streamed = sum(token_events(b) for b in streamed.values())
        with_tokens = sum(1 for b in streamed.values() if token_events(b) > 0)
        # Last-Event-ID reconnects: two on finished tasks, one header of 0 that is no resume
        resumes_before = total(scrape(url)[1], "orchq_stream_resumes_total")
        stream_body(url, survivor, last_event_id=2)
        stream_body(url, newcomer, last_event_id=5)
        stream_body(url, newcomer, last_event_id=0)
        session_ids = {sid}

    text, after = scrape(url)
    check_hygiene(text, after)

    # the spec's metric set, with the right types
    present = {f.name: f.type for f in after}
    for name, kind in REQUIRED.items():
        family = name.removesuffix("_total") if kind == "counter" else name
        assert present.get(family) == kind, (name, present.get(family))

    # ... and at least the spec's labels on every sample
    for name, labels in REQUIRED_LABELS.items():
        family_name = name.removesuffix("_total") if REQUIRED[name] == "counter" else name
        (family,) = [f for f in after if f.name == family_name]
        assert family.samples, f"ORCH-0134: {name} has no sample after the workload"
        for s in family.samples:
            assert set(s.labels) >= labels, (
                f"ORCH-0134: {s.name} has labels {sorted(s.labels)}, needs {sorted(labels)}"
            )

    # cardinality: nothing fed by request input appears as a label value
    forbidden = {*task_ids, *session_ids, *map(str, seeds), *prompts}
    for s in samples(after):
        leaked = {v for k, v in s.labels.items() if k != "le"} & forbidden
        assert not leaked, (s.name, leaked)

    # counters agree with the workload
    assert total(after, "orchq_tasks_admitted_total") == len(task_ids) == 9
    assert total(after, "orchq_tasks_admitted_total", pool="default") == 6
    assert total(after, "orchq_tasks_rejected_total") == 2
    assert total(after, "orchq_tasks_rejected_total", pool="default", kind="ADMISSION_REJECT") == 1
    assert total(after, "orchq_tasks_rejected_total", pool="lru", kind="QUEUE_FULL_DROP_LRU") == 1
    assert total(after, "orchq_tasks_dropped_total") == 1
    assert total(after, "orchq_tasks_dropped_total", pool="lru", priority="batch") == 1
    assert total(after, "orchq_tasks_finished_total") == len(task_ids)
    assert total(after, "orchq_tasks_finished_total", state="completed") == 5
    assert total(after, "orchq_tasks_finished_total", state="cancelled") == 3
    assert (
        total(after, "orchq_tasks_finished_total", state="dropped", reason="QUEUE_FULL_DROP_LRU")
        == 1
    )
    assert total(after, "orchq_generated_tokens_total") == tokens_streamed
    assert total(after, "orchq_stream_resumes_total") - resumes_before == 2
    # histograms: one queue wait per dispatch, one TTFT per task with a token,
    # one inter-token gap per further token
    dispatched = 7  # 3 completed, 2 blockers, survivor, newcomer
    assert total(after, "orchq_queue_wait_seconds_count") == dispatched
    assert total(after, "orchq_time_to_first_token_seconds_count") == with_tokens == dispatched
    assert total(after, "orchq_inter_token_latency_seconds_count") == tokens_streamed - with_tokens
    # gauges back at rest
    assert total(after, "orchq_queue_depth") == 0
    assert total(after, "orchq_tasks_running") == 0
    assert total(after, "orchq_replicas", state="ready") == 2
    build = [s for s in samples(after) if s.name == "orchq_build_info"]
    assert len(build) == 1 and build[0].value == 1
    assert set(build[0].labels) == {"version", "python"}


def test_resumes_count_live_reconnects(
    serve: Callable[..., Any], make_config: Callable[..., Config]
) -> None:
    # The engine holds before token 2 until the gate opens: the task is provably
    # still running when the client reconnects (a token delay only made it likely).
    gate = Gate(hold_before=2)
    server = serve(make_config(pools=[pool("default", replicas=1)]), engine_factory=gate.factory)
    with OrchClient(server.url) as client:
        sid = client.create_session().session_id
        task_id = client.submit_task(sid, "live resume", max_tokens=10).task_id
        seen = 0
        with httpx.stream("GET", f"{server.url}/v1/tasks/{task_id}/stream", timeout=10) as r:
            for line in r.iter_lines():
                if line.startswith("id: "):
                    seen = int(line.removeprefix("id: "))
                    if seen == 3:
                        break
        wait_until(gate.reached.is_set)
        assert client.get_task(task_id).state == "running"
        gate.open()
        rest = stream_body(server.url, task_id, last_event_id=seen)
        assert token_events(rest) == 10 - 2  # started + 2 tokens were seen
    _, families = scrape(server.url)
    assert total(families, "orchq_stream_resumes_total") == 1
    assert total(families, "orchq_generated_tokens_total") == 10


@pytest.mark.req("ORCH-0132")
def test_two_apps_in_one_process_do_not_clash(
    serve: Callable[..., Any], make_config: Callable[..., Config], tmp_path: Path
) -> None:
    first = serve(make_config())
    second = serve(config_with(str(tmp_path / "second.db")))
    for server, n in ((first, 1), (second, 2)):
        with OrchClient(server.url) as client:
            sid = client.create_session().session_id
            for _ in range(n):
                task_id = client.submit_task(sid, "x", max_tokens=3).task_id
                assert client.collect_stream(task_id, reconnect=False).ok
    for server, n in ((first, 1), (second, 2)):
        text, families = scrape(server.url)
        check_hygiene(text, families)
        assert total(families, "orchq_tasks_admitted_total") == n
        assert total(families, "orchq_generated_tokens_total") == 3 * n
        assert len([s for s in samples(families) if s.name == "orchq_build_info"]) == 1


def _one(name: str, kind: str, sample: str | None = None) -> str:
    return f"# HELP {name} Doc.\n# TYPE {name} {kind}\n{sample or name} 1\n"


BAD_EXPOSITIONS = {
    "gauge-total": _one("orchq_x_total", "gauge"),
    "counter-no-total": _one("orchq_x", "counter"),
    "no-help": "# TYPE orchq_y gauge\norchq_y 1\n",
    "ms": _one("orchq_wait_ms", "gauge"),
    "camel": _one("orchq_queueDepth", "gauge"),
    "colon": _one("orchq:depth", "gauge"),
    "type-in-name": _one("orchq_depth_gauge", "gauge"),
    "created": _one("orchq_a_total", "counter") + _one("orchq_a_created", "gauge"),
    "task-label": _one("orchq_t", "gauge", 'orchq_t{task_id="task_1"}'),
    "histogram-unit": "# HELP orchq_lat L.\n# TYPE orchq_lat histogram\n"
    'orchq_lat_bucket{le="+Inf"} 1\norchq_lat_count 1\norchq_lat_sum 0.1\n',
}


@pytest.mark.parametrize("exposition", BAD_EXPOSITIONS.values(), ids=BAD_EXPOSITIONS.keys())
def test_hygiene_check_catches_bad_expositions(exposition: str) -> None:
    """Negative control: the checker used above is not vacuous."""
    with pytest.raises(AssertionError):
        check_hygiene(exposition, list(text_string_to_metric_families(exposition)))


@pytest.mark.req("ORCH-0135")
def test_generated_tokens_count_a_strict_retry_replay_once(
    serve: Callable[..., Any], make_config: Callable[..., Config]
) -> None:
    """r1 dies after 3 tokens; the retry on r2 generates tokens 0-2 again but only streams 3+."""
    replicas = [{"replica_id": "r1", "faults": {"fail_after_tokens": 3}}, {"replica_id": "r2"}]
    server = serve(make_config(pools=[pool("default", replicas=replicas, max_attempts=2)]))
    streamed = 0
    retried = 0
    with OrchClient(server.url) as client:
        sid = client.create_session().session_id
        for n in range(4):  # routing rotates: some tasks start on r1 and are retried
            task_id = client.submit_task(
                sid, f"replayed {n}", max_tokens=8, seed=n, determinism="strict"
            ).task_id
            body = stream_body(server.url, task_id)
            assert "event: end" in body
            streamed += token_events(body)
            retried += len(client.get_task(task_id).attempts) > 1
    assert retried, "no task was retried: the replay path was not exercised"
    assert streamed == 4 * 8
    _, families = scrape(server.url)
    counted = total(families, "orchq_generated_tokens_total")
    assert counted == streamed, (
        f"ORCH-0135: orchq_generated_tokens_total is {counted}, but {streamed} tokens were "
        f"streamed ({retried} strict retries regenerated tokens already sent)"
    )
