"""Pact interactions checked against an OpenAPI document: the contract claims only what exists.

Every HTTP interaction of a pact file must fit the OpenAPI document: its path
matches a declared template (a concrete path before a templated one), its method
is declared for that path, its response status is declared for the operation
(exactly, as ``4XX`` or as ``default``), each header it sends or expects is
declared (``Accept``, ``Content-Type`` and ``Authorization`` as OpenAPI treats
them: media types of the operation, a security requirement or a declared 401)
and its values validate, and its request and response bodies validate against
the declared schemas. Bodies are the pact's own examples: Pact matchers live
beside them (``matchingRules``), so each matcher counts as its example value.

Schemas are JSON Schema 2020-12, the dialect of OpenAPI 3.1 and 3.2, checked by
jsonschema-rs; ``contentSchema`` of a string with ``contentMediaType:
application/json`` is asserted too (the data of a server-sent event is a JSON
text). A ``text/event-stream`` body is split into events as an EventSource
does and each event checked against ``itemSchema`` (OpenAPI 3.2), the whole list
against ``schema``. OpenAPI 3.0 documents are read with their ``nullable`` and
boolean ``exclusiveMinimum``/``exclusiveMaximum`` turned into 2020-12.

What a document does not declare may still be pinned as refused: an undeclared
path answered 404, an undeclared method 405, a request body of an undeclared
media type 415, and a request body the schema rejects answered 400 or 422. Their
error body is checked against the error schema the document uses everywhere
(when it uses exactly one).

Each finding names the interaction's description and the requirement IDs at
stake: those the interaction lists in ``comments.requirements`` (how orchq's
own pact names them), else the ``x-req-id`` of the operation it claims."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from harness.fuzz.sse import parse as parse_sse
from harness.pact.openapi_document import Document, Operation

REQUIREMENTS_KEY = "requirements"
_REFUSED_REQUEST = frozenset({400, 422})
"""Statuses that say the request's own content was refused: its body need not validate."""
_HEADERS_OF_THE_TRANSPORT = frozenset(
    {"content-length", "date", "connection", "transfer-encoding", "server", "vary"}
)


@dataclass(frozen=True)
class Finding:
    """One way an interaction claims something the OpenAPI document does not declare."""

    pact: str
    description: str
    requirements: tuple[str, ...]
    message: str

    def line(self) -> str:
        ids = ", ".join(self.requirements) or "no requirement ID named"
        return f"{self.pact}: {self.description!r} ({ids}): {self.message}"


@dataclass
class Report:
    """Findings of one pact file, and what was checked."""

    pact: str
    checked: int = 0
    skipped: list[str] = field(default_factory=list)
    """Descriptions of interactions that are not HTTP (messages): nothing to compare."""
    findings: list[Finding] = field(default_factory=list)


@dataclass(frozen=True)
class _Body:
    content_type: str | None
    value: Any
    text: bool
    """``value`` is text (not parsed JSON)."""


def _headers(raw: Any) -> dict[str, list[str]]:
    """A pact's headers (V4 lists, V2/V3 strings) keyed by their spelling in the pact."""
    out: dict[str, list[str]] = {}
    if isinstance(raw, dict):
        for name, value in raw.items():
            values = value if isinstance(value, list) else [value]
            out[str(name)] = [str(v) for v in values]
    return out


def _header(headers: Mapping[str, list[str]], name: str) -> str | None:
    for key, values in headers.items():
        if key.lower() == name.lower() and values:
            return values[0]
    return None


def _media_type(value: str | None) -> str | None:
    return value.split(";")[0].strip().lower() if value else None


def _body(part: Mapping[str, Any]) -> _Body | None:
    """The example body of a request or response, decoded by its content type."""
    if "body" not in part:
        return None
    raw = part["body"]
    headers = _headers(part.get("headers"))
    declared = _header(headers, "Content-Type")
    if isinstance(raw, dict) and "content" in raw and ("contentType" in raw or "encoded" in raw):
        declared = raw.get("contentType") or declared  # V4: {content, contentType, encoded}
        content = raw["content"]
        if raw.get("encoded") in ("base64", True) and isinstance(content, str):
            content = base64.b64decode(content).decode("utf-8", errors="replace")
        raw = content
    media = _media_type(declared)
    is_json = media is None or media == "application/json" or media.endswith("+json")
    if isinstance(raw, str) and is_json and media is not None:
        try:
            return _Body(media, json.loads(raw), text=False)
        except ValueError:
            return _Body(media, raw, text=True)
    if raw is None and media is None:
        return None
    return _Body(media or "application/json", raw, text=isinstance(raw, str) and not is_json)


def _query(raw: Any) -> dict[str, list[str]]:
    if isinstance(raw, str):
        out: dict[str, list[str]] = {}
        for name, value in parse_qsl(raw, keep_blank_values=True):
            out.setdefault(name, []).append(value)
        return out
    return _headers(raw)


def _requirements(interaction: Mapping[str, Any]) -> tuple[str, ...]:
    comments = interaction.get("comments")
    ids = comments.get(REQUIREMENTS_KEY) if isinstance(comments, dict) else None
    if isinstance(ids, list):
        return tuple(str(i) for i in ids)
    return ()


# ---------------------------------------------------------------- checking


def _coerce(schema: Any, value: str) -> Any:
    """A parameter's text as the JSON value its schema types it as (``"1"`` -> 1)."""
    kinds = schema.get("type") if isinstance(schema, dict) else None
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "integer" in kinds and re.fullmatch(r"-?\d+", value):
        return int(value)
    if "number" in kinds:
        try:
            return float(value)
        except ValueError:
            return value
    if "boolean" in kinds and value in ("true", "false"):
        return value == "true"
    return value


def _media_declared(content: Mapping[str, Any], media: str) -> Mapping[str, Any] | None:
    """The media type object serving ``media`` (exact, then ``type/*``, then ``*/*``)."""
    lowered = {key.lower().split(";")[0].strip(): value for key, value in content.items()}
    for key in (media, media.split("/")[0] + "/*", "*/*"):
        if key in lowered:
            value = lowered[key]
            return value if isinstance(value, dict) else {}
    return None


class _Checker:
    def __init__(self, document: Document, pact: str) -> None:
        self.doc = document
        self.pact = pact

    def check(self, interaction: Mapping[str, Any]) -> Iterator[Finding]:
        description = str(interaction.get("description", "(no description)"))
        own_ids = _requirements(interaction)
        request: Mapping[str, Any] = interaction.get("request") or {}
        response: Mapping[str, Any] = interaction.get("response") or {}
        method = str(request.get("method", "GET")).upper()
        path = str(request.get("path", "/")).split("?")[0]
        status = int(response.get("status", 200))

        def finding(message: str, operation: Operation | None = None) -> Finding:
            ids = own_ids or (operation.requirements() if operation else ())
            return Finding(self.pact, description, ids, message)

        matched = self.doc.match_path(path)
        if matched is None:
            if status == 404:
                refused = self._refusal_body(response, "an undeclared path")
                yield from (finding(m) for m in refused)
                return
            yield finding(f"path {path} matches no path of the OpenAPI document")
            return
        template, item, path_values = matched
        operation = self.doc.operation(template, item, method)
        if operation is None:
            if status == 405:
                yield from (
                    finding(m) for m in self._refusal_body(response, "an undeclared method")
                )
                return
            allowed = ", ".join(self.doc.methods(item)) or "none"
            yield finding(f"method {method} is not declared for {template} (declared: {allowed})")
            return
        for message in self._request(operation, request, status, path_values):
            yield finding(message, operation)
        for message in self._response(operation, response, status):
            yield finding(message, operation)

    # ------------------------------------------------------------ request

    def _request(
        self,
        operation: Operation,
        request: Mapping[str, Any],
        status: int,
        path_values: Mapping[str, str],
    ) -> Iterator[str]:
        where = f"request of {operation.name}"
        params = {(str(p.get("in")), str(p.get("name")).lower()): p for p in operation.parameters}
        for name, value in path_values.items():
            declared = params.get(("path", name.lower()))
            if declared is None:
                yield f"{where}: path parameter {name} is not declared"
                continue
            yield from self._value(f"{where}: path parameter {name}", declared, value, status)
        for name, values in _query(request.get("query")).items():
            declared = params.get(("query", name.lower()))
            if declared is None:
                yield f"{where}: query parameter {name} is not declared"
                continue
            for value in values:
                yield from self._value(f"{where}: query parameter {name}", declared, value, status)
        headers = _headers(request.get("headers"))
        for name, values in headers.items():
            lowered = name.lower()
            if lowered in ("content-type", "content-length"):
                continue  # the request body's media type, checked with the body
            if lowered == "accept":
                yield from self._accept(operation, values[0] if values else "", status)
                continue
            if lowered == "authorization":
                if not self.doc.secured(operation) and self.doc.response(operation, 401) is None:
                    yield (
                        f"{where}: header Authorization, but the operation declares neither a "
                        "security requirement nor a 401 response"
                    )
                continue
            declared = params.get(("header", lowered))
            if declared is None:
                yield f"{where}: header {name} is not declared"
                continue
            for value in values:
                yield from self._value(f"{where}: header {name}", declared, value, status)
        yield from self._request_body(operation, request, status)

    def _value(
        self, where: str, parameter: Mapping[str, Any], value: str, status: int
    ) -> Iterator[str]:
        schema = parameter.get("schema")
        if schema is None or status in _REFUSED_REQUEST:
            return
        for problem in self.doc.schemas.problems(schema, _coerce(schema, value)):
            yield f"{where} = {value!r} does not validate: {problem}"

    def _accept(self, operation: Operation, accept: str, status: int) -> Iterator[str]:
        response = self.doc.response(operation, status)
        content = (response or {}).get("content") or {}
        if not content:
            return
        wanted = [_media_type(part) or "" for part in accept.split(",")]
        for media in wanted:
            if media in ("", "*/*") or _media_declared(content, media) is not None:
                return
            if media.endswith("/*") and any(k.startswith(media[:-1]) for k in content):
                return
        declared = ", ".join(sorted(content))
        yield (
            f"request of {operation.name}: Accept {accept!r} matches no media type of its "
            f"{status} response ({declared})"
        )

    def _request_body(
        self, operation: Operation, request: Mapping[str, Any], status: int
    ) -> Iterator[str]:
        where = f"request body of {operation.name}"
        body = _body(request)
        declared = self.doc.request_body(operation)
        if body is None:
            if declared is not None and declared.get("required") and status < 400:
                yield f"{where}: the operation requires a body, the interaction sends none"
            return
        if declared is None:
            if status not in (400, 413, 415):
                yield f"{where}: the operation declares no request body"
            return
        media = body.content_type or "application/json"
        medium = _media_declared(declared.get("content") or {}, media)
        if medium is None:
            if status != 415:
                yield f"{where}: media type {media} is not declared"
            return
        schema = medium.get("schema")
        if schema is None or status in _REFUSED_REQUEST or status == 415:
            return
        for problem in self.doc.schemas.problems(schema, body.value):
            yield f"{where} does not validate: {problem}"

    # ------------------------------------------------------------ response

    def _response(
        self, operation: Operation, response: Mapping[str, Any], status: int
    ) -> Iterator[str]:
        declared = self.doc.response(operation, status)
        if declared is None:
            statuses = ", ".join(sorted(str(s) for s in operation.spec.get("responses", {})))
            yield f"status {status} is not declared for {operation.name} (declared: {statuses})"
            return
        where = f"{status} response of {operation.name}"
        declared_headers: Mapping[str, Any] = declared.get("headers") or {}
        headers = _headers(response.get("headers"))
        for name, values in headers.items():
            lowered = name.lower()
            if lowered == "content-type" or lowered in _HEADERS_OF_THE_TRANSPORT:
                continue
            header = self.doc.header(declared_headers, name)
            if header is None:
                yield f"{where}: header {name} is not declared"
                continue
            for value in values:
                yield from self._value(f"{where}: header {name}", header, value, 0)
        content: Mapping[str, Any] = declared.get("content") or {}
        body = _body(response)
        if body is None:
            return
        if not content:
            yield f"{where}: the interaction expects a body, the document declares none"
            return
        media = body.content_type or "application/json"
        medium = _media_declared(content, media)
        if medium is None:
            yield f"{where}: media type {media} is not declared ({', '.join(sorted(content))})"
            return
        if media == "text/event-stream" and isinstance(body.value, str):
            yield from self._events(where, medium, body.value)
            return
        schema = medium.get("schema")
        if schema is not None:
            for problem in self.doc.schemas.problems(schema, body.value):
                yield f"{where}: body does not validate: {problem}"

    def _events(self, where: str, medium: Mapping[str, Any], text: str) -> Iterator[str]:
        events = [
            {name: "\n".join(v) if name == "data" else v[-1] for name, v in event.fields.items()}
            for event in parse_sse(text).events
        ]
        item_schema = medium.get("itemSchema")
        if item_schema is not None:
            for number, event in enumerate(events, start=1):
                name = event.get("event", "message")
                schema = self._discriminated(item_schema, event)
                for problem in self.doc.schemas.problems(schema, event):
                    yield f"{where}: event {number} ({name}) does not validate: {problem}"
        schema = medium.get("schema")
        if schema is not None and (not isinstance(schema, dict) or schema.get("type") == "array"):
            for problem in self.doc.schemas.problems(schema, events):
                yield f"{where}: the events do not validate: {problem}"

    def _discriminated(self, schema: Any, instance: Mapping[str, Any]) -> Any:
        """The ``oneOf`` branch a discriminator picks for ``instance`` (a precise message),
        else ``schema`` itself."""
        resolved = self.doc.resolve(schema)
        discriminator = resolved.get("discriminator") if isinstance(resolved, dict) else None
        if isinstance(discriminator, dict):
            value = instance.get(str(discriminator.get("propertyName")))
            mapping = discriminator.get("mapping") or {}
            if isinstance(value, str) and value in mapping:
                return {"$ref": mapping[value]}
        return schema

    def _refusal_body(self, response: Mapping[str, Any], what: str) -> Iterator[str]:
        body = _body(response)
        schema = self.doc.error_schema
        if body is None or schema is None or body.text:
            return
        for problem in self.doc.schemas.problems(schema, body.value):
            yield f"the error body refusing {what} does not validate: {problem}"


def check_pact(pact: Mapping[str, Any], document: Mapping[str, Any], name: str) -> Report:
    """Check every HTTP interaction of ``pact`` against ``document``."""
    checker = _Checker(Document(document), name)
    report = Report(name)
    for interaction in pact.get("interactions", []):
        if not isinstance(interaction, dict):
            continue
        kind = str(interaction.get("type", "Synchronous/HTTP"))
        if kind != "Synchronous/HTTP" or "request" not in interaction:
            report.skipped.append(str(interaction.get("description", "")))
            continue
        report.checked += 1
        report.findings.extend(checker.check(interaction))
    return report
