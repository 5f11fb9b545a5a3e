"""Every error the app answers goes through the OrchQueue envelope.

FastAPI's own 422, Starlette's 404/405 and unexpected exceptions are mapped
here, so no route can leak a different error shape.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Route

from orchestrator.errors import ApiError
from orchestrator.store import is_storage_fault
from orchestrator.vocabulary import ErrorKind

log = logging.getLogger("orchestrator.api")

_STATUS_KINDS = {
    400: ErrorKind.INVALID_PARAMS,
    401: ErrorKind.UNAUTHORIZED,
    404: ErrorKind.NOT_FOUND,
    405: ErrorKind.METHOD_NOT_ALLOWED,
    409: ErrorKind.CONFLICT,
    413: ErrorKind.PAYLOAD_TOO_LARGE,
    415: ErrorKind.UNSUPPORTED_MEDIA_TYPE,
}


def request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def error_response(
    request: Request, error: ApiError, extra_headers: dict[str, str] | None = None
) -> JSONResponse:
    headers = error.headers()
    if extra_headers:
        headers.update(extra_headers)
    return JSONResponse(error.envelope(request_id(request)), error.status, headers=headers)


def _allowed_methods(request: Request, routes: Sequence[BaseRoute]) -> str:
    """Every method the path accepts, over all routes (Starlette lists only the first match)."""
    path = request.scope["path"]
    methods: set[str] = set()
    for route in [*routes, *request.app.routes]:
        if isinstance(route, Route) and route.methods and route.path_regex.match(path):
            methods |= route.methods
    return ", ".join(sorted(methods))


def _describe(error: dict[str, Any]) -> str:
    location = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body",))
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if error.get("type") == "json_invalid":
        return f"malformed JSON body: {error.get('ctx', {}).get('error', message)}"
    if error.get("type") == "extra_forbidden":
        message = "unknown field"
    return f"{location}: {message}" if location else message


def invalid_params(errors: Sequence[Any]) -> ApiError:
    """The INVALID_PARAMS error for pydantic/FastAPI validation errors: first problem first."""
    problems = [_describe(e) for e in errors]
    return ApiError(
        ErrorKind.INVALID_PARAMS,
        problems[0] if problems else "invalid request",
        details={"problems": problems[:20]},
    )


def unexpected_error(exc: Exception, method: str, path: str) -> ApiError:
    """The answer to an exception no layer handled: a retriable 503 when the database
    cannot be written (ORCH-0170), else 500 ``INTERNAL`` (logged with its traceback)."""
    if is_storage_fault(exc):
        log.warning("%s %s: the database cannot be written: %s", method, path, exc)
        return ApiError(
            ErrorKind.STORAGE_UNAVAILABLE,
            "the server cannot write its database right now; retry after the backoff",
        )
    log.error("unhandled error on %s %s", method, path, exc_info=exc)
    return ApiError(ErrorKind.INTERNAL, "internal error")


def install_error_handlers(app: FastAPI, routes: Sequence[BaseRoute]) -> None:
    """Answer every error with the envelope; a 405 lists what ``routes`` (those the app
    includes) and the app's own accept in its ``Allow``."""

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(request, exc)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(request, invalid_params(exc.errors()))

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        kind = _STATUS_KINDS.get(exc.status_code, ErrorKind.INVALID_PARAMS)
        if exc.status_code == 404:
            message = f"no route for {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request, routes) or headers.get("Allow", "")
        return error_response(request, ApiError(kind, message), headers)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        return error_response(request, unexpected_error(exc, request.method, request.url.path))

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
