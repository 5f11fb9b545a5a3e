"""The target fixtures: a fresh in-process orchestratord per test, or a live --orch-url."""

from __future__ import annotations

import textwrap

import pytest

from harness.plugin.target import LIVE_TARGET_SKIP, ServeFactory, Target

pytest_plugins = ["pytester"]


def test_in_process_target_is_a_fresh_server(orch_target: Target) -> None:
    assert orch_target.in_process
    with orch_target.client() as client:
        assert client.health().status == "ok"
        assert [pool.pool_id for pool in client.list_pools()] == ["default"]


def test_orch_serve_applies_config_overrides(orch_serve: ServeFactory) -> None:
    target = orch_serve(
        auth_token="s3cret", pools=[{"pool_id": "p", "replicas": [{"replica_id": "x"}]}]
    )
    assert target.token == "s3cret"
    with target.client() as client:
        assert [pool.pool_id for pool in client.list_pools()] == ["p"]


def test_live_url_points_every_fixture_at_the_server(
    pytester: pytest.Pytester, orch_target: Target
) -> None:
    pytester.makepyfile(
        textwrap.dedent(
            """
            def test_uses_live(orch_target):
                assert not orch_target.in_process
                assert orch_target.url == URL

            def test_serve_is_skipped(orch_serve):
                raise AssertionError("must not run")
            """
        ).replace("URL", repr(orch_target.url))
    )
    result = pytester.runpytest_inprocess("--orch-url", orch_target.url + "/", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines([f"*{LIVE_TARGET_SKIP[:40]}*"])
