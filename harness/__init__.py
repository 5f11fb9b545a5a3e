"""orchq harness: pytest plugins, conformance checks, traceability and the ``orchq`` CLI.

Depends on the orchestrator's public surface only (schemas, client, errors and
``create_app`` for in-process fixtures), never on its internals.
"""
