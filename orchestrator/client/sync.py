"""The blocking client, :class:`OrchClient`."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping
from types import TracebackType
from typing import Any, Self

import httpx
from httpx_sse import EventSource

from orchestrator.client.calls import (
    _EARLY_EOF,
    _STREAM_DROPS,
    DEFAULT_TIMEOUT,
    StreamEvent,
    StreamResult,
    T,
    _abort_run,
    _base_url,
    _Call,
    _cancel_task,
    _check_stream_response,
    _Collector,
    _create_run,
    _create_session,
    _create_webhook,
    _decide_checkpoint,
    _default_headers,
    _delete_session,
    _delete_webhook,
    _get_definition,
    _get_pool,
    _get_routing,
    _get_run,
    _get_run_audit,
    _get_session,
    _get_task,
    _get_webhook,
    _health,
    _list_approvals,
    _list_definitions,
    _list_deliveries,
    _list_pools,
    _list_runs,
    _list_webhooks,
    _metrics,
    _ready,
    _reason,
    _register_definition,
    _set_routing,
    _StreamState,
    _submit_task,
)
from orchestrator.client.errors import (
    OrchUnreachable,
)
from orchestrator.schemas import (
    Approval,
    ApprovalList,
    AuditLog,
    Definition,
    DefinitionSummary,
    DeliveryList,
    Health,
    Pool,
    Readiness,
    Routing,
    Run,
    RunList,
    SessionCreated,
    SessionInfo,
    Task,
    TaskAdmitted,
    Webhook,
    WebhookList,
)
from orchestrator.vocabulary import Determinism, FallbackMode, Priority

_sleep: Callable[[float], None] = time.sleep
"""How a reconnect waits: an indirection, so tests observe the delays without sleeping."""


class OrchClient:
    """Blocking client for one orchestrator.

    Use it as a context manager (or call :meth:`close`) to release connections.
    ``http`` lets tests and embedders supply their own :class:`httpx.Client`; it is
    then used as-is (its own timeout and transport) and left open on close. The
    base URL, token and headers are applied per request, so they work either way.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        if http is not None and transport is not None:
            raise ValueError("pass either http= or transport=, not both")
        self._base_url = _base_url(base_url)
        self._headers = _default_headers(token, headers)
        self._owns_http = http is None
        self._http = (
            http if http is not None else httpx.Client(timeout=timeout, transport=transport)
        )

    @property
    def base_url(self) -> str:
        return self._base_url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._base_url!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool (not an ``http=`` client supplied by the caller)."""
        if self._owns_http:
            self._http.close()

    def _call(self, call: _Call[T]) -> T:
        try:
            response = self._http.request(
                call.method,
                self._base_url + call.path,
                json=call.json,
                headers={**self._headers, **call.headers, "Accept": call.accept},
            )
        except httpx.TransportError as exc:
            raise OrchUnreachable(self._base_url, _reason(exc)) from exc
        return call.result(response)

    # -- sessions

    def create_session(
        self, ttl_seconds: int = 600, metadata: Mapping[str, Any] | None = None
    ) -> SessionCreated:
        """``POST /v1/sessions``; ``metadata`` is only sent when given."""
        return self._call(_create_session(ttl_seconds, metadata))

    def get_session(self, session_id: str) -> SessionInfo:
        """``GET /v1/sessions/{id}``; an expired session raises ``SESSION_EXPIRED`` (410)."""
        return self._call(_get_session(session_id))

    def delete_session(self, session_id: str) -> None:
        """``DELETE /v1/sessions/{id}``: its queued and running tasks end ``cancelled``."""
        self._call(_delete_session(session_id))

    # -- tasks

    def submit_task(
        self,
        session_id: str,
        prompt: str,
        *,
        priority: Priority = "interactive",
        pool: str = "default",
        max_tokens: int = 64,
        seed: int | None = None,
        determinism: Determinism = "best_effort",
        sampler_profile_version: str = "v1",
        temperature: float = 1.0,
        top_p: float = 1.0,
    ) -> TaskAdmitted:
        """``POST /v1/tasks``. The full ``params`` object is sent; ``seed`` only when set
        (without one the server picks it and returns it in ``TaskAdmitted.seed``)."""
        return self._call(
            _submit_task(
                session_id,
                prompt,
                priority=priority,
                pool=pool,
                max_tokens=max_tokens,
                seed=seed,
                determinism=determinism,
                sampler_profile_version=sampler_profile_version,
                temperature=temperature,
                top_p=top_p,
            )
        )

    def get_task(self, task_id: str) -> Task:
        """``GET /v1/tasks/{id}``."""
        return self._call(_get_task(task_id))

    def cancel_task(self, task_id: str) -> Task:
        """``DELETE /v1/tasks/{id}``; a task that already ended raises ``CONFLICT`` (409)."""
        return self._call(_cancel_task(task_id))

    # -- run definitions and runs (spec section 12)

    def register_definition(self, document: Mapping[str, Any]) -> Definition:
        """``POST /v1/definitions``; the same document again returns the registered one,
        another under the same name and version raises ``CONFLICT`` (409)."""
        return self._call(_register_definition(document))

    def get_definition(self, name: str, version: str) -> Definition:
        """``GET /v1/definitions/{name}/versions/{version}``."""
        return self._call(_get_definition(name, version))

    def list_definitions(self) -> list[DefinitionSummary]:
        """``GET /v1/definitions``, unwrapped from its ``{"definitions": [...]}`` envelope."""
        return self._call(_list_definitions())

    def create_run(
        self,
        session_id: str,
        definition: str,
        version: str,
        *,
        inputs: Mapping[str, Any] | None = None,
        seed: int | None = None,
        max_parallel: int | None = None,
        actor: str | None = None,
    ) -> Run:
        """``POST /v1/runs``: the run as created (state ``running``); ``actor`` is who
        starts it, for its audit log (``X-Orch-Actor``)."""
        return self._call(
            _create_run(
                session_id,
                definition,
                version,
                inputs=inputs,
                seed=seed,
                max_parallel=max_parallel,
                actor=actor,
            )
        )

    def get_run(self, run_id: str) -> Run:
        """``GET /v1/runs/{id}``: the run and every step."""
        return self._call(_get_run(run_id))

    def list_runs(
        self,
        *,
        state: str | None = None,
        definition: str | None = None,
        created_after: str | None = None,
        created_before: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> RunList:
        """``GET /v1/runs``: one page; pass its ``next_cursor`` as ``cursor`` for the next."""
        query = {
            "state": state,
            "definition": definition,
            "created_after": created_after,
            "created_before": created_before,
            "cursor": cursor,
            "limit": limit,
        }
        return self._call(_list_runs(query))

    def abort_run(self, run_id: str, actor: str | None = None) -> Run:
        """``DELETE /v1/runs/{id}``; a run that already ended raises ``CONFLICT`` (409)."""
        return self._call(_abort_run(run_id, actor))

    def decide_checkpoint(
        self,
        run_id: str,
        checkpoint_id: str,
        decision: str,
        decided_by: str,
        *,
        prompt: str | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> Approval:
        """``POST /v1/runs/{id}/checkpoints/{checkpoint_id}``: ``continue``, ``retry`` (with
        a ``prompt`` or ``inputs``) or ``abort``; a decided checkpoint raises ``CONFLICT``."""
        return self._call(
            _decide_checkpoint(
                run_id, checkpoint_id, decision, decided_by, prompt=prompt, inputs=inputs
            )
        )

    def list_approvals(
        self,
        *,
        state: str | None = None,
        run_id: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> ApprovalList:
        """``GET /v1/approvals``: one page of checkpoints, oldest first."""
        query = {"state": state, "run_id": run_id, "cursor": cursor, "limit": limit}
        return self._call(_list_approvals(query))

    def get_run_audit(self, run_id: str) -> AuditLog:
        """``GET /v1/runs/{id}/audit``: who created the run, decided its checkpoints, aborted it."""
        return self._call(_get_run_audit(run_id))

    # -- webhooks (spec section 12.9)

    def create_webhook(self, url: str, events: list[str], secret: str) -> Webhook:
        """``POST /v1/webhooks``: the subscription (its secret is never returned)."""
        return self._call(_create_webhook(url, events, secret))

    def list_webhooks(self) -> WebhookList:
        """``GET /v1/webhooks``: every subscription, configured or made through the API."""
        return self._call(_list_webhooks())

    def get_webhook(self, webhook_id: str) -> Webhook:
        """``GET /v1/webhooks/{id}``."""
        return self._call(_get_webhook(webhook_id))

    def delete_webhook(self, webhook_id: str) -> None:
        """``DELETE /v1/webhooks/{id}``; a configured one raises ``CONFLICT`` (409)."""
        return self._call(_delete_webhook(webhook_id))

    def list_deliveries(
        self,
        webhook_id: str,
        *,
        state: str | None = None,
        run_id: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> DeliveryList:
        """``GET /v1/webhooks/{id}/deliveries``: one page of the delivery log."""
        query = {"state": state, "run_id": run_id, "cursor": cursor, "limit": limit}
        return self._call(_list_deliveries(webhook_id, query))

    # -- pools, routing, health, metrics

    def list_pools(self) -> list[Pool]:
        """``GET /v1/pools``, unwrapped from its ``{"pools": [...]}`` envelope."""
        return self._call(_list_pools())

    def get_pool(self, pool_id: str) -> Pool:
        """``GET /v1/pools/{id}``."""
        return self._call(_get_pool(pool_id))

    def get_routing(self) -> Routing:
        """``GET /v1/admin/routing``."""
        return self._call(_get_routing())

    def set_routing(self, mode: FallbackMode) -> Routing:
        """``PUT /v1/admin/routing``; the server persists the mode."""
        return self._call(_set_routing(mode))

    def health(self) -> Health:
        """``GET /healthz``: the process is up (not that it can serve)."""
        return self._call(_health())

    def ready(self) -> Readiness:
        """``GET /readyz``; raises :class:`OrchError` ``POOL_UNREADY`` (503) while warming."""
        return self._call(_ready())

    def metrics_text(self) -> str:
        """``GET /metrics``: the Prometheus text exposition, unparsed."""
        return self._call(_metrics())

    # -- stream

    def stream(
        self,
        task_id: str,
        *,
        last_event_id: int | None = None,
        reconnect: bool = True,
        max_reconnects: int = 5,
    ) -> Generator[StreamEvent, None, None]:
        """Yield a task's events in id order, stopping after the first ``end`` or ``error``.

        A dropped connection (or one closed before ``end``/``error``) is resumed with
        ``Last-Event-ID`` after the server's ``retry:`` delay (at most 1 s), up to
        ``max_reconnects`` times in a row without a new event; replayed events are
        skipped, a gap raises :class:`StreamGapError`, and running out of reconnects
        raises :class:`StreamInterruptedError`. Wrap in :func:`contextlib.closing`
        when stopping early, so the connection is released at once.
        """
        state = _StreamState(task_id, last_event_id, reconnect, max_reconnects)
        url = self._base_url + state.path
        while True:
            try:
                with self._http.stream(
                    "GET", url, headers=state.headers(self._headers)
                ) as response:
                    state.connected = True
                    if not response.is_success:
                        response.read()
                    _check_stream_response(response)
                    for sse in EventSource(response).iter_sse():
                        event = state.feed(sse)
                        if event is not None:
                            yield event
                        if state.done:
                            return
                reason = _EARLY_EOF
            except _STREAM_DROPS as exc:
                if not state.connected:
                    raise OrchUnreachable(self._base_url, _reason(exc)) from exc
                reason = _reason(exc)
            _sleep(state.dropped(reason))

    def collect_stream(
        self,
        task_id: str,
        *,
        last_event_id: int | None = None,
        reconnect: bool = True,
        max_reconnects: int = 5,
    ) -> StreamResult:
        """Read a task's whole stream (see :meth:`stream`) into a :class:`StreamResult`.

        An ``error`` event is returned in ``StreamResult.error``, not raised: it is the
        task's outcome, not a failure of the call.
        """
        collector = _Collector(task_id)
        for event in self.stream(
            task_id,
            last_event_id=last_event_id,
            reconnect=reconnect,
            max_reconnects=max_reconnects,
        ):
            collector.add(event)
        return collector.result()
