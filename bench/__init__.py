"""orchq's benchmarks: ``python -m bench`` runs them, each against its baseline (RESULTS.md).

Scripts, never timed tests. Diagnostics that answer one question each live in
``bench/tools/``.
"""
