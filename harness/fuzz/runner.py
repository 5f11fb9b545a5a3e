"""Stateless and stateful fuzz runs of the committed contract against a target URL.

The committed document is loaded from disk (``from_path``) and every request
goes over real HTTP to the target's base URL, so the same run certifies the
in-process orchestratord and any server at ``--orch-url``. Runs are bounded
(``examples``) and reproducible (derandomized unless ``explore``); shrinking is off because every
shrink step is a request: a failure still comes with its exact curl line.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode, Response
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.schemas import OpenApiSchema

from harness.fuzz.checks import operation_id, validate
from harness.fuzz.config import schemathesis_config
from harness.fuzz.document import contract_path

REQUEST_TIMEOUT_S = 30.0


@dataclass
class FuzzClient:
    """Where requests go: base URL, extra headers (auth), one keep-alive session.

    ``seen`` counts (operationId, status) pairs: what a run actually reached;
    ``failures`` keeps the check failures a stateful run saw, in order. Webhook
    subscriptions the run created are deleted by :meth:`close`: their deliveries to
    made-up URLs would otherwise go on and load the target for every later test.
    """

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    session: requests.Session = field(default_factory=requests.Session)
    seen: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    created_webhooks: list[str] = field(default_factory=list)

    @property
    def cases(self) -> int:
        return sum(self.seen.values())

    def record(self, case: Case[Any], response: Response) -> None:
        operation = operation_id(case)
        self.seen[(operation, response.status_code)] += 1
        if operation == "createWebhook" and response.status_code == 201:
            # The contract checks report a 201 without its webhook_id.
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self.created_webhooks.append(str(response.json()["webhook_id"]))

    def call(self, case: Case[Any]) -> Response:
        response = case.call(**self.call_kwargs())
        self.record(case, response)
        return response

    def call_kwargs(self) -> dict[str, Any]:
        return {
            "base_url": self.url,
            "headers": dict(self.headers),
            "session": self.session,
            "timeout": REQUEST_TIMEOUT_S,
        }

    def close(self) -> None:
        try:
            for webhook_id in self.created_webhooks:
                self.session.delete(
                    f"{self.url.rstrip('/')}/v1/webhooks/{webhook_id}",
                    headers=self.headers,
                    timeout=REQUEST_TIMEOUT_S,
                )
        except requests.RequestException:
            pass  # a target gone away keeps nothing to clean
        finally:
            self.created_webhooks.clear()
            self.session.close()


def load_contract(path: Path | None = None) -> OpenApiSchema:
    """The contract (:func:`contract_path`) with the project's expectations (``schemathesis.toml``).

    Checks, expected statuses, stream length and report sanitisation all come
    from the committed configuration, the same one ``st run`` reads.
    """
    schema = schemathesis.openapi.from_path(str(contract_path(path)), config=schemathesis_config())
    assert isinstance(schema, OpenApiSchema)
    return schema


def operation_ids(schema: OpenApiSchema) -> list[str]:
    """Every operationId of the contract, in document order; an invalid operation raises."""
    out = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            raise ValueError(f"invalid operation in the contract: {result.err()}")
        out.append(str(result.ok().definition.raw["operationId"]))
    return out


def fuzz_settings(
    examples: int, *, explore: bool = False, steps: int | None = None
) -> hypothesis.settings:
    """Bounded, no shrinking, no example database; the same cases every run unless ``explore``."""
    kwargs: dict[str, Any] = {}
    if steps is not None:
        kwargs["stateful_step_count"] = steps
    return hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=not explore,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
        **kwargs,
    )


def coverage_cases(
    schema: OpenApiSchema, operation: APIOperation[Any, Any, Any, Any]
) -> list[Case[Any]]:
    """Schemathesis's coverage phase for ``operation``: boundary and invalid values, in order.

    The same deterministic cases ``st run --phases coverage`` sends (each enum's
    outsiders, each bound's neighbours, missing required fields, unexpected
    methods); none when the project's configuration disables the phase.
    """
    if not schema.config.phases_for(operation=operation).coverage.enabled:
        return []
    generation = schema.config.generation_for(operation=operation, phase="coverage")
    return list(
        schema.iter_coverage_cases(
            operation, generation_modes=generation.modes, generation_config=generation
        )
    )


def fuzz_operation(
    schema: OpenApiSchema, operation_id: str, target: FuzzClient, *, examples: int, explore: bool
) -> int:
    """Fuzz one operation: its coverage cases, then random valid and invalid inputs.

    Returns the number of cases sent.

    Raises ``AssertionError`` (with ORCH IDs and a curl line) on the first
    failing case.
    """
    operation = schema.find_operation_by_id(operation_id)
    before = target.cases
    for case in coverage_cases(schema, operation):
        validate(case, target.call(case), **target.call_kwargs())
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @fuzz_settings(examples, explore=explore)
    @hypothesis.given(case=cases)
    def run(case: Case[Any]) -> None:
        __tracebackhide__ = True
        validate(case, target.call(case), **target.call_kwargs())

    run()
    return target.cases - before
