"""``POST /v1/tasks`` without FastAPI's per-request machinery.

Admission is the hottest route: under load, FastAPI's route matching and
dependency solving cost about as much as the admission itself (profiled in
bench/RESULTS.md). This layer sits behind the edge middleware (request id,
auth, body limit and media type still apply) and answers the one operation
directly, validating with pydantic's JSON mode. The FastAPI route in
``routes.py`` still declares the operation for OpenAPI and behaves the same if
this layer is not installed; both call :meth:`Orchestrator.admit`.
"""

from __future__ import annotations

from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator.api.errors import invalid_params
from orchestrator.api.middleware import send_error
from orchestrator.compact_json import dumps
from orchestrator.errors import ApiError
from orchestrator.runtime import Orchestrator
from orchestrator.schemas import TaskCreate

ADMISSION_PATH = "/v1/tasks"


def is_admission(scope: Scope) -> bool:
    """Whether ``scope`` is a ``POST /v1/tasks`` request."""
    return bool(
        scope["type"] == "http" and scope["path"] == ADMISSION_PATH and scope["method"] == "POST"
    )


class FastAdmission:
    def __init__(self, app: ASGIApp, *, orchestrator: Orchestrator) -> None:
        self.app = app
        self._orchestrator = orchestrator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not is_admission(scope):
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        request_id = scope["state"]["request_id"]
        try:
            try:
                task = TaskCreate.model_validate_json(body)
            except ValidationError as exc:
                raise invalid_params(exc.errors()) from None
            view = await self._orchestrator.admit(task)
        except ApiError as error:
            await send_error(send, error, request_id, with_request_id=False)
            return
        payload = dumps(view)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"location", f"/v1/tasks/{view['task_id']}".encode()),
        ]
        await send({"type": "http.response.start", "status": 202, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
