"""The container health check against real HTTP servers on loopback."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from harness.stack.process import free_loopback_port
from target_service.healthcheck import check


class _StatusHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path == "/healthz" else 503
        self.send_response(status)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server_url() -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _StatusHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_healthcheck_passes_on_200(server_url: str) -> None:
    assert check(f"{server_url}/healthz") is None


def test_healthcheck_reports_error_status(server_url: str) -> None:
    problem = check(f"{server_url}/readyz")
    assert problem is not None
    assert "HTTP 503" in problem


def test_healthcheck_reports_closed_port() -> None:
    url = f"http://127.0.0.1:{free_loopback_port()}/healthz"
    problem = check(url, timeout_s=1.0)
    assert problem is not None
    assert url in problem
