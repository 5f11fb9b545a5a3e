"""The ASGI application: FastAPI with orchestratord's routes, edge and error handlers.

Every request takes one path: the edge middleware (request id, auth, body
limit, media type, connection limits), then FastAPI's routing to the one
handler of its operation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from orchestrator import __version__
from orchestrator.api.contract import install_openapi
from orchestrator.api.errors import install_error_handlers
from orchestrator.api.middleware import EdgeMiddleware
from orchestrator.api.routes import every_route, router
from orchestrator.config import Config, ReplicaConfig
from orchestrator.connections import ConnectionGuard, ConnectionLimits
from orchestrator.engines import Engine, build_engine
from orchestrator.runtime import Clock, Orchestrator
from orchestrator.store.lock import DatabaseLock

API_TITLE = "OrchQueue v1"


def create_app(
    config: Config | None = None,
    *,
    clock: Clock | None = None,
    engine_factory: Callable[[ReplicaConfig], Engine] = build_engine,
    database_lock: DatabaseLock | None = None,
) -> FastAPI:
    """An orchestratord app; its orchestrator starts and stops with the ASGI lifespan.

    Each app has its own database, metrics registry and pools, so several can
    run in one process (tests, xdist workers). The orchestrator takes its
    database's lock at start-up (one server per database); ``database_lock`` is
    one the caller already holds (``orchq serve`` takes it before binding).
    ``app.state.connections`` is the :class:`ConnectionGuard` the server's
    protocol must be built with (:mod:`orchestrator.server` does).
    """
    config = config or Config()
    orchestrator = Orchestrator(
        config, clock=clock, engine_factory=engine_factory, database_lock=database_lock
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await orchestrator.start()
        except Exception as exc:
            app.state.start_error = exc  # for a caller that reports it (ServerThread)
            raise
        try:
            yield
        finally:
            await orchestrator.stop()

    app = FastAPI(
        title=API_TITLE,
        version=__version__,
        summary="Priority admission queue in front of pools of LLM engine replicas.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.orchestrator = orchestrator
    connections = ConnectionGuard(
        ConnectionLimits(
            header_timeout_s=config.header_timeout_s,
            max_header_bytes=config.max_header_bytes,
            max_connections=config.max_connections,
        )
    )
    app.state.connections = connections
    app.include_router(router)
    install_error_handlers(app, every_route())
    install_openapi(app)
    app.add_middleware(
        EdgeMiddleware,
        auth_token=config.auth_token,
        max_body_bytes=config.max_body_bytes,
        connections=connections,
    )
    return app
