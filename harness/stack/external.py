"""The external backend: scenarios run against a gateway that is already running; nothing is started.

Scenario settings that only a managed stack can honour (replicas, mock upstreams, models) are
rejected by name, so a scenario never silently runs against something else than it describes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from harness.scenario.faults import ToxicSpec
from harness.scenario.stack import StackSpec
from harness.stack.base import Endpoints
from harness.stack.errors import StackError

EXTERNAL_TENANT = "external"
"""Tenant name of the one API key given on the command line."""
PROBE_INTERVAL_S = 0.5


def normalize_base_url(url: str) -> str:
    """Return ``url`` without a trailing slash or ``/v1``: the engine appends ``/v1/chat/completions``."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise StackError(f"invalid --target-url {url!r}: use http://HOST[:PORT] or https://HOST[:PORT]")
    base = url.rstrip("/")
    return base.removesuffix("/v1")


def managed_settings(spec: StackSpec) -> list[str]:
    """Return the ``stack.*`` settings a scenario set, each of which needs a managed stack."""
    return [f"stack.{name}" for name in sorted(spec.model_fields_set)]


class ExternalStack:
    """A gateway reached at ``base_url`` with an optional API key."""

    name = "external"
    fault_actions: tuple[str, ...] = ()

    def __init__(self, spec: StackSpec, base_url: str, api_key: str | None, ready_timeout_s: float) -> None:
        self.spec = spec
        self.base_url = normalize_base_url(base_url)
        self.api_key = api_key
        self.ready_timeout_s = ready_timeout_s
        self.endpoints: Endpoints | None = None

    def up(self) -> Endpoints:
        if self.endpoints is not None:
            return self.endpoints
        rejected = managed_settings(self.spec)
        if rejected:
            raise StackError(
                f"these stack settings need a managed stack: {', '.join(rejected)}; --backend external "
                "runs against a gateway that is already running, so remove them from the scenario or "
                "run it with --backend local"
            )
        models = self._served_models()
        api_keys = {EXTERNAL_TENANT: self.api_key} if self.api_key else {}
        self.endpoints = Endpoints(gateway_urls=(self.base_url,), models=models, api_keys=api_keys)
        return self.endpoints

    def _served_models(self) -> tuple[str, ...]:
        """Return the model ids of GET /v1/models, retrying until the gateway answers or time runs out."""
        url = f"{self.base_url}/v1/models"
        headers = {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            try:
                response = httpx.get(url, headers=headers, timeout=min(5.0, self.ready_timeout_s))
                if response.status_code == 200:
                    return _model_ids(response, url)
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise StackError(
                    f"the external gateway did not answer GET {url} within {self.ready_timeout_s:g} s "
                    f"({problem}); check --target-url and --api-key"
                )
            time.sleep(PROBE_INTERVAL_S)

    def down(self) -> None:
        self.endpoints = None

    def is_healthy(self) -> bool:
        return True

    def logs(self) -> dict[str, Path]:
        return {}

    def reset_state(self) -> None:
        """Leave the external gateway's state alone: its cache and counters persist between scenarios."""

    def apply_toxic(self, target: str, toxic: ToxicSpec) -> Callable[[], None]:
        raise StackError(
            f"the {toxic.type} fault on {target} needs a managed stack with a fault proxy, but --backend "
            "external only sends traffic; remove faults from the scenario, or run it with --backend local"
        )

    def apply_fault(self, target: str, action: str) -> Callable[[], None]:
        raise StackError(
            f"the fault on {target} ({action}) needs a managed stack, but --backend external only sends "
            "traffic; remove faults from the scenario, or run it with --backend local"
        )


def _model_ids(response: httpx.Response, url: str) -> tuple[str, ...]:
    try:
        ids = tuple(str(model["id"]) for model in response.json()["data"])
    except (ValueError, KeyError, TypeError):
        raise StackError(f"GET {url} did not return an OpenAI model list: {response.text[:200]}") from None
    if not ids:
        raise StackError(f"GET {url} lists no model; the scenario's requests would have none to name")
    return ids
