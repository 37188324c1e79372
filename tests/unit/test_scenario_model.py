import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from harness.scenario.model import DEFAULT_MODEL_ALIAS, RequestSpec, Scenario, StackSpec
from harness.scenario.schema import scenario_json_schema
from harness.stack.local import gateway_config
from target_service.config import GatewayConfig

REPO = Path(__file__).resolve().parents[2]


def test_request_body_stream_asks_for_usage() -> None:
    spec = RequestSpec.model_validate({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
    body = spec.body("mock-llm", stream=True)
    assert body["model"] == "mock-llm"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 4


def test_request_body_keeps_extra_fields_and_drops_unset() -> None:
    spec = RequestSpec.model_validate(
        {"messages": [{"role": "user", "content": "hi"}], "model": "big", "extra_body": {"top_k": 5}}
    )
    body = spec.body("mock-llm", stream=False)
    assert body["model"] == "big"
    assert body["top_k"] == 5
    assert "temperature" not in body
    assert "stream_options" not in body
    assert "weight" not in body


def test_request_body_keeps_temperature_zero() -> None:
    spec = RequestSpec.model_validate({"messages": [{"role": "user", "content": "hi"}], "temperature": 0})
    assert spec.body("m", stream=False)["temperature"] == 0


def test_stack_default_route() -> None:
    assert StackSpec().model_routes() == {DEFAULT_MODEL_ALIAS: "primary"}


def test_duration_scale_shortens_load() -> None:
    scenario = Scenario.model_validate(
        {
            "version": 1,
            "name": "s",
            "load": {
                "users": 1,
                "duration": "60s",
                "requests": [{"messages": [{"role": "user", "content": "x"}]}],
            },
            "slo": [{"metric": "error_rate", "max": "1%"}],
        }
    )
    scaled = scenario.with_duration_scale(0.1)
    assert scaled.load.duration == pytest.approx(6.0)
    assert scenario.load.duration == 60.0
    assert scaled.slo == scenario.slo


def test_json_schema_accepts_shipped_scenarios() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    schema = scenario_json_schema()
    validator = jsonschema.Draft202012Validator(schema)
    for path in sorted((REPO / "scenarios").glob("*.yaml")):
        errors = list(validator.iter_errors(yaml.safe_load(path.read_text())))
        assert errors == [], f"{path.name}: {errors[0].message if errors else ''}"


def test_json_schema_rejects_unknown_key() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    document = {"version": 1, "name": "x", "colour": "red", "load": {}, "slo": []}
    errors = list(jsonschema.Draft202012Validator(scenario_json_schema()).iter_errors(document))
    assert any("colour" in error.message for error in errors)


SCHEMA_BASE: dict[str, Any] = {
    "version": 1,
    "name": "x",
    "load": {"users": 1, "duration": "1s", "requests": [{"messages": [{"role": "user", "content": "x"}]}]},
}


@pytest.mark.parametrize(
    ("case", "slo", "load"),
    [
        ("unknown metric", {"metric": "tfft", "percentile": 95, "max": "1s"}, {}),
        ("latency limit without unit", {"metric": "ttft", "percentile": 95, "max": 1}, {}),
        ("latency without percentile", {"metric": "ttft", "max": "1s"}, {}),
        ("percentile on a ratio", {"metric": "error_rate", "percentile": 95, "max": "1%"}, {}),
        ("ratio without percent sign", {"metric": "error_rate", "max": 0.5}, {}),
        ("both limits", {"metric": "error_rate", "max": "1%", "min": "0%"}, {}),
        ("no limit", {"metric": "error_rate"}, {}),
        ("closed model without users", {"metric": "error_rate", "max": "1%"}, {"users": None}),
        ("open model with users", {"metric": "error_rate", "max": "1%"}, {"model": "open", "rate_per_s": 5}),
    ],
)
def test_json_schema_rejects_what_loader_rejects(
    case: str, slo: dict[str, Any], load: dict[str, Any]
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    merged = {key: value for key, value in {**SCHEMA_BASE["load"], **load}.items() if value is not None}
    document = {**SCHEMA_BASE, "load": merged, "slo": [slo]}
    with pytest.raises(ValueError):
        Scenario.model_validate(document)
    errors = list(jsonschema.Draft202012Validator(scenario_json_schema()).iter_errors(document))
    assert errors, f"the JSON Schema accepted: {case}"


def test_json_schema_accepts_valid_slo_forms() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    slos = [
        {"metric": "ttft", "percentile": "p99.9", "max": "1.5s"},
        {"metric": "error_rate", "max": "0.5%"},
        {"metric": "throughput", "min": "18/s"},
        {"metric": "throughput", "min": 18},
    ]
    document = {**SCHEMA_BASE, "slo": slos}
    Scenario.model_validate(document)
    assert list(jsonschema.Draft202012Validator(scenario_json_schema()).iter_errors(document)) == []


def test_json_schema_is_serializable() -> None:
    schema = scenario_json_schema()
    assert json.loads(json.dumps(schema))["$schema"].endswith("2020-12/schema")


def test_stack_fallback_chain_written_to_gateway_config() -> None:
    spec = StackSpec.model_validate(
        {
            "upstreams": {"primary": {"retry": {"base_backoff": "50ms"}}, "backup": {"idle_timeout": "2s"}},
            "models": {"chat": {"upstream": "primary", "fallbacks": ["backup"]}, "plain": "backup"},
            "load_shedding": {"max_in_flight": 10, "retry_after": "1500ms"},
            "shutdown": {"drain_timeout": "5s"},
        }
    )
    urls = {"primary": "http://127.0.0.1:1/v1", "backup": "http://127.0.0.1:2/v1"}
    config = gateway_config(spec, "redis://127.0.0.1:3/0", urls, {"default": "sk-x"})
    assert config["models"]["chat"]["fallbacks"] == ["backup"]
    assert config["models"]["plain"] == {"upstream": "backup", "upstream_model": "mock-llm", "fallbacks": []}
    assert config["upstreams"]["primary"]["retry"]["base_backoff_s"] == 0.05
    assert config["upstreams"]["backup"]["idle_timeout_s"] == 2.0
    assert config["load_shedding"]["retry_after_s"] == 2
    assert config["shutdown"] == {"drain_timeout_s": 5.0}
    assert GatewayConfig(**config).route_chain("chat")[1].upstream == "backup"


def test_stack_fallback_cycle_rejected() -> None:
    models = {
        "a": {"upstream": "primary", "fallbacks": [{"model": "b"}]},
        "b": {"upstream": "primary", "fallbacks": [{"model": "a"}]},
    }
    with pytest.raises(ValidationError, match="fallback cycle a -> b -> a"):
        StackSpec.model_validate({"models": models})


def test_stack_unknown_fallback_upstream_rejected() -> None:
    with pytest.raises(ValidationError, match="routes to upstream 'ghost'"):
        StackSpec.model_validate({"models": {"a": {"upstream": "primary", "fallbacks": ["ghost"]}}})
