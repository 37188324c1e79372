"""The harness's client of a Toxiproxy API, the embedded server's or toxiproxy-server's, on toxiproxy-python.

toxiproxy-python keeps the server address in class attributes of its ``APIConsumer``, and its
``Toxiproxy`` and ``Proxy`` objects send requests without a timeout. This client therefore calls
``APIConsumer`` through a subclass that carries its own address, with a timeout on every request,
and keeps toxiproxy-python's mapping of 400, 404 and 409 to exceptions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from harness.faults.addresses import parse_host_port
from harness.faults.models import ApiError

DEFAULT_TIMEOUT_S = 5.0


class FaultProxyError(RuntimeError):
    """A request to the fault proxy API failed; ``status`` is the HTTP status, or None if none came back."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ToxicInfo:
    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ToxicInfo:
        return cls(data["name"], data["type"], data["stream"], data["toxicity"], data["attributes"])


@dataclass(frozen=True)
class ProxyInfo:
    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: tuple[ToxicInfo, ...]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProxyInfo:
        toxics = tuple(ToxicInfo.from_json(toxic) for toxic in data.get("toxics") or [])
        return cls(data["name"], data["listen"], data["upstream"], data["enabled"], toxics)

    @property
    def listen_address(self) -> tuple[str, int]:
        """Return (host, port) of ``listen``, ready for ``socket.create_connection``."""
        try:
            address = parse_host_port(self.listen, "listen")
        except ApiError as exc:
            raise FaultProxyError(f"proxy {self.name}: {exc.message}") from exc
        return address.host, address.port


def _api_consumer(host: str, port: int) -> Any:
    try:
        from toxiproxy.api import APIConsumer
    except ImportError as exc:
        raise FaultProxyError(
            "toxiproxy-python is not installed; install it with pip install toxiproxy-python"
        ) from exc
    return type("SlogateAPIConsumer", (APIConsumer,), {"host": host, "port": port})


class FaultProxyClient:
    """Create proxies and add or remove toxics through a Toxiproxy API at ``url`` (http only)."""

    def __init__(self, url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise FaultProxyError(f"fault proxy URL must be http://HOST:PORT, got {url!r}")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        self.url = url
        self.timeout_s = timeout_s
        self._api = _api_consumer(host, parts.port)

    def version(self) -> str:
        return str(self._request("get", "/version").json()["version"])

    def proxies(self) -> dict[str, ProxyInfo]:
        listing = self._request("get", "/proxies").json()
        return {name: ProxyInfo.from_json(data) for name, data in listing.items()}

    def get_proxy(self, name: str) -> ProxyInfo:
        return ProxyInfo.from_json(self._request("get", f"/proxies/{name}").json())

    def create_proxy(
        self, name: str, upstream: str, listen: str = "127.0.0.1:0", enabled: bool = True
    ) -> ProxyInfo:
        body = {"name": name, "upstream": upstream, "listen": listen, "enabled": enabled}
        return ProxyInfo.from_json(self._request("post", "/proxies", body).json())

    def set_enabled(self, name: str, enabled: bool) -> ProxyInfo:
        """Enable or disable a proxy; disabling closes its listener and every live connection."""
        return ProxyInfo.from_json(self._request("post", f"/proxies/{name}", {"enabled": enabled}).json())

    def delete_proxy(self, name: str) -> None:
        self._request("delete", f"/proxies/{name}")

    def add_toxic(
        self,
        proxy: str,
        toxic_type: str,
        *,
        stream: str = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
        **attributes: int,
    ) -> ToxicInfo:
        """Add a toxic, for example ``add_toxic("redis", "latency", latency=100, jitter=10)``."""
        body = {
            "name": name or f"{toxic_type}_{stream}",
            "type": toxic_type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": attributes,
        }
        return ToxicInfo.from_json(self._request("post", f"/proxies/{proxy}/toxics", body).json())

    def update_toxic(
        self, proxy: str, name: str, *, toxicity: float | None = None, **attributes: int
    ) -> ToxicInfo:
        body: dict[str, Any] = {"attributes": attributes}
        if toxicity is not None:
            body["toxicity"] = toxicity
        return ToxicInfo.from_json(self._request("post", f"/proxies/{proxy}/toxics/{name}", body).json())

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._request("delete", f"/proxies/{proxy}/toxics/{name}")

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self._request("post", "/reset")

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

        statuses = {InvalidToxic: 400, NotFound: 404, ProxyExists: 409}
        kwargs: dict[str, Any] = {"timeout": self.timeout_s}
        if body is not None:
            kwargs["json"] = body
        try:
            response = getattr(self._api, method)(path, **kwargs)
        except (InvalidToxic, NotFound, ProxyExists) as exc:
            status = statuses[type(exc)]
            raise FaultProxyError(self._failure(method, path, status, exc.args[0]), status) from exc
        except OSError as exc:  # requests' connection errors and timeouts derive from OSError
            raise FaultProxyError(
                f"{method.upper()} {self.url}{path} failed: {exc}; is the fault proxy running?"
            ) from exc
        if response.status_code >= 400:
            status = response.status_code
            raise FaultProxyError(self._failure(method, path, status, response.content), status)
        return response

    def _failure(self, method: str, path: str, status: int, content: bytes) -> str:
        try:
            detail = json.loads(content)["error"]
        except (ValueError, KeyError, TypeError):
            detail = content.decode("utf-8", "replace").strip()
        return f"{method.upper()} {self.url}{path} returned HTTP {status}: {detail}"
