"""Loading and validating the gateway configuration."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from target_service.config import ConfigError, hash_api_key, load_config

EXAMPLE_CONFIG = Path(__file__).parents[2] / "target_service" / "config.example.yaml"

MINIMAL_YAML = """
auth: {allow_anonymous: true}
upstreams:
  primary: {base_url: "http://127.0.0.1:9001/v1"}
models:
  mock-llm: {upstream: primary}
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SLOGATE_GATEWAY_"):
            monkeypatch.delenv(name)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_config_example_loads() -> None:
    config = load_config(EXAMPLE_CONFIG)
    assert config.models["mock-llm"].upstream == "primary"
    assert config.upstreams["primary"].base_url == "http://127.0.0.1:9001/v1"
    assert config.redis.timeout_s == 0.5


def test_config_defaults_fill_upstream(tmp_path: Path) -> None:
    upstream = load_config(write_config(tmp_path, MINIMAL_YAML)).upstreams["primary"]
    assert upstream.connect_timeout_s == 2.0
    assert upstream.idle_timeout_s == 30.0
    assert upstream.first_token_timeout_s == 60.0
    assert upstream.total_timeout_s == 300.0
    assert upstream.max_connections == 256
    assert upstream.bearer_token() is None


def test_config_upstream_model_defaults_alias(tmp_path: Path) -> None:
    assert load_config(write_config(tmp_path, MINIMAL_YAML)).upstream_model("mock-llm") == "mock-llm"


def test_config_environment_overrides_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOGATE_GATEWAY_UPSTREAMS__PRIMARY__IDLE_TIMEOUT_S", "5")
    monkeypatch.setenv("SLOGATE_GATEWAY_REDIS__URL", "redis://127.0.0.1:6390/1")
    config = load_config(write_config(tmp_path, MINIMAL_YAML))
    assert config.upstreams["primary"].idle_timeout_s == 5.0
    assert config.upstreams["primary"].base_url == "http://127.0.0.1:9001/v1"
    assert config.redis.url == "redis://127.0.0.1:6390/1"


def test_config_from_environment_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOGATE_GATEWAY_UPSTREAMS__LOCAL__BASE_URL", "http://127.0.0.1:8000/v1")
    monkeypatch.setenv("SLOGATE_GATEWAY_MODELS__SMALL__UPSTREAM", "local")
    monkeypatch.setenv("SLOGATE_GATEWAY_AUTH__ALLOW_ANONYMOUS", "true")
    assert load_config(None).models["small"].upstream == "local"


def test_config_unknown_upstream_names_both(tmp_path: Path) -> None:
    text = MINIMAL_YAML + "  other-model: {upstream: missing}\n"
    with pytest.raises(ConfigError) as excinfo:
        load_config(write_config(tmp_path, text))
    assert "'other-model'" in str(excinfo.value)
    assert "'missing'" in str(excinfo.value)


def test_config_without_models_rejected(tmp_path: Path) -> None:
    text = 'upstreams:\n  primary: {base_url: "http://127.0.0.1:9001/v1"}\n'
    with pytest.raises(ConfigError, match="at least one model"):
        load_config(write_config(tmp_path, text))


def test_config_unknown_key_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"upstreams\.primary\.read_timeout"):
        load_config(write_config(tmp_path, MINIMAL_YAML.replace("base_url", "read_timeout: 3, base_url")))


def test_config_unknown_top_key_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="caches"):
        load_config(write_config(tmp_path, MINIMAL_YAML + "caches: {}\n"))


def test_config_yaml_error_names_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "models: [unclosed\n")
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load_config(path)


def test_config_missing_file_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


def test_config_api_key_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_UPSTREAM_KEY", "sk-test")
    text = MINIMAL_YAML.replace("base_url", "api_key_env: TEST_UPSTREAM_KEY, base_url")
    assert load_config(write_config(tmp_path, text)).upstreams["primary"].bearer_token() == "sk-test"


def test_config_api_key_env_unset_rejected(tmp_path: Path) -> None:
    text = MINIMAL_YAML.replace("base_url", "api_key_env: SLOGATE_TEST_UNSET_KEY, base_url")
    with pytest.raises(ConfigError, match="SLOGATE_TEST_UNSET_KEY"):
        load_config(write_config(tmp_path, text))


def test_config_api_key_hidden_in_repr(tmp_path: Path) -> None:
    text = MINIMAL_YAML.replace("base_url", "api_key: sk-hidden, base_url")
    config = load_config(write_config(tmp_path, text))
    assert "sk-hidden" not in repr(config)
    assert config.upstreams["primary"].bearer_token() == "sk-hidden"


def test_config_base_url_needs_scheme(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="base_url"):
        load_config(write_config(tmp_path, MINIMAL_YAML.replace("http://", "")))


def test_config_example_has_policy() -> None:
    config = load_config(EXAMPLE_CONFIG)
    tenant = config.tenants["team-a"]
    assert tenant.keys[0].key_hash() == hash_api_key("sk-example-team-a")
    assert tenant.limits.requests_per_minute == 600
    assert tenant.limits.models["mock-llm"].tokens_per_minute == 100000
    assert config.cache.enabled
    assert config.rate_limits.on_redis_error == "fail_open"


def test_config_needs_tenant_or_anonymous(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configure at least one tenant"):
        load_config(write_config(tmp_path, MINIMAL_YAML.replace("auth: {allow_anonymous: true}\n", "")))


def test_config_rejects_duplicate_key_ids(tmp_path: Path) -> None:
    key = {"id": "same", "sha256": "a" * 64}
    other = {"id": "same", "sha256": "b" * 64}
    text = MINIMAL_YAML + f"tenants:\n  one: {{keys: [{key}]}}\n  two: {{keys: [{other}]}}\n"
    with pytest.raises(ConfigError, match="key id 'same' is used by tenants 'one' and 'two'"):
        load_config(write_config(tmp_path, text.replace("'", '"')))


def test_config_key_env_must_be_set(tmp_path: Path) -> None:
    text = MINIMAL_YAML + "tenants:\n  one: {keys: [{id: k, key_env: SLOGATE_TEST_UNSET_KEY}]}\n"
    with pytest.raises(ConfigError, match="SLOGATE_TEST_UNSET_KEY"):
        load_config(write_config(tmp_path, text))


def test_config_key_env_hashed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOGATE_TEST_TEAM_KEY", "sk-raw")
    text = MINIMAL_YAML + "tenants:\n  one: {keys: [{id: k, key_env: SLOGATE_TEST_TEAM_KEY}]}\n"
    config = load_config(write_config(tmp_path, text))
    assert config.tenants["one"].keys[0].key_hash() == hash_api_key("sk-raw")


def test_config_limits_need_known_model(tmp_path: Path) -> None:
    text = MINIMAL_YAML + "tenants:\n  one:\n    keys: [{id: k, sha256: " + "c" * 64 + "}]\n"
    text += "    limits: {models: {ghost: {requests_per_minute: 1}}}\n"
    with pytest.raises(ConfigError, match="limits model 'ghost'"):
        load_config(write_config(tmp_path, text))
