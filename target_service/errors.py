"""Errors in OpenAI's wire shape, ``{"error": {"message", "type", "param", "code"}}``, and their handlers."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

ErrorClass = Literal["connect", "timeout", "http_4xx", "http_5xx", "stream", "breaker_open", "shutdown"]
"""Failure classes of an upstream call, used as the ``error_class`` metric label and log field.

``breaker_open`` (no call made: the breaker turned it away) and ``shutdown`` (a stream the drain
ended) appear in the request log only, never in the upstream error metric.
"""


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """Return an OpenAI error body."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class GatewayError(Exception):
    """A request failure that the client receives as an HTTP status with an OpenAI error body."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.code, self.param)

    def to_response(self) -> Response:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


class InvalidRequestError(GatewayError):
    """The request body is malformed (400)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(400, message, "invalid_request_error", code="invalid_request", param=param)


class ModelNotFoundError(GatewayError):
    """The request names a model alias that is not configured (404)."""

    def __init__(self, model: str) -> None:
        super().__init__(
            404,
            f"The model {model!r} does not exist on this gateway; GET /v1/models lists the available models.",
            "invalid_request_error",
            code="model_not_found",
            param="model",
        )


class UpstreamError(GatewayError):
    """A failed upstream call, classified by ``error_class``.

    ``retryable`` marks the failures worth another attempt on the same upstream: connect errors,
    HTTP 429, 502, 503 and 504, and timeouts before the first token. ``retry_after_s`` is the
    upstream's Retry-After, a floor for the wait before that attempt.
    """

    def __init__(
        self,
        upstream: str,
        error_class: ErrorClass,
        status: int,
        message: str,
        code: str,
        headers: Mapping[str, str] | None = None,
        retryable: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        type_ = "timeout_error" if error_class == "timeout" else "upstream_error"
        super().__init__(status, message, type_, code=code, headers=headers)
        self.upstream = upstream
        self.error_class: ErrorClass = error_class
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class PassthroughError(UpstreamError):
    """An upstream 4xx whose status, body and relevant headers go to the client unchanged."""

    def __init__(
        self,
        upstream: str,
        status: int,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str],
        retry_after_s: float | None = None,
    ):
        super().__init__(
            upstream,
            "http_4xx",
            status,
            f"upstream {upstream} returned HTTP {status}",
            "upstream_4xx",
            retryable=status == 429,
            retry_after_s=retry_after_s,
        )
        self.raw_body = body
        self.content_type = content_type
        self.headers = dict(headers)

    def body(self) -> dict[str, Any]:
        try:
            parsed = json.loads(self.raw_body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            return parsed
        return super().body()

    def to_response(self) -> Response:
        return Response(
            self.raw_body, status_code=self.status, headers=self.headers, media_type=self.content_type
        )


class BreakerOpenError(UpstreamError):
    """The upstream's circuit breaker turned the call away (503 with Retry-After)."""

    def __init__(self, upstream: str, retry_after_s: float) -> None:
        retry_after = str(max(1, math.ceil(retry_after_s)))
        super().__init__(
            upstream,
            "breaker_open",
            503,
            f"upstream {upstream} is unavailable: its circuit breaker is open; retry after {retry_after} s",
            "upstream_unavailable",
            headers={"retry-after": retry_after},
        )


class ServiceUnavailableError(GatewayError):
    """The gateway turns the request away at once (503 with Retry-After): overloaded, or shutting down."""

    def __init__(self, message: str, code: str, retry_after_s: float) -> None:
        retry_after = str(max(1, math.ceil(retry_after_s)))
        super().__init__(503, message, "service_unavailable", code=code, headers={"retry-after": retry_after})


def shutting_down_error() -> ServiceUnavailableError:
    """Return the error of a request that the gateway ends because its drain time ran out."""
    return ServiceUnavailableError(
        "The gateway is shutting down and ended this request; retry it.", "server_shutting_down", 1
    )


INTERNAL_ERROR_BODY = error_body("internal gateway error", "server_error", code="internal_error")


def install_error_handlers(app: FastAPI) -> None:
    """Make the error responses of ``app`` use the OpenAI error shape.

    Unexpected exceptions are turned into a 500 with ``INTERNAL_ERROR_BODY`` by the request middleware.
    """
    app.add_exception_handler(GatewayError, _handle_gateway_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_exception)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)


async def _handle_gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return exc.to_response()


async def _handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
    body = error_body(str(exc.detail), type_, code=_http_code(exc.status_code))
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _handle_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return GatewayError(400, str(exc), "invalid_request_error", code="invalid_request").to_response()


def _http_code(status: int) -> str:
    return {404: "not_found", 405: "method_not_allowed"}.get(status, f"http_{status}")
