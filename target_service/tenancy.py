"""API keys and tenants: who sent a request, and which limits apply to it."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import Headers

from target_service.config import ANONYMOUS, GatewayConfig, TenantLimits, hash_api_key
from target_service.errors import GatewayError


@dataclass(frozen=True)
class Principal:
    """The tenant and key a request was authenticated as."""

    tenant: str
    key_id: str
    limits: TenantLimits


class AuthenticationError(GatewayError):
    """A missing, malformed or unknown API key (401)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(
            401, message, "invalid_request_error", code=code, headers={"www-authenticate": "Bearer"}
        )


class KeyRing:
    """Maps the SHA-256 of each configured API key to its tenant; raw keys are never kept."""

    def __init__(self, config: GatewayConfig) -> None:
        self.allow_anonymous = config.auth.allow_anonymous
        self._by_hash = {
            key.key_hash(): Principal(tenant, key.id, settings.limits)
            for tenant, settings in config.tenants.items()
            for key in settings.keys
        }
        self._anonymous = Principal(ANONYMOUS, ANONYMOUS, TenantLimits())

    def authenticate(self, headers: Headers) -> Principal:
        """Return the principal of the request's ``Authorization: Bearer`` key, or raise a 401."""
        authorization = headers.get("authorization")
        if authorization is None:
            if self.allow_anonymous:
                return self._anonymous
            raise AuthenticationError(
                "Missing API key: send it as 'Authorization: Bearer <key>'.", "missing_api_key"
            )
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError(
                "Malformed Authorization header: expected 'Bearer <key>'.", "invalid_authorization_header"
            )
        principal = self._by_hash.get(hash_api_key(token.strip()))
        if principal is None:
            raise AuthenticationError("Incorrect API key provided.", "invalid_api_key")
        return principal
