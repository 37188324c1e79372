"""docs/metrics.md lists exactly the metrics a live gateway exposes, with their types and labels."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.gateway_helpers import chat, gateway_config, tenants, upstream
from tests.integration.servers import RunningServer, running_gateway, running_mock

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
ROW = re.compile(r"^\| `(slogate_[a-z_]+)` \| (\w+) \|([^|]*)\|", re.MULTILINE)


def documented() -> dict[str, tuple[str, set[str]]]:
    rows = ROW.findall(DOC.read_text(encoding="utf-8"))
    return {name: (kind, set(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows}


@pytest.fixture(scope="module")
def busy_gateway(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[RunningServer]:
    """A gateway that has retried, opened a breaker, fallen back, cached, rate-limited and shed."""
    log_dir = tmp_path_factory.mktemp("metrics-doc")
    with ExitStack() as servers:
        failing = servers.enter_context(
            running_mock("failing", log_dir, "--error-rate", "1", "--error-status", "503")
        )
        healthy = servers.enter_context(running_mock("healthy", log_dir, "--output-tokens", "4"))
        retry = {"max_attempts": 2, "base_backoff_s": 0.01, "budget_min_retries": 1, "budget_ratio": 0}
        breaker = {"enabled": True, "min_calls": 3, "cooldown_s": 60}
        config = gateway_config(
            redis_url,
            {"primary": upstream(failing, retry=retry, breaker=breaker), "fallback": upstream(healthy)},
            tenants=tenants(**{"team-b": {"requests_per_minute": 1}}),
            cache={"enabled": True},
            load_shedding={"max_in_flight": 1000},
        )
        gateway = servers.enter_context(running_gateway("gateway", log_dir, config))
        for _ in range(5):
            chat(gateway, stream=True, temperature=0)
        chat(gateway, tenant="team-b")
        chat(gateway, tenant="team-b")
        yield gateway


def live_families(gateway: RunningServer) -> dict[str, tuple[str, set[str]]]:
    text = httpx.get(f"{gateway.url}/metrics", timeout=5).text
    families = {}
    for family in text_string_to_metric_families(text):
        if family.name.endswith("_created"):
            continue  # the creation time prometheus_client adds beside each labelled counter
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = {
            label
            for sample in family.samples
            if not sample.name.endswith("_created")
            for label in sample.labels
            if label != "le"
        }
        families[name] = (family.type, labels)
    return families


def test_metrics_doc_lists_every_live_metric(busy_gateway: RunningServer) -> None:
    assert set(live_families(busy_gateway)) == set(documented())


@pytest.mark.parametrize("name", sorted(documented()))
def test_metrics_doc_type_and_labels(busy_gateway: RunningServer, name: str) -> None:
    kind, labels = documented()[name]
    live_kind, live_labels = live_families(busy_gateway)[name]
    assert live_kind == kind
    if live_labels or not labels:
        assert live_labels == labels
