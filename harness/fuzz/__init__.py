"""Schemathesis fuzzing of the committed OpenAPI contract against any OrchQueue v1 server.

The contract is ``contracts/openapi/orchqueue.yaml`` read from disk, never the
target's own ``/openapi.json``: a server that serves a convenient document of
its own must still meet the committed one. Every check names the ORCH IDs of
the requirement it proves (:mod:`harness.fuzz.requirements`), so a failure
reads as a broken requirement, not as a Schemathesis code.

Modules: ``config`` (the project's ``schemathesis.toml``, the expectations
``st run`` shares), ``checks`` (our checks and the mapping of Schemathesis
failures to IDs), ``sse`` (the stream format), ``runner`` (coverage and random
per-operation runs), ``stateful`` (the link-driven state machine), ``plugin``
(pytest options).
Everything but ``requirements``, ``sse`` and ``plugin`` imports Schemathesis,
which costs seconds: import it only where fuzzing runs.
"""
