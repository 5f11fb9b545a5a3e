"""A target whose configuration format is not OrchQueue's, certified through a wrapper script.

"Acme's orchestrator" (:mod:`acme_server`: orchestratord reading JSON with other
key names) cannot read the configuration the harness writes. The serve command
is the wrapper of ``docs/examples/serve-cmd/acme_wrapper.py``, which translates it;
the conformance checks that set each configuration key (every top-level, pool and
replica key the suite writes), the shared target and a restart then run through it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.harness.mutantkit import INDEX

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[3]
WRAPPER = ROOT / "docs" / "examples" / "serve-cmd" / "acme_wrapper.py"
ACME = Path(__file__).with_name("acme_server.py")
PY = sys.executable
THROUGH_THE_WRAPPER = f"{PY} {WRAPPER} {{config}} {{state_dir}} {{port}} -- {PY} {ACME} --settings"

EVERY_KEY = {
    "test_bearer_token_guards_v1_only": "auth_token",
    "test_routing_mode_starts_from_config_and_can_be_set": "fallback_mode",
    "test_retry_advice_follows_the_configuration": "sse_retry_ms",
    "test_idle_stream_pings_without_ids_then_closes_on_cancel": "sse_ping_interval_ms",
    "body and over and size and limit": "max_body_bytes",
    "test_lanes_dispatch_in_admission_order_with_the_batch_share": "queue_capacity, "
    "overflow_policy, batch_share_every",
    "test_evicted_task_ends_dropped_and_its_stream_says_so": "overflow_policy drop_lru",
    "test_strict_retries_exhausted_repeat_no_token": "max_attempts",
    "test_hanging_engine_ends_decode_timeout_without_retry_and_is_hung_up_on": "decode_timeout_ms",
    "test_replica_runs_at_most_its_slots_and_fills_free_ones": "slots",
    "test_warming_pool_suggests_the_warm_up_time_left": "warmup_ms",
    "test_session_fields_and_ttl_arithmetic": "the shared target",
    "test_a_crash_loses_nothing_and_every_task_recovers_as_the_spec_says": "a restart",
}
"""The check selected -> the configuration it depends on (engine keys: every one)."""


def _conformance(pytester: pytest.Pytester, command: str, selection: str) -> pytest.RunResult:
    pytester.makeini("[pytest]\n")
    return pytester.runpytest_inprocess(
        "--pyargs",
        "harness.conformance",
        "-k",
        selection,
        "--orch-serve-cmd",
        command,
        "--orch-index",
        str(INDEX),
        "-p",
        "no:cacheprovider",
        "-rfE",
    )


@pytest.mark.slow
def test_the_suite_certifies_a_target_with_another_configuration_format(
    pytester: pytest.Pytester,
) -> None:
    # The pact's cross-check with the OpenAPI document starts no server: not one of them.
    every_check = " or ".join(f"({name})" for name in EVERY_KEY)
    selection = f"({every_check}) and not agrees_with_the_openapi_document"
    result = _conformance(pytester, THROUGH_THE_WRAPPER, selection)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == len(EVERY_KEY) and "failed" not in outcomes, (
        f"{outcomes}\n" + result.stdout.str()[-4000:]
    )


def test_the_target_refuses_the_harness_configuration_without_the_wrapper(
    pytester: pytest.Pytester,
) -> None:
    """The control: the keys really differ, so the wrapper is what makes the run possible."""
    untranslated = f"{PY} {ACME} --settings {{config}} # {{port}}"
    result = _conformance(pytester, untranslated, "test_bearer_token_guards_v1_only")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the serve command did not become ready*exited with status 2*"])
