"""Config files: the embedded default and one clear line per mistake.

Spec: ORCH-0147, ORCH-0149.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import Config, ConfigError, load_config, parse_config


@pytest.mark.req("ORCH-0147")
def test_the_embedded_default_is_one_pool_with_two_mock_replicas() -> None:
    config = load_config(None)
    assert [p.pool_id for p in config.pools] == ["default"]
    pool = config.pools[0]
    assert [(r.replica_id, r.engine) for r in pool.replicas] == [("r1", "mock"), ("r2", "mock")]
    assert (pool.queue_capacity, pool.overflow_policy, pool.max_attempts) == (1024, "reject", 2)
    assert (pool.batch_share_every, pool.decode_timeout_ms) == (4, 30000)
    assert config.auth_token is None
    assert config.database == "./orchq.db", "ORCH-0147: the default database is a SQLite file"


@pytest.mark.req("ORCH-0149")
def test_db_flag_overrides_the_config_database(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("database: ./a.db\n", encoding="utf-8")
    assert load_config(path, database="b.db").database == "b.db"


def test_the_documented_example_config_parses(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        """
database: ./orchq.db
auth_token: null
pools:
  - pool_id: default
    queue_capacity: 1024
    overflow_policy: reject
    max_attempts: 2
    batch_share_every: 4
    decode_timeout_ms: 30000
    replicas:
      - replica_id: r1
        engine: mock
        token_delay_ms: 0
      - replica_id: r2
        engine: mock
      - replica_id: llama
        engine: openai
        base_url: http://127.0.0.1:8081
        model: smollm2
""",
        encoding="utf-8",
    )
    config = load_config(path)
    assert isinstance(config, Config)
    assert config.pools[0].replicas[2].base_url == "http://127.0.0.1:8081"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"poolz": []}, "config: poolz: unknown key"),
        ({"pools": []}, "config: pools: List should have at least 1 item after validation, not 0"),
        ({"pools": [{"pool_id": "p"}]}, "config: pools[0].replicas: required key is missing"),
        (
            {
                "pools": [
                    {"pool_id": "p", "queue_capacity": "big", "replicas": [{"replica_id": "r"}]}
                ]
            },
            "config: pools[0].queue_capacity: must be an integer",
        ),
        (
            {
                "pools": [
                    {"pool_id": "p", "overflow_policy": "drop", "replicas": [{"replica_id": "r"}]}
                ]
            },
            "config: pools[0].overflow_policy: Input should be 'reject' or 'drop_lru'",
        ),
        (
            {"pools": [{"pool_id": "p", "replicas": [{"replica_id": "r", "engine": "openai"}]}]},
            "config: pools[0].replicas[0]: engine 'openai' needs base_url",
        ),
        (
            {"pools": [{"pool_id": "p", "replicas": [{"replica_id": "r"}, {"replica_id": "r"}]}]},
            "config: pools[0]: duplicate replica_id 'r'",
        ),
        (
            {"pools": [{"pool_id": "p", "replicas": [{"replica_id": "r", "faults": {"x": 1}}]}]},
            "config: pools[0].replicas[0].faults.x: unknown key",
        ),
        ({"auth_token": ""}, "config: auth_token: String should have at least 1 character"),
        ([1, 2], "config: the top level must be a mapping of keys"),
    ],
)
def test_each_mistake_is_one_line_naming_the_key(data: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


def test_unreadable_and_malformed_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml: config file not found"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("pools: [\n  - {pool_id: x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.yaml: invalid YAML at line \d+"):
        load_config(broken)
