"""Replay one pact interaction against a real server with the pact FFI verifier.

Each interaction is verified on its own (a one-interaction copy of the pact
file), so a failure is reported with exactly the ORCH IDs that interaction
certifies, and the provider states it needs are set up by
:class:`~harness.pact.states.StateServer` through the public API. When a state
cannot be set up the interaction is not replayed: the failure is led by the
requirement the server broke during the setup, when one is known.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from harness.pact.model import PROVIDER, Interaction
from harness.pact.pactfiles import single_interaction_pact
from harness.pact.states import StateFailure, state_server
from orchestrator.client import OrchClient

__all__ = ["Outcome", "verify_interaction"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Outcome:
    """The verdict on one interaction; ``message`` names its ORCH IDs when it failed."""

    ok: bool
    message: str


def _slug(description: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", description.lower()).strip("-")


def _mismatches(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for error in results.get("errors", []):
        mismatch = error.get("mismatch", error)
        if isinstance(mismatch, dict) and "mismatches" in mismatch:
            for item in mismatch["mismatches"]:
                if isinstance(item, dict):
                    where = item.get("path") or item.get("key") or item.get("type", "")
                    text = item.get("mismatch") or json.dumps(item, sort_keys=True)
                    lines.append(f"{where}: {text}")
                else:
                    lines.append(str(item))
        elif isinstance(mismatch, dict) and "message" in mismatch:
            lines.append(str(mismatch["message"]))
        else:
            lines.append(json.dumps(mismatch, sort_keys=True))
    return lines


def _state_client(url: str, token: str | None) -> OrchClient:
    """A client for provider states; on plain HTTP without a TLS context.

    ``httpx.Client()`` loads the CA bundle (0.1-0.3 s here), more than a state
    change costs, and a loopback ``http://`` target never uses it.
    """
    if urlsplit(url).scheme == "http":
        return _OwningClient(url, token=token, http=httpx.Client(verify=False, timeout=30.0))
    return OrchClient(url, token=token)


class _OwningClient(OrchClient):
    """An :class:`OrchClient` that closes the ``http=`` client it was given."""

    def close(self) -> None:
        self._http.close()


def verify_interaction(
    interaction: Interaction,
    pact_file: Path,
    work_dir: Path,
    url: str,
    *,
    token: str | None = None,
    state_token: str | None = None,
) -> Outcome:
    """Verify ``interaction`` (as recorded in ``pact_file``) against the server at ``url``.

    ``token`` is sent on every replayed request (a live target with auth);
    ``state_token`` (default ``token``) authenticates the provider states' own calls.
    """
    os.environ.setdefault("PACT_DO_NOT_TRACK", "true")
    from pact import Verifier

    ids = ", ".join(interaction.req)
    single = work_dir / f"{_slug(interaction.description)}.json"
    if not single_interaction_pact(pact_file, interaction.description, single):
        return Outcome(
            False,
            f"{ids}: interaction {interaction.description!r} is missing from {pact_file}; "
            "run `orchq pact regen`",
        )
    host = urlsplit(url).hostname or "127.0.0.1"

    def factory() -> OrchClient:
        return _state_client(url, state_token if state_token is not None else token)

    with state_server(factory) as states:
        verifier = (
            Verifier(PROVIDER, host=host)
            .add_transport(url=url)
            .add_source(single)
            .set_request_timeout(10_000)
        )
        if interaction.states:
            verifier.state_handler(states.url, teardown=True, body=True)
        if token is not None:
            verifier.add_custom_header("Authorization", f"Bearer {token}")
        try:
            verifier.verify()
            failed = False
        except RuntimeError:
            failed = True
        results = verifier.results
        state_failures = list(states.failures)
    if not failed and results.get("result") is True and not state_failures:
        return Outcome(True, f"{ids}: {interaction.description!r} verified")
    if state_failures:
        return _unreplayed(interaction, state_failures)
    details = _mismatches(results)
    if not details:
        output = _ANSI.sub("", "\n".join(str(line) for line in results.get("output", [])))
        details = [output.strip() or "the verifier reported a failure without details"]
    body = "\n  ".join(_clip(line) for line in details)
    return Outcome(
        False, f"{ids}: the provider broke pact interaction {interaction.description!r}:\n  {body}"
    )


def _unreplayed(interaction: Interaction, failures: list[StateFailure]) -> Outcome:
    """The interaction was not replayed: its provider state could not be set up.

    Led by the requirements the server broke during the setup (the typed client refused
    an answer), else by the interaction's own.
    """
    broken = tuple(dict.fromkeys(i for failure in failures for i in failure.requirements))
    lead = "/".join(broken) if broken else ", ".join(interaction.req)
    body = "\n  ".join(_clip(failure.line()) for failure in failures)
    return Outcome(
        False,
        f"{lead}: pact interaction {interaction.description!r} ({', '.join(interaction.req)}) "
        f"was not replayed, its provider state failed:\n  {body}",
    )


def _clip(line: str, limit: int = 400) -> str:
    """One mismatch, shortened: a stream body would otherwise flood the report."""
    line = line.replace("\n", "\\n")
    return line if len(line) <= limit else line[: limit - 3] + "..."
