"""What orchestratord's uvicorn logs: each request with --access-log, no misleading advice.

Spec: ORCH-0161 (an upgrade is a plain request, on purpose), ORCH-0178 (a real
``orchq serve --access-log``: tests/orchestrator/test_connection_limits.py).
"""

from __future__ import annotations

import logging

import pytest

from orchestrator.config import Config
from orchestrator.connections import ConnectionGuard, ConnectionLimits
from orchestrator.server import _uvicorn_config


def _record(message: str, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.error", level, __file__, 1, message, None, None)


@pytest.mark.req("ORCH-0161")
def test_uvicorns_advice_to_install_websockets_is_not_logged() -> None:
    _uvicorn_config(object(), "127.0.0.1", 0, False, Config(), ConnectionGuard(ConnectionLimits()))
    errors = logging.getLogger("uvicorn.error")
    advice = (
        "No supported WebSocket library detected. Please use \"pip install 'uvicorn[standard]'\""
    )
    assert not errors.filter(_record(advice))
    assert errors.filter(_record("Invalid HTTP request received."))


@pytest.mark.req("ORCH-0178")
def test_access_log_lets_uvicorns_request_lines_through() -> None:
    guard = ConnectionGuard(ConnectionLimits())
    _uvicorn_config(object(), "127.0.0.1", 0, True, Config(), guard)
    assert logging.getLogger("uvicorn.access").isEnabledFor(logging.INFO)
