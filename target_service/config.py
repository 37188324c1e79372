"""Gateway configuration: a YAML file plus ``SLOGATE_GATEWAY_*`` environment overrides."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "SLOGATE_GATEWAY_"

LogLevel = Literal["debug", "info", "warning", "error"]


class ConfigError(ValueError):
    """The gateway configuration file or environment is invalid."""


class RedisConfig(BaseModel):
    """Connection to the Redis server that stores shared gateway state."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = "redis://127.0.0.1:6379/0"
    timeout_s: float = Field(default=0.5, gt=0, description="Limit for each connect and each command.")


class RetryConfig(BaseModel):
    """Retries of failed calls to one upstream, before any byte of the response reached the client."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=3, ge=1, le=10, description="Attempts per request, the first included.")
    base_backoff_s: float = Field(
        default=0.1, gt=0, description="Cap of the first retry's random wait; each retry doubles it."
    )
    max_backoff_s: float = Field(
        default=2.0,
        gt=0,
        description="Cap of every wait. A Retry-After longer than this is not waited for: the request "
        "moves on to the next upstream of its chain.",
    )
    budget_ratio: float = Field(
        default=0.2,
        ge=0,
        le=10,
        description="Retries allowed per first attempt in the budget window, so an outage adds at most "
        "this share of load to the upstream.",
    )
    budget_min_retries: int = Field(
        default=10, ge=0, description="Retries allowed in any budget window whatever the traffic."
    )
    budget_window_s: float = Field(default=10.0, gt=0, le=3600)


class BreakerConfig(BaseModel):
    """Circuit breaker of one upstream, kept in memory by each gateway replica."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    failure_ratio: float = Field(
        default=0.5, gt=0, le=1, description="Failed share of the calls in the window that opens it."
    )
    min_calls: int = Field(default=20, ge=1, description="Calls in the window before it may open.")
    window_s: float = Field(default=10.0, gt=0, le=3600, description="Rolling window of call outcomes.")
    cooldown_s: float = Field(default=5.0, gt=0, description="Time open before it admits probes.")
    half_open_probes: int = Field(
        default=1, ge=1, description="Probe calls admitted at once while half-open; all must succeed."
    )


class UpstreamConfig(BaseModel):
    """One OpenAI-compatible server (vLLM, llama.cpp, Ollama, OpenAI, the mock) reached at ``base_url``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(pattern=r"^https?://", description="Base URL that ends before /chat/completions.")
    api_key: SecretStr | None = None
    api_key_env: str | None = Field(
        default=None, description="Environment variable that contains the API key."
    )
    connect_timeout_s: float = Field(
        default=2.0, gt=0, description="Connect, including the wait for a free connection slot."
    )
    first_token_timeout_s: float = Field(
        default=60.0, gt=0, description="From sending a streamed request to its first content delta."
    )
    idle_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Maximum gap between stream chunks after the first token, and between body reads.",
    )
    total_timeout_s: float = Field(default=300.0, gt=0, description="One whole attempt, streams included.")
    max_connections: int = Field(default=256, ge=1)
    retry: RetryConfig = RetryConfig()
    breaker: BreakerConfig = BreakerConfig()

    @model_validator(mode="before")
    @classmethod
    def _renamed_read_timeout(cls, data: Any) -> Any:
        if isinstance(data, dict) and "read_timeout_s" in data:
            raise ValueError("read_timeout_s was renamed idle_timeout_s; rename the key")
        return data

    @model_validator(mode="after")
    def _check_api_key_source(self) -> UpstreamConfig:
        if self.api_key is not None and self.api_key_env is not None:
            raise ValueError("set either api_key or api_key_env, not both")
        if self.api_key_env is not None and self.api_key_env not in os.environ:
            raise ValueError(
                f"api_key_env names {self.api_key_env!r}, but that environment variable is not set"
            )
        return self

    def bearer_token(self) -> str | None:
        """Return the API key to send upstream, read from the environment when ``api_key_env`` is set."""
        if self.api_key_env is not None:
            return os.environ.get(self.api_key_env)
        return self.api_key.get_secret_value() if self.api_key is not None else None


KEY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
ANONYMOUS = "anonymous"
"""Tenant and key id of requests without a key, when ``auth.allow_anonymous`` is set."""


def hash_api_key(raw_key: str) -> str:
    """Return the hex SHA-256 of an API key: what the config stores and what requests are matched by.

    API keys are long random tokens, so a fast hash is enough; it is not a password hash.
    """
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKeyConfig(BaseModel):
    """One API key of a tenant, stored only as its SHA-256 (or read from an environment variable)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=KEY_ID_PATTERN, description="Key id used in logs and metric labels.")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", description="Hex SHA-256 of the key.")
    key_env: str | None = Field(default=None, description="Environment variable that contains the raw key.")

    @model_validator(mode="after")
    def _check_one_source(self) -> ApiKeyConfig:
        if (self.sha256 is None) == (self.key_env is None):
            raise ValueError(f"key {self.id!r}: set exactly one of sha256 or key_env")
        if self.key_env is not None and not os.environ.get(self.key_env):
            raise ValueError(f"key {self.id!r}: key_env names {self.key_env!r}, which is not set or empty")
        return self

    def key_hash(self) -> str:
        if self.sha256 is not None:
            return self.sha256
        assert self.key_env is not None
        return hash_api_key(os.environ[self.key_env])


class ModelLimits(BaseModel):
    """Limits for one key on one model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)


class TenantLimits(BaseModel):
    """Request and token rates per key, per key and model, and per tenant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests_per_minute: int | None = Field(default=None, ge=1, description="Per key.")
    tokens_per_minute: int | None = Field(default=None, ge=1, description="Per key.")
    models: dict[str, ModelLimits] = Field(default_factory=dict, description="Per key and model alias.")
    concurrency: int | None = Field(default=None, ge=1, description="Requests in flight, per tenant.")
    daily_tokens: int | None = Field(default=None, ge=1, description="Tokens per UTC day, per tenant.")


class TenantConfig(BaseModel):
    """A customer of the gateway: its API keys and its limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keys: list[ApiKeyConfig] = Field(min_length=1)
    limits: TenantLimits = TenantLimits()


class AuthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    allow_anonymous: bool = Field(
        default=False,
        description="Serve requests without an Authorization header as the tenant 'anonymous', with no "
        "limits. For local development only; an unknown key is rejected either way.",
    )


class CacheConfig(BaseModel):
    """The exact-match response cache in Redis. When Redis fails, requests skip the cache."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    ttl_s: float = Field(default=300.0, gt=0)
    max_entry_bytes: int = Field(default=1024 * 1024, ge=1, description="Larger responses are not stored.")


class RateLimitConfig(BaseModel):
    """How limits are counted, and what happens when Redis cannot be reached."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Length of the sliding window. A per-minute limit allows limit * window_s / 60 in any "
        "window, so a shorter window keeps the same rate with a shorter wait after a burst.",
    )
    completion_token_estimate: int = Field(
        default=256, ge=1, description="Completion tokens reserved for a request without max_tokens."
    )
    on_redis_error: Literal["fail_open", "fail_closed"] = Field(
        default="fail_open",
        description="fail_open admits requests unchecked; fail_closed answers 503 with Retry-After.",
    )
    fail_closed_retry_after_s: int = Field(default=1, ge=1)


class FallbackUpstream(BaseModel):
    """A fallback upstream, with the model name to send it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    upstream: str
    upstream_model: str | None = Field(default=None, description="Model name sent; null sends the alias's.")


class FallbackModel(BaseModel):
    """A fallback to the whole chain of another model alias."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str


FallbackEntry = str | FallbackUpstream | FallbackModel
"""An upstream name, an upstream with its model name, or another alias's chain."""


class ModelRoute(BaseModel):
    """Route of one model alias: its upstream, then the fallbacks tried in order when it fails."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    upstream: str
    upstream_model: str | None = Field(
        default=None, description="Model name sent upstream, or null for the alias."
    )
    fallbacks: list[FallbackEntry] = Field(
        default_factory=list, description="Tried in order after the upstream fails; see RouteTarget."
    )


class RouteTarget(BaseModel):
    """One step of a resolved fallback chain: an upstream and the model name sent to it."""

    model_config = ConfigDict(frozen=True)

    upstream: str
    upstream_model: str


class LoadSheddingConfig(BaseModel):
    """Limits on requests in flight in one replica; past them a request gets 503 with Retry-After at once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_in_flight: int | None = Field(default=None, ge=1, description="All tenants together.")
    max_in_flight_per_tenant: int | None = Field(default=None, ge=1)
    retry_after_s: int = Field(default=1, ge=1, description="Retry-After of the 503.")


class ShutdownConfig(BaseModel):
    """Graceful shutdown on SIGTERM or SIGINT."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    drain_timeout_s: float = Field(
        default=30.0,
        ge=0,
        description="Time for requests in flight to finish; streams still running then end with an "
        "error event.",
    )


class OtelConfig(BaseModel):
    """OpenTelemetry tracing, which needs the ``otel`` extra; OTEL_* variables configure the exporter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False


class GatewayConfig(BaseSettings):
    """Complete gateway configuration, in which environment variables override the YAML file."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    redis: RedisConfig = RedisConfig()
    upstreams: dict[str, UpstreamConfig] = Field(default_factory=dict)
    models: dict[str, ModelRoute] = Field(default_factory=dict)
    auth: AuthConfig = AuthConfig()
    tenants: dict[str, TenantConfig] = Field(default_factory=dict)
    cache: CacheConfig = CacheConfig()
    rate_limits: RateLimitConfig = RateLimitConfig()
    load_shedding: LoadSheddingConfig = LoadSheddingConfig()
    shutdown: ShutdownConfig = ShutdownConfig()
    otel: OtelConfig = OtelConfig()
    log_level: LogLevel = "info"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The first source wins. The YAML file arrives as init arguments, so the environment overrides it.
        return env_settings, init_settings

    @model_validator(mode="after")
    def _check_routes(self) -> GatewayConfig:
        if not self.models:
            raise ValueError("models: configure at least one model alias")
        for alias in self.models:
            self.route_chain(alias)
        return self

    @model_validator(mode="after")
    def _check_tenants(self) -> GatewayConfig:
        if not self.tenants and not self.auth.allow_anonymous:
            raise ValueError("tenants: configure at least one tenant with a key, or set auth.allow_anonymous")
        if ANONYMOUS in self.tenants:
            raise ValueError(f"tenants: {ANONYMOUS!r} is reserved for requests without a key")
        key_ids: dict[str, str] = {}
        hashes: dict[str, str] = {}
        for tenant, settings in self.tenants.items():
            if not re.match(KEY_ID_PATTERN, tenant):
                raise ValueError(
                    f"tenants: invalid tenant name {tenant!r}; use letters, digits, '_', '.', '-'"
                )
            for key in settings.keys:
                if key.id in key_ids:
                    raise ValueError(
                        f"key id {key.id!r} is used by tenants {key_ids[key.id]!r} and {tenant!r}"
                    )
                key_ids[key.id] = tenant
                if key.key_hash() in hashes:
                    raise ValueError(f"keys {hashes[key.key_hash()]!r} and {key.id!r} are the same key")
                hashes[key.key_hash()] = key.id
            for model in settings.limits.models:
                if model not in self.models:
                    raise ValueError(f"tenant {tenant!r} limits model {model!r}, which is not configured")
        return self

    def upstream_model(self, alias: str) -> str:
        """Return the model name sent upstream for ``alias``."""
        return self.models[alias].upstream_model or alias

    def route_chain(self, alias: str) -> list[RouteTarget]:
        """Return the upstreams that ``alias`` tries, in order, with other aliases' chains expanded.

        Raises ValueError for an unknown upstream or alias, a cycle of aliases, or an upstream
        and model name that the chain would try twice.
        """
        chain = self._expand(alias, [])
        seen: set[RouteTarget] = set()
        for target in chain:
            if target in seen:
                raise ValueError(
                    f"model {alias!r}: its fallback chain tries upstream {target.upstream!r} with model "
                    f"{target.upstream_model!r} twice; remove one of them"
                )
            seen.add(target)
        return chain

    def _expand(self, alias: str, path: list[str]) -> list[RouteTarget]:
        if alias in path:
            cycle = " -> ".join([*path[path.index(alias) :], alias])
            raise ValueError(f"models: fallback cycle {cycle}; remove one of these model references")
        route = self.models.get(alias)
        if route is None:
            raise ValueError(
                f"model {path[-1]!r} falls back to model {alias!r}, which is not configured "
                f"(configured models: {', '.join(sorted(self.models))})"
            )
        model_name = route.upstream_model or alias
        chain = [self._target(alias, route.upstream, model_name)]
        for entry in route.fallbacks:
            if isinstance(entry, FallbackModel):
                chain += self._expand(entry.model, [*path, alias])
            elif isinstance(entry, FallbackUpstream):
                chain.append(self._target(alias, entry.upstream, entry.upstream_model or model_name))
            else:
                chain.append(self._target(alias, entry, model_name))
        return chain

    def _target(self, alias: str, upstream: str, model_name: str) -> RouteTarget:
        if upstream not in self.upstreams:
            known = ", ".join(sorted(self.upstreams)) or "none"
            raise ValueError(
                f"model {alias!r} routes to upstream {upstream!r}, which is not configured "
                f"(configured upstreams: {known})"
            )
        return RouteTarget(upstream=upstream, upstream_model=model_name)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path``, raising ConfigError with the file and line of a syntax error."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read gateway config {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML in gateway config {path}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"gateway config {path} must contain a YAML mapping, not {type(data).__name__}")
    return data


def load_config(path: Path | None) -> GatewayConfig:
    """Load the gateway configuration from ``path`` (or only the environment) and validate it.

    Environment variables such as ``SLOGATE_GATEWAY_UPSTREAMS__PRIMARY__BASE_URL`` override
    single keys of the file. Names are case-insensitive, so a model alias set through the
    environment is lowercase.
    """
    data = read_yaml(path) if path is not None else {}
    source = f"{path} and SLOGATE_GATEWAY_* variables" if path is not None else "SLOGATE_GATEWAY_* variables"
    try:
        return GatewayConfig(**data)
    except ValidationError as exc:
        raise ConfigError(f"invalid gateway config ({source}):\n{_format_errors(exc)}") from exc


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if not location:
            lines.append(f"  {message}")  # a whole-config check, whose message names its keys
            continue
        value = error.get("input")
        shown = (
            isinstance(value, str | int | float | bool)
            and "api_key" not in location
            and "sha256" not in location
        )
        lines.append(f"  {location}: {message}" + (f" (got {value!r})" if shown else ""))
    return "\n".join(lines)
