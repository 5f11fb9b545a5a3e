"""Deliberately broken orchestrators for the metrics self-tests.

Each mutant is an ASGI layer (``orch_serve(wrap_app=...)``) around the real
orchestratord that rewrites the body of ``GET /metrics`` and nothing else, so
the rest of the server stays conformant and the metrics check is the only one
that can notice. Some mutants feed labels from task IDs: they remember the IDs
seen in request paths (``/v1/tasks/{id}/stream``), as a careless
implementation labelling per task would.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from tests.harness.mutantkit import App, Receive, Scope, Send, Wrap, matching, rewrite_response

Transform = Callable[[str, list[str]], str]

_TASK_PATH = re.compile(r"^/v1/tasks/([^/]+)")


def metrics_rewriter(transform: Transform) -> Wrap:
    """``wrap_app`` factory: ``transform(body, task_ids_seen)`` replaces the /metrics body."""

    def wrap(app: App) -> App:
        seen: list[str] = []

        def change(status: int, body: bytes) -> tuple[int, bytes]:
            return status, transform(body.decode(), list(seen)).encode()

        rewritten = rewrite_response(app, change, matching(path="/metrics"))

        async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                match = _TASK_PATH.match(scope["path"])
                if match and match.group(1) not in seen:
                    seen.append(match.group(1))
            await rewritten(scope, receive, send)

        return mutant

    return wrap


def _task_id_label(body: str, task_ids: list[str]) -> str:
    """A per-task token gauge labelled ``task_id``: the textbook cardinality bomb."""
    lines = [
        f'orchq_generated_tokens_total{{engine="mock",pool="default",task_id="{t}"}} 0'
        for t in task_ids
    ]
    return re.sub(
        r"(# TYPE orchq_generated_tokens_total counter\n)",
        lambda m: m.group(1) + "\n".join(lines) + ("\n" if lines else ""),
        body,
    )


def _pool_fed_by_task_ids(body: str, task_ids: list[str]) -> str:
    """The same leak under an innocent, declared label name: ``pool`` carries task IDs."""
    extra = "".join(f'orchq_tasks_running{{pool="{t}"}} 0\n' for t in task_ids)
    return body.replace(
        "# TYPE orchq_tasks_running gauge\n", "# TYPE orchq_tasks_running gauge\n" + extra
    )


def _counter_without_total(body: str, _: list[str]) -> str:
    return body.replace("orchq_stream_resumes_total", "orchq_stream_resumes")


def _missing_help(body: str, _: list[str]) -> str:
    return re.sub(r"# HELP orchq_replicas [^\n]*\n", "", body)


def _token_overcount(body: str, _: list[str]) -> str:
    """Every streamed token counted twice (as a retry replaying tokens would)."""

    def bump(match: re.Match[str]) -> str:
        return f"{match.group(1)} {float(match.group(2)) * 2}"

    return re.sub(r"^(orchq_generated_tokens_total\{[^}]*\}) (\S+)$", bump, body, flags=re.M)


def _undeclared_metric(body: str, _: list[str]) -> str:
    return (
        body + "# HELP orchq_cache_entries Entries in a cache.\n"
        "# TYPE orchq_cache_entries gauge\norchq_cache_entries 3\n"
    )


def _finished_skips_dropped(body: str, _: list[str]) -> str:
    """Tasks evicted by ``drop_lru`` are never counted as finished (ORCH-0240)."""
    return "".join(
        line
        for line in body.splitlines(keepends=True)
        if not (line.startswith("orchq_tasks_finished_total{") and 'state="dropped"' in line)
    )


_MESSAGES = {
    "CANCELLED": "cancelled by the client",
    "QUEUE_FULL_DROP_LRU": "evicted from a full queue (overflow policy drop_lru)",
    "DECODE_TIMEOUT": "replica t1 sent no token within 500 ms",
}


def _reason_is_the_message(body: str, _: list[str]) -> str:
    """``reason`` carries the task's error message, free text, instead of its kind (ORCH-0242)."""
    lines = []
    for line in body.splitlines(keepends=True):
        if line.startswith("orchq_tasks_finished_total{"):
            for kind, message in _MESSAGES.items():
                line = line.replace(f'reason="{kind}"', f'reason="{message}"')
        lines.append(line)
    return "".join(lines)


def _in_milliseconds(name: str) -> Transform:
    """The histogram ``name`` observed in milliseconds under its ``_seconds`` name.

    Every observation is 1000 times larger: the sum grows 1000-fold and each bucket
    ``le`` holds what the seconds histogram held at ``le / 1000`` (its largest bound
    not above that).
    """

    def transform(body: str, _: list[str]) -> str:
        buckets: dict[str, list[tuple[float, float]]] = {}
        pattern = rf'^{name}_bucket\{{(.*?)le="([^"]+)"(.*?)\}} (\S+)$'
        for match in re.finditer(pattern, body, re.M):
            series = match.group(1) + match.group(3)
            buckets.setdefault(series, []).append((float(match.group(2)), float(match.group(4))))

        def shifted(match: re.Match[str]) -> str:
            series, le = match.group(1) + match.group(3), float(match.group(2))
            below = [count for bound, count in buckets[series] if bound <= le / 1000]
            value = float(match.group(4)) if le == float("inf") else (max(below) if below else 0.0)
            return f'{name}_bucket{{{match.group(1)}le="{match.group(2)}"{match.group(3)}}} {value}'

        body = re.sub(pattern, shifted, body, flags=re.M)
        return re.sub(
            rf"^({name}_sum\{{[^}}]*\}}) (\S+)$",
            lambda m: f"{m.group(1)} {float(m.group(2)) * 1000}",
            body,
            flags=re.M,
        )

    return transform


def _steps_finished_skip_skipped(body: str, _: list[str]) -> str:
    """Skipped steps are never counted as finished (ORCH-0460)."""
    return "".join(
        line
        for line in body.splitlines(keepends=True)
        if not (line.startswith("orchq_run_steps_finished_total{") and 'state="skipped"' in line)
    )


def _aborted_runs_labelled_cancelled(body: str, _: list[str]) -> str:
    """An aborted run counted under a state runs do not have (ORCH-0461)."""
    return body.replace(
        'orchq_runs_finished_total{state="aborted"}', 'orchq_runs_finished_total{state="cancelled"}'
    )


def _start_delay_per_attempt(body: str, _: list[str]) -> str:
    """One more start-delay observation, as a server observing every attempt would (ORCH-0462)."""

    def bump(match: re.Match[str]) -> str:
        return f"{match.group(1)} {float(match.group(2)) + 1}"

    pattern = r"^(orchq_run_step_start_delay_seconds_(?:count|bucket)\{[^}]*\}) (\S+)$"
    return re.sub(pattern, bump, body, flags=re.M)


def _pending_checkpoints_never_go_down() -> Transform:
    """``orchq_checkpoints_pending`` incremented but never decremented: each series shows the
    highest value it ever had (ORCH-0463)."""
    highest: dict[str, float] = {}

    def transform(body: str, _: list[str]) -> str:
        def keep_highest(match: re.Match[str]) -> str:
            series = match.group(1)
            highest[series] = max(highest.get(series, 0.0), float(match.group(2)))
            return f"{series} {highest[series]}"

        pattern = r"^(orchq_checkpoints_pending\{[^}]*\}) (\S+)$"
        return re.sub(pattern, keep_highest, body, flags=re.M)

    return transform


def _wait_observes_cancelled(body: str, _: list[str]) -> str:
    """A cancelled checkpoint observed as if decided ``abort``: one more observation of that
    series than there were decisions (ORCH-0464)."""

    def bump(match: re.Match[str]) -> str:
        return f"{match.group(1)} {float(match.group(2)) + 1}"

    pattern = (
        r"^(orchq_checkpoint_wait_seconds_(?:count|bucket)\{[^}]*decision=\"abort\"[^}]*\}) (\S+)$"
    )
    return re.sub(pattern, bump, body, flags=re.M)


def _failed_attempts_counted_delivered(body: str, _: list[str]) -> str:
    """Every attempt that got an answer counted ``delivered``, a 500 included (ORCH-0420)."""
    pattern = r'^orchq_webhook_deliveries_total\{outcome="(delivered|retried)"\} (\S+)$'
    values = {m.group(1): float(m.group(2)) for m in re.finditer(pattern, body, re.M)}

    def merged(match: re.Match[str]) -> str:
        value = sum(values.values()) if match.group(1) == "delivered" else 0.0
        return f'orchq_webhook_deliveries_total{{outcome="{match.group(1)}"}} {value}'

    return re.sub(pattern, merged, body, flags=re.M)


MUTANTS: dict[str, tuple[Transform, str]] = {
    "task-id-label": (_task_id_label, "ORCH-0133"),
    "pool-fed-by-task-ids": (_pool_fed_by_task_ids, "ORCH-0133"),
    "counter-without-total": (_counter_without_total, "ORCH-0132"),
    "missing-help": (_missing_help, "ORCH-0132"),
    "token-overcount": (_token_overcount, "ORCH-0135"),
    "undeclared-metric": (_undeclared_metric, "ORCH-0136"),
}
"""name -> (body transform, the ORCH ID the metrics suite must name)."""


TRUTH_MUTANTS: dict[str, tuple[Transform, str]] = {
    "finished counter skips dropped tasks": (_finished_skips_dropped, "ORCH-0240"),
    "reason label fed with the error message": (_reason_is_the_message, "ORCH-0242"),
    "time to first token in milliseconds": (
        _in_milliseconds("orchq_time_to_first_token_seconds"),
        "ORCH-0241",
    ),
}
"""name -> (body transform, ORCH ID): caught by the ground-truth check on a configured server."""


RUN_MUTANTS: dict[str, tuple[Transform, str]] = {
    "skipped steps not counted": (_steps_finished_skip_skipped, "ORCH-0460"),
    "aborted runs counted as cancelled": (_aborted_runs_labelled_cancelled, "ORCH-0461"),
    "start delay observed per attempt": (_start_delay_per_attempt, "ORCH-0462"),
    "start delay in milliseconds": (
        _in_milliseconds("orchq_run_step_start_delay_seconds"),
        "ORCH-0462",
    ),
    "pending checkpoints never go down": (_pending_checkpoints_never_go_down(), "ORCH-0463"),
    "checkpoint wait observes cancelled checkpoints": (_wait_observes_cancelled, "ORCH-0464"),
    "webhook attempts answered 500 counted delivered": (
        _failed_attempts_counted_delivered,
        "ORCH-0420",
    ),
}
"""name -> (body transform, ORCH ID): caught by the run metrics check of the runs profile."""
