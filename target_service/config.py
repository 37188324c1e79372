"""Gateway configuration: a YAML file plus ``SLOGATE_GATEWAY_*`` environment overrides."""

from __future__ import annotations

import os
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


class UpstreamConfig(BaseModel):
    """One OpenAI-compatible server (vLLM, llama.cpp, Ollama, OpenAI, the mock) reached at ``base_url``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(pattern=r"^https?://", description="Base URL that ends before /chat/completions.")
    api_key: SecretStr | None = None
    api_key_env: str | None = Field(
        default=None, description="Environment variable that contains the API key."
    )
    connect_timeout_s: float = Field(default=2.0, gt=0)
    read_timeout_s: float = Field(
        default=30.0, gt=0, description="Maximum gap between bytes from the upstream."
    )
    total_timeout_s: float = Field(default=300.0, gt=0)
    max_connections: int = Field(default=256, ge=1)

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


class ModelRoute(BaseModel):
    """Route of one model alias to an upstream."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    upstream: str
    upstream_model: str | None = Field(
        default=None, description="Model name sent upstream, or null for the alias."
    )


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
        for alias, route in self.models.items():
            if route.upstream not in self.upstreams:
                known = ", ".join(sorted(self.upstreams)) or "none"
                raise ValueError(
                    f"model {alias!r} routes to upstream {route.upstream!r}, which is not configured "
                    f"(configured upstreams: {known})"
                )
        return self

    def upstream_model(self, alias: str) -> str:
        """Return the model name sent upstream for ``alias``."""
        return self.models[alias].upstream_model or alias


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
        location = ".".join(str(part) for part in error["loc"]) or "models"
        value = error.get("input")
        shown = isinstance(value, str | int | float | bool) and "api_key" not in location
        lines.append(f"  {location}: {error['msg']}" + (f" (got {value!r})" if shown else ""))
    return "\n".join(lines)
