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
own pact names them), else the ``x-req-id`` of the operation it claims.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jsonschema_rs
import yaml

from harness.fuzz.sse import parse as parse_sse

__all__ = [
    "Finding",
    "Report",
    "UnreadableInput",
    "check_pact",
    "load_openapi",
    "load_pact_file",
]

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace", "query")
REQUIREMENTS_KEY = "requirements"
_REFUSED_REQUEST = frozenset({400, 422})
"""Statuses that say the request's own content was refused: its body need not validate."""
_HEADERS_OF_THE_TRANSPORT = frozenset(
    {"content-length", "date", "connection", "transfer-encoding", "server", "vary"}
)
_SCHEMA_KEYS = ("schema", "itemSchema")


class UnreadableInput(Exception):
    """A pact or OpenAPI file that cannot be read or is not what it claims (one line)."""


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


# ---------------------------------------------------------------- reading


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableInput(f"{path}: cannot read the {what}: {exc}") from None


def load_openapi(path: Path) -> dict[str, Any]:
    """An OpenAPI document (YAML or JSON); :class:`UnreadableInput` if it is none."""
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 10x faster
        document = yaml.load(_read(path, "OpenAPI document"), Loader=loader)
    except yaml.YAMLError as exc:
        raise UnreadableInput(f"{path}: not YAML or JSON: {str(exc).splitlines()[0]}") from None
    if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
        raise UnreadableInput(f"{path}: not an OpenAPI document (no `paths` object)")
    version = str(document.get("openapi", ""))
    if not re.match(r"^3\.[0-2]\.\d+", version):
        raise UnreadableInput(f"{path}: OpenAPI version {version!r}: expected 3.0, 3.1 or 3.2")
    return document


def load_pact_file(path: Path) -> dict[str, Any]:
    """A pact file (specification 2, 3 or 4); :class:`UnreadableInput` if it is none."""
    try:
        data = json.loads(_read(path, "pact"))
    except ValueError as exc:
        raise UnreadableInput(f"{path}: not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
        raise UnreadableInput(f"{path}: not a pact file (no `interactions` list)")
    return data


# ---------------------------------------------------------------- schemas


def _openapi30_to_2020(schema: Any) -> Any:
    """OpenAPI 3.0's schema dialect in JSON Schema 2020-12 terms."""
    if isinstance(schema, list):
        return [_openapi30_to_2020(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _openapi30_to_2020(value) for key, value in schema.items()}
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        flag = out.get(bound)
        if isinstance(flag, bool):
            del out[bound]
            if flag and limit in out:
                out[bound] = out.pop(limit)
    if out.pop("nullable", False) is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        elif "$ref" in out or "allOf" in out or "oneOf" in out or "anyOf" in out:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


class _Schemas:
    """Validators for schemas of one document, ``$ref`` resolved within the document."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self._legacy = str(document.get("openapi", "")).startswith("3.0")
        components = document.get("components", {})
        self._root = {"components": self._dialect(components)}
        self._cache: dict[str, Any] = {}

    def _dialect(self, schema: Any) -> Any:
        return _openapi30_to_2020(schema) if self._legacy else schema

    def problems(self, schema: Any, instance: Any) -> list[str]:
        """Every way ``instance`` fails ``schema``, as ``at /path: message``."""
        key = json.dumps(schema, sort_keys=True, default=str)
        validator = self._cache.get(key)
        if validator is None:
            root = {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                **self._root,
                "allOf": [self._dialect(schema)],
            }
            validator = jsonschema_rs.Draft202012Validator(
                root, keywords={"contentSchema": self._content_schema_keyword()}
            )
            self._cache[key] = validator
        out = []
        for error in validator.iter_errors(instance):
            where = "/" + "/".join(str(p) for p in error.instance_path)
            out.append(f"at {where}: {error.message}")
        return sorted(set(out))

    def _content_schema_keyword(self) -> type:
        owner = self

        class ContentSchema:
            """``contentSchema`` asserted for JSON text (OpenAPI leaves it an annotation)."""

            def __init__(self, parent: dict[str, Any], value: Any, path: list[str | int]) -> None:
                self.schema = value
                self.json = parent.get("contentMediaType") == "application/json"

            def validate(self, instance: Any) -> None:
                if not self.json or not isinstance(instance, str):
                    return
                try:
                    decoded = json.loads(instance)
                except ValueError:
                    raise ValueError(f"{instance!r} is not a JSON text") from None
                problems = owner.problems(self.schema, decoded)
                if problems:
                    raise ValueError("its JSON content: " + "; ".join(problems))

        return ContentSchema


# ---------------------------------------------------------------- the document


@dataclass(frozen=True)
class _Operation:
    template: str
    method: str
    spec: Mapping[str, Any]
    parameters: tuple[Mapping[str, Any], ...]

    @property
    def name(self) -> str:
        op_id = self.spec.get("operationId")
        label = f"{self.method.upper()} {self.template}"
        return f"{label} ({op_id})" if op_id else label

    def requirements(self) -> tuple[str, ...]:
        ids = self.spec.get("x-req-id") or ()
        return tuple(str(i) for i in ids) if isinstance(ids, list) else (str(ids),)


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}/]+\})", template)
    pattern = "".join(
        f"(?P<{_group(part[1:-1])}>[^/]+)" if part.startswith("{") else re.escape(part)
        for part in parts
    )
    return re.compile(f"^{pattern}$")


def _group(name: str) -> str:
    return "p_" + re.sub(r"\W", "_", name)


class _Document:
    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self.schemas = _Schemas(document)
        paths: Mapping[str, Any] = document.get("paths", {})
        # A concrete path wins over a templated one (OpenAPI "Path Templating Matching").
        self.paths = sorted(
            ((t, _template_regex(t), item) for t, item in paths.items() if isinstance(item, dict)),
            key=lambda entry: (entry[0].count("{"), entry[0]),
        )
        self.global_security = bool(document.get("security"))
        self.error_schema = self._single_error_schema()

    def resolve(self, value: Any) -> Any:
        """Follow a local ``$ref`` of a parameter, response, header or request body."""
        seen = 0
        while isinstance(value, dict) and isinstance(value.get("$ref"), str) and seen < 16:
            ref: str = value["$ref"]
            if not ref.startswith("#/"):
                return value
            target: Any = self.document
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part) if isinstance(target, dict) else None
            value, seen = target, seen + 1
        return value

    def match_path(self, path: str) -> tuple[str, Mapping[str, Any], dict[str, str]] | None:
        for template, regex, item in self.paths:
            found = regex.match(path)
            if found is not None:
                names = re.findall(r"\{([^}/]+)\}", template)
                values = {name: found.group(_group(name)) for name in names}
                return template, item, values
        return None

    def operation(self, template: str, item: Mapping[str, Any], method: str) -> _Operation | None:
        spec = item.get(method.lower())
        if not isinstance(spec, dict):
            return None
        merged: dict[tuple[str, str], Mapping[str, Any]] = {}
        for raw in [*item.get("parameters", []), *spec.get("parameters", [])]:
            parameter = self.resolve(raw)
            if isinstance(parameter, dict):
                merged[(str(parameter.get("in")), str(parameter.get("name")).lower())] = parameter
        return _Operation(template, method.lower(), spec, tuple(merged.values()))

    def methods(self, item: Mapping[str, Any]) -> list[str]:
        return [m.upper() for m in METHODS if isinstance(item.get(m), dict)]

    def response(self, operation: _Operation, status: int) -> Mapping[str, Any] | None:
        responses: Mapping[str, Any] = operation.spec.get("responses", {})
        for key in (str(status), f"{status // 100}XX", f"{status // 100}xx", "default"):
            if key in responses:
                found = self.resolve(responses[key])
                return found if isinstance(found, dict) else {}
        return None

    def request_body(self, operation: _Operation) -> Mapping[str, Any] | None:
        body = self.resolve(operation.spec.get("requestBody"))
        return body if isinstance(body, dict) else None

    def header(self, declared: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
        for key, value in declared.items():
            if key.lower() == name.lower():
                found = self.resolve(value)
                return found if isinstance(found, dict) else {}
        return None

    def secured(self, operation: _Operation) -> bool:
        security = operation.spec.get("security")
        if security is not None:
            return bool(security)
        return self.global_security

    def _single_error_schema(self) -> Any:
        """The one schema every JSON 4xx response of the document uses, or ``None``."""
        found: dict[str, Any] = {}
        for item in self.document.get("paths", {}).values():
            if not isinstance(item, dict):
                continue
            for method in METHODS:
                spec = item.get(method)
                if not isinstance(spec, dict):
                    continue
                for status, response in spec.get("responses", {}).items():
                    if not str(status).startswith("4"):
                        continue
                    content = (self.resolve(response) or {}).get("content", {})
                    schema = content.get("application/json", {}).get("schema")
                    if schema is not None:
                        found[json.dumps(schema, sort_keys=True)] = schema
        return next(iter(found.values())) if len(found) == 1 else None


# ---------------------------------------------------------------- the pact


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
    def __init__(self, document: _Document, pact: str) -> None:
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

        def finding(message: str, operation: _Operation | None = None) -> Finding:
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
        operation: _Operation,
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

    def _accept(self, operation: _Operation, accept: str, status: int) -> Iterator[str]:
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
        self, operation: _Operation, request: Mapping[str, Any], status: int
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
        self, operation: _Operation, response: Mapping[str, Any], status: int
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
    checker = _Checker(_Document(document), name)
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
