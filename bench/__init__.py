"""Benchmark scripts for orchestratord (scripts, never timed tests): see bench/RESULTS.md."""
