"""Bearer authentication on every operation of the OpenAPI document (spec section 1.2).

With a token configured, every ``/v1/`` operation of
``contracts/openapi/orchqueue.yaml`` is sent four ways that must each be
refused with 401 ``UNAUTHORIZED`` in the error envelope (ORCH-0007): no
``Authorization`` header, a wrong token, the right token under another scheme,
and an empty token. The open routes of ORCH-0008 (``/healthz``, ``/readyz``,
``/metrics``) must answer the same four requests without a 401. The right
token must then get past authentication on every operation, so a server that
refuses everything cannot pass.

The operations come from the document, not from a list here: an operation added
to the contract is covered at once. Against ``--orch-url`` with ``--orch-token``
the matrix runs on that target (it needs no configuration of its own); against
``--orch-url`` without a token it is not verifiable (the target has no token to
check), and in-process it runs on an orchestratord configured with one.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import httpx
import pytest

from harness.fuzz.document import contract_path, operations
from harness.plugin.target import NOT_VERIFIABLE_LIVE, ServeFactory, Target, live_url
from harness.wire import Wire, error_kind, error_problems, expect

pytestmark = pytest.mark.contract

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
"""The routes ORCH-0008 keeps open whatever the token."""
PROBE_ID = "auth-probe"
"""What every path parameter is filled with: the request is refused before it matters."""
NO_TOKEN_SKIP = (
    f"{NOT_VERIFIABLE_LIVE}: the target was given no --orch-token, so it has no token whose "
    "checking could be verified"
)


def refused_headers(token: str) -> dict[str, dict[str, str]]:
    """The four ways of not presenting ``token``, by name."""
    return {
        "no Authorization header": {},
        "a wrong token": {"Authorization": f"Bearer {token}-wrong"},
        "another scheme": {"Authorization": f"Basic {token}"},
        "an empty token": {"Authorization": "Bearer"},
    }


@pytest.fixture
def token_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """A target with a token: ``--orch-url`` with ``--orch-token``, else in-process with one."""
    if live_url(request.config) is not None:
        if not request.config.getoption("orch_token", None):
            pytest.skip(NO_TOKEN_SKIP)
        target: Target = request.getfixturevalue("orch_target")
        yield target
        return
    serve: ServeFactory = request.getfixturevalue("orch_serve")
    yield serve(auth_token=f"conformance-{secrets.token_hex(8)}")


def _operations() -> list[tuple[str, str, str]]:
    return operations(contract_path())


def _call(wire: Wire, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    """One call with path parameters filled in, and an empty JSON object as its body if any."""
    concrete = re.sub(r"\{[^}]+\}", PROBE_ID, path)
    if method in ("POST", "PUT", "PATCH"):
        headers = {"Content-Type": "application/json", **headers}
        return wire.http.request(method, concrete, headers=headers, content=b"{}")
    return wire.http.request(method, concrete, headers=headers)


@pytest.mark.req("ORCH-0007", "ORCH-0014", "ORCH-0019")
def test_every_v1_operation_refuses_a_missing_or_wrong_bearer_token(token_target: Target) -> None:
    assert token_target.token is not None
    failures: list[str] = []
    with Wire(token_target.url) as anonymous:
        for operation_id, method, path in _operations():
            if not path.startswith("/v1/"):
                continue
            for how, headers in refused_headers(token_target.token).items():
                response = _call(anonymous, method, path, headers)
                what = f"{operation_id} ({method} {response.request.url.path}) with {how}"
                kind = error_kind(response)
                if response.status_code != 401 or kind != "UNAUTHORIZED":
                    failures.append(
                        f"ORCH-0007: {what} must answer 401 UNAUTHORIZED while a token is "
                        f"configured; got {response.status_code} {kind or response.text[:120]}"
                    )
                    continue
                problems = error_problems(response)
                if problems:
                    failures.append(f"ORCH-0014: {what}: " + "; ".join(problems))
    expect(not failures, "\n".join(failures))


@pytest.mark.req("ORCH-0008", "ORCH-0007")
def test_open_routes_stay_open_and_the_right_token_passes(token_target: Target) -> None:
    assert token_target.token is not None
    failures: list[str] = []
    listed = {path for _, _, path in _operations()}
    missing = sorted(OPEN_PATHS - listed)
    expect(not missing, f"ORCH-0008: the OpenAPI document lacks the open routes {missing}")
    with Wire(token_target.url) as anonymous:
        for operation_id, method, path in _operations():
            if path not in OPEN_PATHS:
                continue
            for how, headers in refused_headers(token_target.token).items():
                status = _call(anonymous, method, path, headers).status_code
                if status == 401:
                    failures.append(
                        f"ORCH-0008: {operation_id} ({method} {path}) with {how} must be served "
                        "without authentication; got 401"
                    )
    with Wire(token_target.url, token_target.auth_headers()) as authorised:
        for operation_id, method, path in _operations():
            if not path.startswith("/v1/"):
                continue
            response = _call(authorised, method, path, {})
            if response.status_code == 201 and method == "POST" and path == "/v1/sessions":
                authorised.sessions.append(str(response.json().get("session_id")))
            if response.status_code == 401:
                failures.append(
                    f"ORCH-0007: {operation_id} ({method} {response.request.url.path}) with the "
                    f"configured bearer token must get past authentication; got 401: "
                    f"{response.text[:120]}"
                )
    expect(not failures, "\n".join(failures))
