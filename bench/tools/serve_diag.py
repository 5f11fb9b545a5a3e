"""Diagnostic launcher: ``orchq serve`` with knobs the benchmarks use to attribute costs.

    .venv/bin/python -m bench.tools.serve_diag [orchq serve options]

Environment:

- ``ORCHQ_DIAG_LOOP=asyncio``: run on the stdlib event loop instead of the
  uvloop one ``orchq serve`` picks (``orchestrator.listeners.loop_factory``),
  with uvicorn's own single listening socket, then the very same click command.
- ``ORCHQ_DIAG_NO_GC=1``: ``gc.disable()`` (attribution of tail latency only).
- ``ORCHQ_DIAG_GC_LOG=1``: print ``GC gen<N> <ms> ms`` for every collection
  over 20 ms.

Nothing here changes orchestrator/: it is the same code under another loop or
collector setting.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from typing import Any

from harness.orchestrator_cli import serve_command

_started: list[float] = []


def _gc_log(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[:] = [time.perf_counter()]
    elif _started:
        pause_ms = (time.perf_counter() - _started[0]) * 1000
        if pause_ms > 20:
            print(f"GC gen{info['generation']} {pause_ms:.0f} ms", flush=True)


if __name__ == "__main__":
    if os.environ.get("ORCHQ_DIAG_LOOP") == "asyncio":
        import orchestrator.server

        orchestrator.server.loop_factory = lambda: asyncio.new_event_loop
    if os.environ.get("ORCHQ_DIAG_NO_GC"):
        gc.disable()
    if os.environ.get("ORCHQ_DIAG_GC_LOG"):
        gc.callbacks.append(_gc_log)
    serve_command.main(args=sys.argv[1:], prog_name="orchq serve")
