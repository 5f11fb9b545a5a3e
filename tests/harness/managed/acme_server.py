"""Acme's orchestrator, a stand-in for an implementation whose configuration has other keys.

It is orchestratord, reading Acme's JSON settings (the format
``docs/examples/serve-cmd/acme_wrapper.py`` writes) instead of OrchQueue's
YAML, so the self-tests can certify "another implementation" through a serve
command wrapper. It refuses any key it does not know, so a harness
configuration handed to it untranslated cannot start it.

Usage: ``python -m tests.harness.managed.acme_server --settings FILE``
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

TOP = {
    ("security", "bearer_token"): "auth_token",
    ("routing", "on_rate_limit"): "fallback_mode",
    ("streaming", "retry_advice_ms"): "sse_retry_ms",
    ("streaming", "keepalive_ms"): "sse_ping_interval_ms",
    ("limits", "max_request_bytes"): "max_body_bytes",
    ("storage", "sqlite"): "database",
}
QUEUE = {
    "name": "pool_id",
    "capacity": "queue_capacity",
    "when_full": "overflow_policy",
    "attempt_limit": "max_attempts",
    "token_timeout_ms": "decode_timeout_ms",
    "batch_every": "batch_share_every",
}
WORKER = {"name": "replica_id", "concurrency": "slots", "warm_for_ms": "warmup_ms"}
BACKEND = {"type": "engine", "endpoint": "base_url", "model_name": "model"}


class SettingsError(ValueError):
    pass


def _known(mapping: dict[str, Any], keys: set[str], where: str) -> None:
    unknown = sorted(set(mapping) - keys)
    if unknown:
        raise SettingsError(f"{where}{unknown[0]}: unknown Acme setting")


def orchestratord_config(acme: dict[str, Any]) -> dict[str, Any]:
    sections = {section for section, _ in TOP}
    _known(acme, {*sections, "listen", "queues"}, "")
    config: dict[str, Any] = {}
    for (section, name), key in TOP.items():
        values = acme.get(section, {})
        _known(values, {n for s, n in TOP if s == section}, f"{section}.")
        if name in values:
            config[key] = values[name]
    pools = []
    for queue in acme.get("queues", []):
        _known(queue, {*QUEUE, "workers"}, "queues[].")
        pool = {QUEUE[k]: v for k, v in queue.items() if k in QUEUE}
        replicas = []
        for worker in queue.get("workers", []):
            _known(worker, {*WORKER, "backend"}, "workers[].")
            replica = {WORKER[k]: v for k, v in worker.items() if k in WORKER}
            backend = worker.get("backend", {})
            _known(backend, set(BACKEND), "backend.")
            replica.update({BACKEND[k]: v for k, v in backend.items()})
            replicas.append(replica)
        pool["replicas"] = replicas
        pools.append(pool)
    if pools:
        config["pools"] = pools
    return config


def main(argv: list[str]) -> None:
    from orchestrator.config import ConfigError, parse_config
    from orchestrator.server import run, serve

    parser = argparse.ArgumentParser(prog="acme-server")
    parser.add_argument("--settings", required=True)
    settings = parser.parse_args(argv).settings
    try:
        with open(settings, encoding="utf-8") as handle:
            acme = json.load(handle)
        config = parse_config(orchestratord_config(acme), source=settings)
        listen = acme["listen"]
    except (OSError, ValueError, KeyError, SettingsError, ConfigError) as exc:
        print(f"acme-server: {settings}: {exc}", file=sys.stderr)
        sys.exit(2)

    def ready(url: str) -> None:
        print(f"acme-server: listening on {url}", flush=True)

    run(serve(config, host=listen["host"], port=int(listen["port"]), on_ready=ready))


if __name__ == "__main__":
    main(sys.argv[1:])
