"""Run definitions: parsing, validation, templates and seeds (spec section 12).

Pure functions over JSON values, standard library and the wire models only:
the runtime (:mod:`orchestrator.runtime.runs`) runs what these accept, and the
harness may import them to build or check definitions.
"""

from orchestrator.runs.definition import (
    DefinitionError,
    DefinitionLimits,
    MalformedDocument,
    ParsedDefinition,
    canonical_json,
    parse_definition,
    validate_definition,
)
from orchestrator.runs.seeds import backoff_ms, step_seed
from orchestrator.runs.templates import Template, TemplateError, parse_template

__all__ = [
    "DefinitionError",
    "DefinitionLimits",
    "MalformedDocument",
    "ParsedDefinition",
    "Template",
    "TemplateError",
    "backoff_ms",
    "canonical_json",
    "parse_definition",
    "parse_template",
    "step_seed",
    "validate_definition",
]
