"""Seeded determinism checks of an OrchQueue v1 server, shared by the suite and the CLI.

:mod:`harness.determinism.probe` runs strict tasks over HTTP (through the public
client only, so it certifies any implementation) and counts unique outputs per
seed and replica; :mod:`harness.determinism.snapshot` is the syrupy extension
that pins an engine's tokens in the top-level ``snapshots/`` folder.
"""
