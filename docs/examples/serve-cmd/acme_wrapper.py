"""Serve command wrapper: the harness's OrchQueue configuration, in Acme's own format.

orchq certifies an implementation it starts itself (``orchq verify --serve-cmd``):
for every configuration a check needs it writes an OrchQueue configuration file
(the keys of spec section 11) and runs the serve command. Acme's orchestrator reads
a JSON file with other names for the same settings, so the serve command is this
script, which translates the file and then becomes Acme's server::

    orchq verify --serve-cmd \\
        "python acme_wrapper.py {config} {state_dir} {port} -- acme-server --settings"

The settings file goes last on the server's command line. A key this script does
not know stops it with exit status 2 and the key's name: orchq then reports the
target as not startable instead of certifying a configuration nobody applied.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

TOP = {
    "auth_token": ("security", "bearer_token"),
    "fallback_mode": ("routing", "on_rate_limit"),
    "sse_retry_ms": ("streaming", "retry_advice_ms"),
    "sse_ping_interval_ms": ("streaming", "keepalive_ms"),
    "max_body_bytes": ("limits", "max_request_bytes"),
    "database": ("storage", "sqlite"),
}
POOL = {
    "pool_id": "name",
    "queue_capacity": "capacity",
    "overflow_policy": "when_full",
    "max_attempts": "attempt_limit",
    "decode_timeout_ms": "token_timeout_ms",
    "batch_share_every": "batch_every",
}
REPLICA = {"replica_id": "name", "slots": "concurrency", "warmup_ms": "warm_for_ms"}
ENGINE = {"engine": "type", "base_url": "endpoint", "model": "model_name"}


def fail(message: str) -> None:
    print(f"acme_wrapper: {message}", file=sys.stderr)
    sys.exit(2)


def translate(orchq: dict[str, Any], port: int) -> dict[str, Any]:
    acme: dict[str, Any] = {"listen": {"host": "127.0.0.1", "port": port}, "queues": []}
    for key, value in orchq.items():
        if key == "pools":
            acme["queues"] = [pool(p, f"pools[{n}]") for n, p in enumerate(value)]
        elif key in TOP:
            section, name = TOP[key]
            acme.setdefault(section, {})[name] = value
        else:
            fail(f"{key}: no Acme setting for this OrchQueue key")
    return acme


def pool(orchq: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {"workers": []}
    for key, value in orchq.items():
        if key == "replicas":
            out["workers"] = [replica(r, f"{where}.replicas[{n}]") for n, r in enumerate(value)]
        elif key in POOL:
            out[POOL[key]] = value
        else:
            fail(f"{where}.{key}: no Acme setting for this OrchQueue key")
    return out


def replica(orchq: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {"backend": {}}
    for key, value in orchq.items():
        if key in REPLICA:
            out[REPLICA[key]] = value
        elif key in ENGINE:
            out["backend"][ENGINE[key]] = value
        else:
            fail(f"{where}.{key}: no Acme setting for this OrchQueue key")
    return out


def main(argv: list[str]) -> None:
    if len(argv) < 5 or argv[3] != "--":
        fail("usage: acme_wrapper.py CONFIG STATE_DIR PORT -- SERVER COMMAND...")
    config, state_dir, port, server = argv[0], Path(argv[1]), int(argv[2]), argv[4:]
    with open(config, encoding="utf-8") as handle:
        orchq = yaml.safe_load(handle) or {}
    settings = state_dir / "acme-settings.json"
    settings.write_text(json.dumps(translate(orchq, port), indent=2), encoding="utf-8")
    os.execvp(server[0], [*server, str(settings)])


if __name__ == "__main__":
    main(sys.argv[1:])
