"""The embedded fault proxy's HTTP API against Toxiproxy's: driven by toxiproxy-python and by raw HTTP."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from harness.faults.client import FaultProxyClient, ProxyInfo
from harness.faults.launcher import RunningFaultProxy
from harness.faults.server import TOXIPROXY_API_VERSION
from tests.integration.faults.tcp import (
    EchoServer,
    connect,
    listener_address,
    recv_until_eof,
    refuses_connections,
    round_trip_s,
)


@pytest.fixture
def toxiproxy(fault_server: RunningFaultProxy) -> Iterator[Toxiproxy]:
    """toxiproxy-python pointed at the embedded server; it keeps the address in class attributes."""
    saved = APIConsumer.host, APIConsumer.port
    parts = urlsplit(fault_server.url)
    server = Toxiproxy()
    server.update_api_consumer(parts.hostname, parts.port)
    try:
        yield server
    finally:
        server.destroy_all()
        APIConsumer.host, APIConsumer.port = saved


@pytest.fixture
def api(fault_server: RunningFaultProxy) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fault_server.url, timeout=5.0) as client:
        yield client
        for name in client.get("/proxies").json():
            client.delete(f"/proxies/{name}")


def as_info(proxy: object) -> ProxyInfo:
    """Turn a toxiproxy-python Proxy into the harness's ProxyInfo, to reuse the socket helpers."""
    fields = vars(proxy)
    return ProxyInfo(fields["name"], fields["listen"], fields["upstream"], fields["enabled"], ())


# toxiproxy-python


def test_toxiproxy_python_creates_and_lists(toxiproxy: Toxiproxy, echo_server: EchoServer) -> None:
    proxy = toxiproxy.create(upstream=echo_server.address, name="echo")
    assert proxy.enabled is True
    assert not proxy.listen.endswith(":0"), "the listen address kept port 0"
    assert set(toxiproxy.proxies()) == {"echo"}
    fetched = toxiproxy.get_proxy("echo")
    assert fetched.upstream == echo_server.address
    assert fetched.listen == proxy.listen
    with connect(as_info(proxy)) as sock:
        assert round_trip_s(sock) < 0.05


def test_toxiproxy_python_reports_version(toxiproxy: Toxiproxy) -> None:
    assert TOXIPROXY_API_VERSION.encode() in toxiproxy.version()


def test_toxiproxy_python_adds_and_removes_toxics(toxiproxy: Toxiproxy, echo_server: EchoServer) -> None:
    proxy = toxiproxy.create(upstream=echo_server.address, name="echo")
    proxy.add_toxic(type="latency", attributes={"latency": 100, "jitter": 5})
    proxy.add_toxic(type="bandwidth", stream="upstream", toxicity=0.5, attributes={"rate": 64})
    toxics = proxy.toxics()
    assert set(toxics) == {"latency_downstream", "bandwidth_upstream"}
    latency = proxy.get_toxic("latency_downstream")
    assert latency.attributes == {"latency": 100, "jitter": 5}
    assert (latency.stream, latency.toxicity) == ("downstream", 1.0)
    assert toxics["bandwidth_upstream"].toxicity == 0.5
    assert proxy.destroy_toxic("latency_downstream") is True
    assert set(proxy.toxics()) == {"bandwidth_upstream"}


def test_toxiproxy_python_down_closes_and_reopens(toxiproxy: Toxiproxy, echo_server: EchoServer) -> None:
    proxy = toxiproxy.create(upstream=echo_server.address, name="echo")
    info = as_info(proxy)
    with connect(info) as live:
        round_trip_s(live)
        with proxy.down():
            assert toxiproxy.get_proxy("echo").enabled is False
            assert recv_until_eof(live) == b"", "a live connection survived down()"
            assert refuses_connections(info)
    assert toxiproxy.get_proxy("echo").listen == proxy.listen
    with connect(info) as sock:
        assert round_trip_s(sock) < 0.05


def test_toxiproxy_python_reset_restores_proxies(toxiproxy: Toxiproxy, echo_server: EchoServer) -> None:
    proxy = toxiproxy.create(upstream=echo_server.address, name="echo")
    proxy.add_toxic(type="latency", attributes={"latency": 200})
    with connect(as_info(proxy)) as live:
        assert round_trip_s(live) >= 0.2
        assert toxiproxy.reset() is True
        assert round_trip_s(live) < 0.05, "reset kept the toxic on a live connection"
    proxy.disable()
    toxiproxy.reset()
    restored = toxiproxy.get_proxy("echo")
    assert restored.enabled is True
    assert restored.toxics() == {}


def test_toxiproxy_python_destroy_removes_proxy(toxiproxy: Toxiproxy, echo_server: EchoServer) -> None:
    proxy = toxiproxy.create(upstream=echo_server.address, name="echo")
    assert toxiproxy.destroy(proxy) is True
    assert toxiproxy.get_proxy("echo") is None
    assert refuses_connections(as_info(proxy))


def test_toxiproxy_python_maps_409_to_proxy_exists(toxiproxy: Toxiproxy, echo_server: EchoServer) -> None:
    proxy = toxiproxy.create(upstream=echo_server.address, name="echo")
    proxy.add_toxic(type="latency", attributes={"latency": 1})
    with pytest.raises(ProxyExists, match="toxic already exists"):
        proxy.add_toxic(type="latency", attributes={"latency": 2})


def test_toxiproxy_python_maps_404_to_not_found(toxiproxy: Toxiproxy, echo_server: EchoServer) -> None:
    proxy = toxiproxy.create(upstream=echo_server.address, name="echo")
    with pytest.raises(NotFound, match="toxic not found"):
        proxy.destroy_toxic("missing")
    proxy.destroy()
    with pytest.raises(NotFound, match="proxy not found"):
        proxy.toxics()


def test_toxiproxy_python_maps_400_to_invalid_toxic(toxiproxy: Toxiproxy, echo_server: EchoServer) -> None:
    proxy = toxiproxy.create(upstream=echo_server.address, name="echo")
    with pytest.raises(InvalidToxic, match="invalid toxic type"):
        proxy.add_toxic(type="earthquake")


# Raw HTTP: status codes, bodies, and the endpoints toxiproxy-python does not use.


def create(api: httpx.Client, name: str, upstream: str, **fields: object) -> httpx.Response:
    return api.post("/proxies", json={"name": name, "upstream": upstream, **fields})


def test_api_create_proxy_returns_201(api: httpx.Client, echo_server: EchoServer) -> None:
    response = create(api, "echo", echo_server.address, listen="127.0.0.1:0")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"name", "listen", "upstream", "enabled", "toxics"}
    assert body["listen"].startswith("127.0.0.1:")
    assert body["listen"] != "127.0.0.1:0"
    assert (body["upstream"], body["enabled"], body["toxics"]) == (echo_server.address, True, [])


def test_api_create_disabled_proxy_does_not_listen(api: httpx.Client, echo_server: EchoServer) -> None:
    response = create(api, "echo", echo_server.address, listen="127.0.0.1:0", enabled=False)
    assert response.status_code == 201
    assert response.json()["enabled"] is False
    assert response.json()["listen"] == "127.0.0.1:0"


def test_api_duplicate_proxy_is_409(api: httpx.Client, echo_server: EchoServer) -> None:
    create(api, "echo", echo_server.address)
    response = create(api, "echo", echo_server.address)
    assert response.status_code == 409
    message = "proxy already exists: 'echo'; delete it first or choose another name"
    assert response.json() == {"error": message, "status": 409}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"upstream": "127.0.0.1:1"}, "missing required field: name"),
        ({"name": "echo"}, "missing required field: upstream"),
        ({"name": "echo", "upstream": "no-port"}, "upstream must be host:port, got 'no-port'"),
        (
            {"name": "echo", "upstream": "127.0.0.1:1", "enabled": "yes"},
            "enabled: input should be a valid boolean",
        ),
        ({"name": "echo", "upstream": "127.0.0.1:1", "listen": "127.0.0.1:99999"}, "port must be 0 to 65535"),
    ],
)
def test_api_invalid_proxy_is_400(api: httpx.Client, body: dict[str, object], message: str) -> None:
    response = api.post("/proxies", json=body)
    assert response.status_code == 400
    assert response.json()["status"] == 400
    assert message in response.json()["error"]


def test_api_malformed_json_is_400(api: httpx.Client) -> None:
    response = api.post("/proxies", content=b"{not json")
    assert response.status_code == 400
    assert response.json()["error"].startswith("bad request body: invalid JSON")


def test_api_listen_address_in_use_is_500(api: httpx.Client, echo_server: EchoServer) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        response = create(api, "echo", echo_server.address, listen=listener_address(taken))
    assert response.status_code == 500
    assert "cannot listen on" in response.json()["error"]
    assert api.get("/proxies/echo").status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/proxies/missing"),
        ("DELETE", "/proxies/missing"),
        ("PATCH", "/proxies/missing"),
        ("GET", "/proxies/missing/toxics"),
        ("POST", "/proxies/missing/toxics"),
        ("GET", "/proxies/echo/toxics/missing"),
        ("PATCH", "/proxies/echo/toxics/missing"),
        ("DELETE", "/proxies/echo/toxics/missing"),
    ],
)
def test_api_unknown_name_is_404(api: httpx.Client, echo_server: EchoServer, method: str, path: str) -> None:
    create(api, "echo", echo_server.address)
    response = api.request(method, path, json={"type": "latency"})
    assert response.status_code == 404
    assert response.json()["status"] == 404
    assert "not found: 'missing'" in response.json()["error"]


def test_api_create_toxic_returns_200(api: httpx.Client, echo_server: EchoServer) -> None:
    create(api, "echo", echo_server.address)
    response = api.post("/proxies/echo/toxics", json={"type": "latency", "attributes": {"latency": 10}})
    assert response.status_code == 200
    assert response.json() == {
        "attributes": {"latency": 10, "jitter": 0},
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1.0,
    }


def test_api_toxic_name_defaults_to_type_stream(api: httpx.Client, echo_server: EchoServer) -> None:
    create(api, "echo", echo_server.address)
    response = api.post("/proxies/echo/toxics", json={"type": "timeout", "stream": "upstream"})
    assert response.json()["name"] == "timeout_upstream"
    assert api.get("/proxies/echo/toxics/timeout_upstream").json()["attributes"] == {"timeout": 0}


def test_api_lists_upstream_toxics_first(api: httpx.Client, echo_server: EchoServer) -> None:
    create(api, "echo", echo_server.address)
    api.post("/proxies/echo/toxics", json={"type": "latency"})
    api.post(
        "/proxies/echo/toxics",
        json={"type": "slicer", "stream": "upstream", "attributes": {"average_size": 8}},
    )
    names = [toxic["name"] for toxic in api.get("/proxies/echo/toxics").json()]
    assert names == ["slicer_upstream", "latency_downstream"]
    assert [toxic["name"] for toxic in api.get("/proxies/echo").json()["toxics"]] == names


@pytest.mark.parametrize(
    ("toxic", "message"),
    [
        ({"type": "earthquake"}, "invalid toxic type: 'earthquake'; valid types are bandwidth, latency"),
        ({}, "invalid toxic type: None"),
        ({"type": "latency", "stream": "sideways"}, "stream was invalid: 'sideways'"),
        ({"type": "latency", "toxicity": 1.5}, "toxicity must be between 0 and 1, got 1.5"),
        (
            {"type": "latency", "attributes": {"latency": "slow"}},
            "attributes.latency: input should be a valid integer",
        ),
        ({"type": "latency", "attributes": {"latency": 1.5}}, "attributes.latency"),
        ({"type": "latency", "attributes": {"latency": -1}}, "greater than or equal to 0, got -1"),
        (
            {"type": "latency", "attributes": {"latancy": 5}},
            "attributes.latancy: extra inputs are not permitted",
        ),
        ({"type": "slicer", "attributes": {"size_variation": 4}}, "attributes.average_size"),
        ({"type": "bandwidth", "attributes": {"rate": True}}, "attributes.rate"),
    ],
)
def test_api_invalid_toxic_is_400(
    api: httpx.Client, echo_server: EchoServer, toxic: dict[str, object], message: str
) -> None:
    create(api, "echo", echo_server.address)
    response = api.post("/proxies/echo/toxics", json=toxic)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert api.get("/proxies/echo/toxics").json() == []


def test_api_duplicate_toxic_is_409(api: httpx.Client, echo_server: EchoServer) -> None:
    create(api, "echo", echo_server.address)
    api.post("/proxies/echo/toxics", json={"type": "latency", "stream": "upstream", "name": "slow"})
    response = api.post("/proxies/echo/toxics", json={"type": "timeout", "name": "slow"})
    assert response.status_code == 409
    message = "toxic already exists: 'slow'; remove it first or choose another name"
    assert response.json() == {"error": message, "status": 409}


@pytest.mark.parametrize("method", ["PATCH", "POST"])
def test_api_update_toxic_merges_attributes(api: httpx.Client, echo_server: EchoServer, method: str) -> None:
    create(api, "echo", echo_server.address)
    api.post("/proxies/echo/toxics", json={"type": "latency", "attributes": {"latency": 10, "jitter": 3}})
    response = api.request(
        method,
        "/proxies/echo/toxics/latency_downstream",
        json={"attributes": {"latency": 20}, "toxicity": 0.25},
    )
    assert response.status_code == 200
    assert response.json()["attributes"] == {"latency": 20, "jitter": 3}
    assert response.json()["toxicity"] == 0.25
    assert api.get("/proxies/echo/toxics/latency_downstream").json() == response.json()


@pytest.mark.parametrize("method", ["PATCH", "POST"])
def test_api_update_proxy_toggles_listener(api: httpx.Client, echo_server: EchoServer, method: str) -> None:
    created = create(api, "echo", echo_server.address).json()
    info = ProxyInfo.from_json(created)
    response = api.request(method, "/proxies/echo", json={"enabled": False})
    assert response.status_code == 200
    assert response.json()["enabled"] is False
    assert refuses_connections(info)
    response = api.request(method, "/proxies/echo", json={"enabled": True})
    assert response.json()["listen"] == created["listen"]
    with connect(info) as sock:
        assert round_trip_s(sock) < 0.05


def test_api_update_proxy_changes_upstream(api: httpx.Client, echo_server: EchoServer) -> None:
    with socket.create_server(("127.0.0.1", 0)) as other:
        other.settimeout(5.0)
        info = ProxyInfo.from_json(create(api, "echo", echo_server.address).json())
        response = api.patch("/proxies/echo", json={"upstream": listener_address(other)})
        assert response.json()["upstream"] == listener_address(other)
        with connect(info) as sock:
            accepted, _ = other.accept()
            accepted.close()
            assert recv_until_eof(sock) == b""


def test_api_delete_and_reset_return_204(api: httpx.Client, echo_server: EchoServer) -> None:
    create(api, "echo", echo_server.address)
    api.post("/proxies/echo/toxics", json={"type": "latency"})
    assert api.delete("/proxies/echo/toxics/latency_downstream").status_code == 204
    assert api.post("/reset").status_code == 204
    assert api.delete("/proxies/echo").status_code == 204
    assert api.get("/proxies").json() == {}


def test_api_populate_creates_proxies(api: httpx.Client, echo_server: EchoServer) -> None:
    body = [
        {"name": "one", "listen": "127.0.0.1:0", "upstream": echo_server.address},
        {"name": "two", "listen": "localhost:0", "upstream": echo_server.address, "enabled": False},
    ]
    response = api.post("/populate", json=body)
    assert response.status_code == 201
    proxies = response.json()["proxies"]
    assert [proxy["name"] for proxy in proxies] == ["one", "two"]
    assert [proxy["enabled"] for proxy in proxies] == [True, False]
    assert set(api.get("/proxies").json()) == {"one", "two"}


def test_api_populate_keeps_unchanged_proxy(api: httpx.Client, echo_server: EchoServer) -> None:
    listen = create(api, "echo", echo_server.address).json()["listen"]
    api.post("/proxies/echo/toxics", json={"type": "latency"})
    response = api.post(
        "/populate", json=[{"name": "echo", "listen": listen, "upstream": echo_server.address}]
    )
    assert response.status_code == 201
    assert [toxic["name"] for toxic in response.json()["proxies"][0]["toxics"]] == ["latency_downstream"]


def test_api_populate_replaces_changed_proxy(api: httpx.Client, echo_server: EchoServer) -> None:
    listen = create(api, "echo", echo_server.address).json()["listen"]
    api.post("/proxies/echo/toxics", json={"type": "latency"})
    with socket.create_server(("127.0.0.1", 0)) as other:
        upstream = listener_address(other)
        body = [{"name": "echo", "listen": listen, "upstream": upstream}]
        replaced = api.post("/populate", json=body).json()["proxies"][0]
    assert replaced["upstream"] == upstream
    assert replaced["toxics"] == []
    assert replaced["listen"] == listen


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"name": "one"}, 400, "/populate takes a JSON array of proxies, got dict"),
        ([{"name": "one", "upstream": "127.0.0.1:1"}, {"upstream": "127.0.0.1:1"}], 400,
         "missing required field: name at proxy 2"),
        ([{"name": "one", "upstream": "127.0.0.1:1"}, "two"], 400, "proxy 2 must be a JSON object"),
    ],
)  # fmt: skip
def test_api_invalid_populate_creates_nothing(
    api: httpx.Client, body: object, status: int, message: str
) -> None:
    response = api.post("/populate", json=body)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert api.get("/proxies").json() == {}


def test_api_populate_failure_lists_done_proxies(api: httpx.Client, echo_server: EchoServer) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        body = [
            {"name": "one", "upstream": echo_server.address},
            {"name": "two", "listen": listener_address(taken), "upstream": echo_server.address},
        ]
        response = api.post("/populate", json=body)
    assert response.status_code == 500
    assert "cannot listen on" in response.json()["error"]
    assert [proxy["name"] for proxy in response.json()["proxies"]] == ["one"]


def test_api_version_returns_json(api: httpx.Client) -> None:
    response = api.get("/version")
    assert response.status_code == 200
    assert response.json()["version"] == TOXIPROXY_API_VERSION


def test_api_rejects_browser_user_agent(api: httpx.Client) -> None:
    response = api.get("/proxies", headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"})
    assert response.status_code == 403


def test_client_wrapper_reports_api_errors(fault_client: FaultProxyClient, echo_server: EchoServer) -> None:
    from harness.faults.client import FaultProxyError

    with pytest.raises(FaultProxyError, match=r"returned HTTP 404: proxy not found: 'missing'") as caught:
        fault_client.add_toxic("missing", "latency", latency=1)
    assert caught.value.status == 404
