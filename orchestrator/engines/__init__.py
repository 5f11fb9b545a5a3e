"""LLM engines behind replicas: one small protocol, several implementations."""

from __future__ import annotations

from orchestrator.config import ReplicaConfig
from orchestrator.engines.base import (
    Engine,
    EngineError,
    EngineRateLimited,
    EngineReset,
    EngineUnavailable,
    GenerationRequest,
    Token,
)
from orchestrator.engines.mock import MockEngine

__all__ = [
    "Engine",
    "EngineError",
    "EngineRateLimited",
    "EngineReset",
    "EngineUnavailable",
    "GenerationRequest",
    "MockEngine",
    "Token",
    "build_engine",
]


def build_engine(replica: ReplicaConfig) -> Engine:
    """The engine a replica's config asks for."""
    if replica.engine == "openai":
        from orchestrator.engines.openai import OpenAIEngine

        if replica.base_url is None or replica.model is None:  # guaranteed by ReplicaConfig
            raise ValueError(
                f"replica {replica.replica_id}: openai engine needs base_url and model"
            )
        return OpenAIEngine(
            replica_id=replica.replica_id,
            base_url=replica.base_url,
            model=replica.model,
            api_key=replica.api_key,
            request_timeout_ms=replica.request_timeout_ms,
        )
    return MockEngine(
        replica.replica_id,
        token_delay_ms=replica.token_delay_ms,
        faults=replica.faults,
    )
