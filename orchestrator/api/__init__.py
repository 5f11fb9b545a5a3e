"""The OrchQueue v1 HTTP API (FastAPI)."""

from orchestrator.api.app import create_app

__all__ = ["create_app"]
