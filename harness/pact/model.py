"""One pact interaction as data, the pact's parties, and how an interaction is declared on a Pact.

IDs the server makes up (session and task IDs) are injected from the provider
state: the example path ``/v1/sessions/sess_1`` carries a ``ProviderState``
generator ``/v1/sessions/${session_id}``, which the verifier fills from the JSON
the state handler answers (:mod:`harness.pact.states`).

Text bodies (the SSE stream) are pinned by raw regex matching rules, all of
which must match (``combine: AND``): a ``match.regex`` as a text body would be
serialised literally.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pact import Pact, generate
from pact.match.matcher import AbstractMatcher, GenericMatcher

CONSUMER = "orchq-client"
PROVIDER = "orchestratord"
PACT_FILE = f"{CONSUMER}-{PROVIDER}.json"
REQUIREMENTS_COMMENT = "requirements"
"""Key of an interaction's ``comments`` listing the requirement IDs it pins, so a pact file
names them itself (``orchq pact check`` reads them, from any team's pact)."""


@dataclass(frozen=True)
class Interaction:
    """One HTTP interaction: the request our client sends and the answer it relies on.

    ``states`` are provider state names (see :data:`harness.pact.states.STATES`);
    ``path_expr`` is the provider-state expression that rebuilds ``path`` from the
    state's values. ``sse_rules`` are regexes the whole text body must match.
    """

    description: str
    req: tuple[str, ...]
    method: str
    path: str
    status: int
    states: tuple[str, ...] = ()
    path_expr: str | None = None
    request_headers: Mapping[str, str] = field(default_factory=dict)
    request_body: Any = None
    response_headers: Mapping[str, Any] = field(default_factory=dict)
    response_body: Any = None
    sse_body: str | None = None
    sse_rules: tuple[str, ...] = ()
    request_text: tuple[str, str] | None = None
    """``(content type, text)`` of a request body that is not JSON."""
    query: Mapping[str, Any] = field(default_factory=dict)
    """Query parameters: a value or a matcher (:func:`from_state` for a state's value)."""
    profile: str | None = None
    """The optional profile of the spec the interaction belongs to (``runs``), if any: a
    target that does not claim it is not held to the interaction."""


def from_state(example: str, expression: str) -> AbstractMatcher[str]:
    """A request value the verifier takes from the provider state (``${name}``)."""
    return GenericMatcher("type", value=example, generator=generate.provider_state(expression))


def path_from_state(example: str, expression: str) -> AbstractMatcher[str]:
    """A request path the verifier builds from the provider state.

    The path must still match its own template (``/v1/tasks/{id}/stream``, each ``${name}``
    one segment): a stub server serving the pact matches requests by it, and a ``type``
    matcher would let ``GET /v1/pools`` match ``GET /v1/tasks/{id}``.
    """
    parts = re.split(r"\$\{[^}]+\}", expression)
    pattern = "^" + "[^/]+".join(re.escape(part) for part in parts) + "$"
    return GenericMatcher(
        "regex", value=example, regex=pattern, generator=generate.provider_state(expression)
    )


def add_interaction(pact: Pact, interaction: Interaction) -> None:
    """Declare ``interaction`` on ``pact`` (before ``pact.serve()``: a served Pact is locked)."""
    declared = pact.upon_receiving(interaction.description)
    for state in interaction.states:
        declared.given(state)
    declared.set_comment(REQUIREMENTS_COMMENT, list(interaction.req))
    path: str | AbstractMatcher[Any] = interaction.path
    if interaction.path_expr is not None:
        path = path_from_state(interaction.path, interaction.path_expr)
    declared.with_request(interaction.method, path)
    for name, value in interaction.query.items():
        declared.with_query_parameter(name, value)
    for name, value in interaction.request_headers.items():
        declared.with_header(name, value, part="Request")
    if interaction.request_body is not None:
        declared.with_body(
            interaction.request_body, content_type="application/json", part="Request"
        )
    if interaction.request_text is not None:
        content_type, text = interaction.request_text
        declared.with_body(text, content_type=content_type, part="Request")
    declared.will_respond_with(interaction.status)
    for name, value in interaction.response_headers.items():
        declared.with_header(name, value, part="Response")
    if interaction.response_body is not None:
        declared.with_body(
            interaction.response_body, content_type="application/json", part="Response"
        )
    if interaction.sse_body is not None:
        declared.with_body(interaction.sse_body, content_type="text/event-stream", part="Response")
        matchers = [{"match": "regex", "regex": rx} for rx in interaction.sse_rules]
        declared.with_matching_rules(
            {"body": {"$": {"combine": "AND", "matchers": matchers}}}, part="Response"
        )
