"""Request bodies and errors of the Toxiproxy HTTP API as the embedded fault proxy parses and returns them."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


class Direction(StrEnum):
    """The side of a connection a toxic acts on, named as Toxiproxy names its ``stream`` field."""

    UPSTREAM = "upstream"  # client -> upstream server
    DOWNSTREAM = "downstream"  # upstream server -> client


class ApiError(Exception):
    """An error that the API returns as Toxiproxy does: ``{"error": message, "status": code}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "status": self.status}


def not_found(what: str, name: str) -> ApiError:
    return ApiError(404, f"{what} not found: {name!r}")


def bad_request_body(detail: str) -> ApiError:
    return ApiError(400, f"bad request body: {detail}")


class _Body(BaseModel):
    # Unknown top-level fields are ignored, as Toxiproxy's JSON decoder ignores them: clients send whole
    # proxy objects back (with "toxics", for example) when they update one.
    model_config = ConfigDict(extra="ignore")


class ProxyFields(_Body):
    """Body of ``POST /proxies``, ``POST|PATCH /proxies/{proxy}`` and each entry of ``POST /populate``."""

    name: StrictStr | None = None
    listen: StrictStr | None = None
    upstream: StrictStr | None = None
    enabled: StrictBool | None = None


class ToxicFields(_Body):
    """Body of ``POST /proxies/{proxy}/toxics`` and of a toxic update."""

    name: StrictStr | None = None
    type: StrictStr | None = None
    stream: StrictStr | None = None
    toxicity: StrictFloat | StrictInt | None = None
    attributes: dict[str, Any] | None = None


def decode_json(raw: bytes) -> Any:
    """Parse a request body; an empty or malformed body is a 400 that shows the parser's message."""
    if not raw.strip():
        raise bad_request_body("the body is empty; send a JSON document")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request_body(f"invalid JSON: {exc}") from exc


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """Render pydantic errors as ``field: problem, got VALUE`` clauses joined by semicolons."""
    clauses = []
    for error in exc.errors():
        field = ".".join(str(part) for part in (prefix, *error["loc"]) if part != "")
        clauses.append(f"{field or 'body'}: {error['msg'].lower()}, got {error.get('input')!r}")
    return "; ".join(clauses)


def parse_body(model: type[ModelT], data: Any, where: str = "") -> ModelT:
    """Validate decoded JSON against ``model``; a mismatch is a 400 naming each bad field and value."""
    if not isinstance(data, dict):
        raise bad_request_body(f"{where or 'the body'} must be a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise bad_request_body(describe_validation_error(exc, where)) from exc
