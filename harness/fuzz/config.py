"""The project's Schemathesis configuration: what both ``st run`` and the fuzz suite accept.

``schemathesis.toml`` (repository root, shipped in the wheel) states what the OpenAPI document alone
cannot: the statuses that are right for valid input of an operation, a check
disabled where the spec makes its finding the specified behaviour (each with
its reason and ORCH ID), and how much of a stream to read. Schemathesis's own
CLI finds the file from the repository root; the fuzz suite reads it through
:func:`schemathesis_config`, the only place that locates it, so what
``orchq verify`` accepts and what ``st run`` accepts cannot drift apart.
"""

from __future__ import annotations

from schemathesis import Config

from harness import resources


def schemathesis_config() -> Config:
    """The committed ``schemathesis.toml``; a missing file is an error, never the defaults.

    Falling back to Schemathesis's defaults would fuzz with other expectations
    than ``st run`` has, which is the drift this module exists to prevent.
    """
    return Config.from_path(resources.path(resources.SCHEMATHESIS_CONFIG))
