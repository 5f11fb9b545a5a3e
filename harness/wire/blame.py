"""Which requirement an answer breaks that the typed client refused to read.

A check that drives the target through :class:`orchestrator.client.OrchClient`
fails with :class:`~orchestrator.client.OrchProtocolError` when an answer breaks
the contract (not the schema of its operation, not an error envelope, a stream
that skips an id). That is a failure of the requirement stating the answer, not
of whatever the check was about: :func:`client_blame` names it, and the
conformance suite registers it with :func:`harness.checks.register_explainer`.
"""

from __future__ import annotations

__all__ = ["ENDPOINT_REQUIREMENTS", "client_blame"]

ENDPOINT_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "POST /v1/sessions": ("ORCH-0026",),
    "GET /v1/sessions/{id}": ("ORCH-0027",),
    "DELETE /v1/sessions/{id}": ("ORCH-0033",),
    "POST /v1/tasks": ("ORCH-0042",),
    "GET /v1/tasks/{id}": ("ORCH-0051",),
    "DELETE /v1/tasks/{id}": ("ORCH-0066",),
    "GET /v1/tasks/{id}/stream": ("ORCH-0071", "ORCH-0076"),
    "GET /v1/pools": ("ORCH-0119", "ORCH-0120", "ORCH-0121"),
    "GET /v1/pools/{id}": ("ORCH-0119", "ORCH-0120", "ORCH-0121"),
    "GET /v1/admin/routing": ("ORCH-0124",),
    "PUT /v1/admin/routing": ("ORCH-0125",),
    "GET /healthz": ("ORCH-0129",),
    "GET /readyz": ("ORCH-0130",),
    "GET /metrics": ("ORCH-0131",),
    "POST /v1/definitions": ("ORCH-0312", "ORCH-0313"),
    "GET /v1/definitions": ("ORCH-0314",),
    "GET /v1/definitions/{name}/versions/{version}": ("ORCH-0314",),
    "POST /v1/runs": ("ORCH-0317",),
    "GET /v1/runs": ("ORCH-0323",),
    "GET /v1/runs/{id}": ("ORCH-0320",),
    "DELETE /v1/runs/{id}": ("ORCH-0324",),
}
"""The client's name of each operation -> the requirements stating its answer."""

ENVELOPE = ("ORCH-0014",)
"""An error answer that is not the error envelope."""
STREAM_IDS = ("ORCH-0072",)
"""A stream that skipped or repeated an event id."""


def client_blame(exc: BaseException) -> tuple[str, ...] | None:
    """The requirements an exception of the typed client says the target broke, or None."""
    from orchestrator.client import OrchProtocolError, StreamGapError

    if isinstance(exc, StreamGapError):
        return STREAM_IDS
    if not isinstance(exc, OrchProtocolError):
        return None
    if exc.status >= 400:
        return ENVELOPE
    return ENDPOINT_REQUIREMENTS.get(exc.endpoint)
