"""The OpenAPI document as the pact cross-check reads it: files, schemas, operations.

Loads a pact or OpenAPI file into one clear :class:`UnreadableInput` when it is not
what it claims; compiles each schema once (JSON Schema 2020-12 via jsonschema-rs,
OpenAPI 3.0's ``nullable`` and boolean exclusive bounds turned into 2020-12); and
resolves a concrete path and method to its :class:`Operation` (a concrete template
before a templated one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace", "query")


class UnreadableInput(Exception):
    """A pact or OpenAPI file that cannot be read or is not what it claims (one line)."""


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
class Operation:
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


class Document:
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

    def operation(self, template: str, item: Mapping[str, Any], method: str) -> Operation | None:
        spec = item.get(method.lower())
        if not isinstance(spec, dict):
            return None
        merged: dict[tuple[str, str], Mapping[str, Any]] = {}
        for raw in [*item.get("parameters", []), *spec.get("parameters", [])]:
            parameter = self.resolve(raw)
            if isinstance(parameter, dict):
                merged[(str(parameter.get("in")), str(parameter.get("name")).lower())] = parameter
        return Operation(template, method.lower(), spec, tuple(merged.values()))

    def methods(self, item: Mapping[str, Any]) -> list[str]:
        return [m.upper() for m in METHODS if isinstance(item.get(m), dict)]

    def response(self, operation: Operation, status: int) -> Mapping[str, Any] | None:
        responses: Mapping[str, Any] = operation.spec.get("responses", {})
        for key in (str(status), f"{status // 100}XX", f"{status // 100}xx", "default"):
            if key in responses:
                found = self.resolve(responses[key])
                return found if isinstance(found, dict) else {}
        return None

    def request_body(self, operation: Operation) -> Mapping[str, Any] | None:
        body = self.resolve(operation.spec.get("requestBody"))
        return body if isinstance(body, dict) else None

    def header(self, declared: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
        for key, value in declared.items():
            if key.lower() == name.lower():
                found = self.resolve(value)
                return found if isinstance(found, dict) else {}
        return None

    def secured(self, operation: Operation) -> bool:
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
