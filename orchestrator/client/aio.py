"""The async client, :class:`AsyncOrchClient`: :class:`OrchClient`'s twin, awaited."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Self

import anyio
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

_asleep: Callable[[float], Awaitable[None]] = anyio.sleep
"""How a reconnect waits: an indirection, so tests observe the delays without sleeping."""


class AsyncOrchClient:
    """Async twin of :class:`OrchClient`: same methods, awaited; ``stream`` is an async iterator."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        if http is not None and transport is not None:
            raise ValueError("pass either http= or transport=, not both")
        self._base_url = _base_url(base_url)
        self._headers = _default_headers(token, headers)
        self._owns_http = http is None
        self._http = (
            http if http is not None else httpx.AsyncClient(timeout=timeout, transport=transport)
        )

    @property
    def base_url(self) -> str:
        return self._base_url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (not an ``http=`` client supplied by the caller)."""
        if self._owns_http:
            await self._http.aclose()

    async def _call(self, call: _Call[T]) -> T:
        try:
            response = await self._http.request(
                call.method,
                self._base_url + call.path,
                json=call.json,
                headers={**self._headers, **call.headers, "Accept": call.accept},
            )
        except httpx.TransportError as exc:
            raise OrchUnreachable(self._base_url, _reason(exc)) from exc
        return call.result(response)

    # -- sessions

    async def create_session(
        self, ttl_seconds: int = 600, metadata: Mapping[str, Any] | None = None
    ) -> SessionCreated:
        """``POST /v1/sessions``; ``metadata`` is only sent when given."""
        return await self._call(_create_session(ttl_seconds, metadata))

    async def get_session(self, session_id: str) -> SessionInfo:
        """``GET /v1/sessions/{id}``; an expired session raises ``SESSION_EXPIRED`` (410)."""
        return await self._call(_get_session(session_id))

    async def delete_session(self, session_id: str) -> None:
        """``DELETE /v1/sessions/{id}``: its queued and running tasks end ``cancelled``."""
        await self._call(_delete_session(session_id))

    # -- tasks

    async def submit_task(
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
        """``POST /v1/tasks``. The full ``params`` object is sent; ``seed`` only when set."""
        return await self._call(
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

    async def get_task(self, task_id: str) -> Task:
        """``GET /v1/tasks/{id}``."""
        return await self._call(_get_task(task_id))

    async def cancel_task(self, task_id: str) -> Task:
        """``DELETE /v1/tasks/{id}``; a task that already ended raises ``CONFLICT`` (409)."""
        return await self._call(_cancel_task(task_id))

    # -- run definitions and runs (spec section 12)

    async def register_definition(self, document: Mapping[str, Any]) -> Definition:
        """``POST /v1/definitions``; the same document again returns the registered one,
        another under the same name and version raises ``CONFLICT`` (409)."""
        return await self._call(_register_definition(document))

    async def get_definition(self, name: str, version: str) -> Definition:
        """``GET /v1/definitions/{name}/versions/{version}``."""
        return await self._call(_get_definition(name, version))

    async def list_definitions(self) -> list[DefinitionSummary]:
        """``GET /v1/definitions``, unwrapped from its ``{"definitions": [...]}`` envelope."""
        return await self._call(_list_definitions())

    async def create_run(
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
        return await self._call(
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

    async def get_run(self, run_id: str) -> Run:
        """``GET /v1/runs/{id}``: the run and every step."""
        return await self._call(_get_run(run_id))

    async def list_runs(
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
        return await self._call(_list_runs(query))

    async def abort_run(self, run_id: str, actor: str | None = None) -> Run:
        """``DELETE /v1/runs/{id}``; a run that already ended raises ``CONFLICT`` (409)."""
        return await self._call(_abort_run(run_id, actor))

    async def decide_checkpoint(
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
        return await self._call(
            _decide_checkpoint(
                run_id, checkpoint_id, decision, decided_by, prompt=prompt, inputs=inputs
            )
        )

    async def list_approvals(
        self,
        *,
        state: str | None = None,
        run_id: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> ApprovalList:
        """``GET /v1/approvals``: one page of checkpoints, oldest first."""
        query = {"state": state, "run_id": run_id, "cursor": cursor, "limit": limit}
        return await self._call(_list_approvals(query))

    async def get_run_audit(self, run_id: str) -> AuditLog:
        """``GET /v1/runs/{id}/audit``: who created the run, decided its checkpoints, aborted it."""
        return await self._call(_get_run_audit(run_id))

    # -- webhooks (spec section 12.9)

    async def create_webhook(self, url: str, events: list[str], secret: str) -> Webhook:
        """``POST /v1/webhooks``: the subscription (its secret is never returned)."""
        return await self._call(_create_webhook(url, events, secret))

    async def list_webhooks(self) -> WebhookList:
        """``GET /v1/webhooks``: every subscription, configured or made through the API."""
        return await self._call(_list_webhooks())

    async def get_webhook(self, webhook_id: str) -> Webhook:
        """``GET /v1/webhooks/{id}``."""
        return await self._call(_get_webhook(webhook_id))

    async def delete_webhook(self, webhook_id: str) -> None:
        """``DELETE /v1/webhooks/{id}``; a configured one raises ``CONFLICT`` (409)."""
        return await self._call(_delete_webhook(webhook_id))

    async def list_deliveries(
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
        return await self._call(_list_deliveries(webhook_id, query))

    # -- pools, routing, health, metrics

    async def list_pools(self) -> list[Pool]:
        """``GET /v1/pools``, unwrapped from its ``{"pools": [...]}`` envelope."""
        return await self._call(_list_pools())

    async def get_pool(self, pool_id: str) -> Pool:
        """``GET /v1/pools/{id}``."""
        return await self._call(_get_pool(pool_id))

    async def get_routing(self) -> Routing:
        """``GET /v1/admin/routing``."""
        return await self._call(_get_routing())

    async def set_routing(self, mode: FallbackMode) -> Routing:
        """``PUT /v1/admin/routing``; the server persists the mode."""
        return await self._call(_set_routing(mode))

    async def health(self) -> Health:
        """``GET /healthz``: the process is up (not that it can serve)."""
        return await self._call(_health())

    async def ready(self) -> Readiness:
        """``GET /readyz``; raises :class:`OrchError` ``POOL_UNREADY`` (503) while warming."""
        return await self._call(_ready())

    async def metrics_text(self) -> str:
        """``GET /metrics``: the Prometheus text exposition, unparsed."""
        return await self._call(_metrics())

    # -- stream

    async def stream(
        self,
        task_id: str,
        *,
        last_event_id: int | None = None,
        reconnect: bool = True,
        max_reconnects: int = 5,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Async twin of :meth:`OrchClient.stream`; stop early via :func:`contextlib.aclosing`."""
        state = _StreamState(task_id, last_event_id, reconnect, max_reconnects)
        url = self._base_url + state.path
        while True:
            try:
                async with self._http.stream(
                    "GET", url, headers=state.headers(self._headers)
                ) as response:
                    state.connected = True
                    if not response.is_success:
                        await response.aread()
                    _check_stream_response(response)
                    async with contextlib.aclosing(EventSource(response).aiter_sse()) as events:
                        async for sse in events:
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
            await _asleep(state.dropped(reason))

    async def collect_stream(
        self,
        task_id: str,
        *,
        last_event_id: int | None = None,
        reconnect: bool = True,
        max_reconnects: int = 5,
    ) -> StreamResult:
        """Async twin of :meth:`OrchClient.collect_stream`."""
        collector = _Collector(task_id)
        async for event in self.stream(
            task_id,
            last_event_id=last_event_id,
            reconnect=reconnect,
            max_reconnects=max_reconnects,
        ):
            collector.add(event)
        return collector.result()
