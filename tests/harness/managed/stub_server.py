"""A stand-in server for the managed-target self-tests: starts in a fraction of a second.

``python stub_server.py PORT [--exit-at-once] [--not-ready] [--pools a,b]`` answers
``GET /healthz`` and ``GET /readyz`` (503 with ``--not-ready``), ``GET /pid`` with its
process ID, and with ``--pools`` ``GET /v1/pools`` listing those ready pools;
everything else is 404. It exits with status 2 when its port is taken, as a server
does, and at once with ``--exit-at-once`` (after printing a line).
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main(argv: list[str]) -> None:
    port = int(argv[0])
    if "--exit-at-once" in argv:
        print("stub: refusing to start", flush=True)
        sys.exit(3)
    ready = "--not-ready" not in argv
    pools = argv[argv.index("--pools") + 1].split(",") if "--pools" in argv else None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answers: dict[str, tuple[int, object]] = {
                "/healthz": (200, {"status": "ok"}),
                "/readyz": (200 if ready else 503, {"ready": ready}),
                "/pid": (200, {"pid": os.getpid()}),
            }
            if pools is not None:
                listed = [{"pool_id": p, "ready": True} for p in pools]
                answers["/v1/pools"] = (200, {"pools": listed})
            status, body = answers.get(self.path, (404, {"error": "no"}))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return

    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    except OSError as exc:
        print(f"stub: cannot listen on {port}: {exc}", flush=True)
        sys.exit(2)
    print(f"stub: listening on {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
