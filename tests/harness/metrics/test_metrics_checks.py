"""The metrics checks on hand-made pages: each rule fires with its ORCH ID, and only then.

The healthy baseline is a real orchestratord registry (``orchestrator.metrics``)
with every family populated, so "no violation" is asserted on what the server
actually renders, not on a hand-written page.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from harness.metrics import (
    LintError,
    configured_ids,
    contract_violations,
    exposition_violations,
    label_value_violations,
    load_lint,
    parse_exposition,
    promtool_violations,
    token_violations,
)
from harness.metrics.lint import canonical_json, default_lint_path, parse_lint
from harness.metrics.truth import Span, Truth, truth_violations
from orchestrator.metrics import Metrics, PoolSnapshot


def _healthy_page(pools: int = 2) -> str:
    snapshots = [
        PoolSnapshot(f"p{i}", {"interactive": 1, "batch": 0}, 1, [("r1", "mock", "ready")])
        for i in range(pools)
    ]
    metrics = Metrics(lambda: snapshots)
    for i in range(pools):
        pool = f"p{i}"
        metrics.tasks_admitted.labels(pool, "interactive").inc()
        metrics.tasks_rejected.labels(pool, "batch", "ADMISSION_REJECT").inc()
        metrics.tasks_dropped.labels(pool, "batch").inc()
        metrics.tasks_finished.labels(pool, "interactive", "completed", "length").inc()
        metrics.attempts.labels(pool, "r1", "completed").inc()
        metrics.generated_tokens.labels(pool, "mock").inc(7)
        metrics.stream_resumes.labels(pool).inc()
        metrics.queue_wait.labels(pool, "interactive").observe(0.01)
        metrics.time_to_first_token.labels(pool).observe(0.02)
        metrics.inter_token_latency.labels(pool).observe(0.001)
    return metrics.exposition().decode()


def _one(name: str, kind: str, sample: str | None = None, help_text: str = "Doc.") -> str:
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n{sample or name} 1\n"


def test_the_lint_file_is_canonical_and_loads() -> None:
    text = default_lint_path().read_text(encoding="utf-8")
    assert text == canonical_json(json.loads(text)), "metrics.lint.json is not sorted/canonical"
    lint = load_lint()
    assert {"task_id", "session_id", "seed", "prompt", "message", "request_id"} <= (
        lint.forbidden_labels
    )
    assert lint.metrics["orchq_generated_tokens_total"].type == "counter"


def test_the_lint_file_declares_exactly_what_orchestratord_exposes() -> None:
    expo = parse_exposition(_healthy_page())
    exposed = set(expo.types)
    assert exposed == set(load_lint().metrics), exposed ^ set(load_lint().metrics)


def test_a_healthy_page_has_no_violation() -> None:
    expo = parse_exposition(_healthy_page())
    assert exposition_violations(200, expo) == []
    assert promtool_violations(expo) == []
    assert contract_violations(expo, load_lint(), {"task_0001", "a prompt"}) == []


BAD_PAGES = {
    "gauge-total": _one("orchq_x_total", "gauge"),
    "counter-no-total": _one("orchq_x", "counter"),
    "no-help": "# TYPE orchq_y gauge\norchq_y 1\n",
    "empty-help": "# HELP orchq_y \n# TYPE orchq_y gauge\norchq_y 1\n",
    "ms": _one("orchq_wait_ms", "gauge"),
    "camel": _one("orchq_queueDepth", "gauge"),
    "colon": _one("orchq:depth", "gauge"),
    "no-prefix": _one("queue_depth", "gauge"),
    "type-in-name": _one("orchq_depth_gauge", "gauge"),
    "gauge-count-suffix": _one("orchq_tasks_count", "gauge"),
    "created": _one("orchq_a_total", "counter") + _one("orchq_a_created", "gauge"),
    "sample-without-type": "orchq_z 1\n",
    "histogram-unit": "# HELP orchq_lat L.\n# TYPE orchq_lat histogram\n"
    'orchq_lat_bucket{le="+Inf"} 1\norchq_lat_count 1\norchq_lat_sum 0.1\n',
    "duration-not-seconds": _one("orchq_queue_wait", "gauge"),
    "two-types": "# HELP orchq_q D.\n# TYPE orchq_q gauge\n# TYPE orchq_q gauge\norchq_q 1\n",
}


@pytest.mark.parametrize("page", BAD_PAGES.values(), ids=BAD_PAGES.keys())
def test_each_promtool_rule_fires_naming_orch_0132(page: str) -> None:
    violations = promtool_violations(parse_exposition(page))
    assert violations, "ORCH-0132: the promtool rules accepted a bad page"
    assert {v.req for v in violations} == {"ORCH-0132"}


def test_exposition_format_problems_name_orch_0131() -> None:
    broken = parse_exposition("orchq_x abc\n", content_type="application/json")
    violations = exposition_violations(500, broken)
    assert {v.req for v in violations} == {"ORCH-0131"}
    assert len(violations) == 4  # status, content type, parser, no TYPE line


def _with_extra(sample: str) -> str:
    page = _healthy_page()
    return page.replace(
        "# TYPE orchq_tasks_running gauge\n", f"# TYPE orchq_tasks_running gauge\n{sample}\n"
    )


def test_a_blown_cardinality_budget_names_orch_0133() -> None:
    page = _healthy_page(pools=17)  # pool's budget is 16
    messages = [str(v) for v in contract_violations(parse_exposition(page), load_lint())]
    assert any("ORCH-0133" in m and "cardinality budget of 16" in m for m in messages), messages


@pytest.mark.parametrize(
    ("sample", "needle"),
    [
        ('orchq_tasks_running{pool="p0",task_id="task_1"} 0', "forbidden label 'task_id'"),
        ('orchq_tasks_running{pool="p0",shard="a"} 0', "not declared"),
        ('orchq_tasks_running{pool="task_0001"} 0', "value from request input"),
    ],
)
def test_request_input_in_labels_names_orch_0133(sample: str, needle: str) -> None:
    violations = contract_violations(
        parse_exposition(_with_extra(sample)), load_lint(), {"task_0001"}
    )
    assert any(v.req == "ORCH-0133" and needle in v.message for v in violations), violations


def test_a_missing_lint_entry_for_an_exposed_metric_fails_naming_orch_0136() -> None:
    raw: dict[str, Any] = json.loads(default_lint_path().read_text(encoding="utf-8"))
    trimmed = copy.deepcopy(raw)
    del trimmed["metrics"]["orchq_attempts_total"]
    violations = contract_violations(parse_exposition(_healthy_page()), parse_lint(trimmed))
    assert [v.req for v in violations] == ["ORCH-0136"]
    assert "orchq_attempts_total is exposed but not declared" in violations[0].message


def test_missing_metric_wrong_type_and_missing_label_name_orch_0134() -> None:
    page = _healthy_page()
    page = page.replace("# TYPE orchq_replicas gauge", "# TYPE orchq_replicas counter")
    page = page.replace('orchq_stream_resumes_total{pool="p0"}', "orchq_stream_resumes_total")
    page = "\n".join(line for line in page.splitlines() if "orchq_tasks_dropped_total" not in line)
    messages = {str(v) for v in contract_violations(parse_exposition(page), load_lint())}
    assert "ORCH-0134: orchq_tasks_dropped_total (counter) is not exposed" in messages
    assert "ORCH-0134: orchq_replicas is a counter, the contract says gauge" in messages
    assert "ORCH-0134: orchq_stream_resumes_total: lacks the labels ['pool']" in messages


def test_token_counter_must_grow_by_exactly_the_streamed_tokens() -> None:
    before = parse_exposition(_healthy_page())  # 7 tokens per pool, 2 pools
    after = parse_exposition(_healthy_page().replace("} 7.0", "} 12.0"))
    assert token_violations(before, after, 10) == []
    over = token_violations(before, after, 9)
    assert [v.req for v in over] == ["ORCH-0135"]
    assert "grew by 10 while the workload streamed 9" in over[0].message


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d.update(extra=1), "unknown keys ['extra']"),
        (lambda d: d["forbidden_labels"].reverse(), "sorted, unique"),
        (lambda d: d["metrics"]["orchq_replicas"].update(type="gauge2"), "type must be one of"),
        (
            lambda d: d["metrics"]["orchq_replicas"]["labels"]["pool"].update(budget=0),
            "budget must be an integer >= 1",
        ),
        (
            lambda d: d["metrics"]["orchq_replicas"]["labels"].update(
                task_id={"budget": 1, "required": False, "values_from": "pool_id"}
            ),
            "forbidden labels ['task_id']",
        ),
        (
            lambda d: d["metrics"]["orchq_replicas"]["labels"]["state"].pop("values"),
            "needs exactly one of ['pattern', 'values', 'values_from']",
        ),
        (
            lambda d: d["metrics"]["orchq_replicas"]["labels"]["state"].update(pattern=".*"),
            "needs exactly one of ['pattern', 'values', 'values_from']",
        ),
        (
            lambda d: d["metrics"]["orchq_replicas"]["labels"]["state"]["values"].reverse(),
            "values: sorted, unique",
        ),
        (
            lambda d: d["metrics"]["orchq_replicas"]["labels"]["pool"].update(
                values_from="task_id"
            ),
            "values_from must be one of ['pool_id', 'replica_id']",
        ),
        (
            lambda d: d["metrics"]["orchq_build_info"]["labels"]["version"].update(pattern="("),
            "pattern: missing \\), unterminated subpattern",
        ),
    ],
)
def test_a_malformed_lint_file_is_refused(mutate: Any, needle: str) -> None:
    data = json.loads(default_lint_path().read_text(encoding="utf-8"))
    mutate(data)
    with pytest.raises(LintError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        parse_lint(data)


def _truth_of_healthy_page(pools: int = 2) -> Truth:
    """What :func:`_healthy_page` counted, as a workload would know it."""
    truth = Truth()
    for i in range(pools):
        pool = f"p{i}"
        truth.count("orchq_tasks_admitted_total", pool=pool, priority="interactive")
        truth.count(
            "orchq_tasks_rejected_total", pool=pool, priority="batch", kind="ADMISSION_REJECT"
        )
        truth.count("orchq_tasks_dropped_total", pool=pool, priority="batch")
        truth.count(
            "orchq_tasks_finished_total",
            pool=pool,
            priority="interactive",
            state="completed",
            reason="length",
        )
        truth.count("orchq_generated_tokens_total", 7, pool=pool, engine="mock")
        truth.count("orchq_stream_resumes_total", pool=pool)
        truth.observe(
            "orchq_queue_wait_seconds", Span.one(0.005, 0.05), pool=pool, priority="interactive"
        )
        truth.observe("orchq_time_to_first_token_seconds", Span.one(0.02, 0.03), pool=pool)
        truth.observe("orchq_inter_token_latency_seconds", Span(1, 0.0, 0.01), pool=pool)
    return truth


def test_ground_truth_holds_for_what_was_counted() -> None:
    empty = parse_exposition(_healthy_page(0))
    after = parse_exposition(_healthy_page())
    assert truth_violations(empty, after, _truth_of_healthy_page(), load_lint()) == []


def test_ground_truth_names_a_missing_count_and_a_histogram_in_another_unit() -> None:
    truth = _truth_of_healthy_page()
    truth.count(
        "orchq_tasks_finished_total",
        pool="p0",
        priority="batch",
        state="dropped",
        reason="QUEUE_FULL_DROP_LRU",
    )
    truth.observe("orchq_time_to_first_token_seconds", Span.one(20.0, 30.0), pool="p1")
    empty = parse_exposition(_healthy_page(0))
    messages = [
        str(v)
        for v in truth_violations(empty, parse_exposition(_healthy_page()), truth, load_lint())
    ]
    assert messages == [
        'ORCH-0240: orchq_tasks_finished_total{pool="p0",priority="batch",reason='
        '"QUEUE_FULL_DROP_LRU",state="dropped"} grew by 0; the workload\'s known outcomes '
        "make it 1",
        'ORCH-0241: orchq_time_to_first_token_seconds{pool="p1"} made 1 observations; the '
        "workload's known events make 2",
    ]
    seconds = _truth_of_healthy_page()
    seconds.histograms["orchq_time_to_first_token_seconds"][(("pool", "p1"),)] = [
        Span.one(20.0, 30.0)  # what a page observing 0.02 "seconds" for 20 s would show
    ]
    found = truth_violations(empty, parse_exposition(_healthy_page()), seconds, load_lint())
    assert [v.req for v in found] == ["ORCH-0241", "ORCH-0241"]
    assert "sum to 0.02 s, but the harness measured these durations between 20 s and 30 s" in (
        found[0].message
    )
    assert "bucket le=0.05 holds 1 new observations, but by the durations" in found[1].message


def test_label_values_outside_their_closed_set_are_named() -> None:
    page = _healthy_page().replace('reason="length"', 'reason="task ran out of tokens"')
    ids = configured_ids({"pools": [{"pool_id": "p0", "replicas": [{"replica_id": "r1"}]}]})
    messages = sorted(
        {str(v) for v in label_value_violations(parse_exposition(page), load_lint(), ids)}
    )
    assert any("reason='task ran out of tokens' is not in its closed set" in m for m in messages)
    assert any(
        "label pool='p1' is not in its closed set (a configured pool_id" in m for m in messages
    )
    assert all(m.startswith("ORCH-0242: ") for m in messages)
    assert label_value_violations(parse_exposition(_healthy_page(1)), load_lint(), ids) == []
