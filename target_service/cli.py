"""``slogate-gateway``: serve the gateway with uvicorn on a port or on a socket inherited from a parent."""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from target_service.app import create_app
from target_service.config import ConfigError, GatewayConfig, load_config
from target_service.lifecycle import GatewayServer
from target_service.observability import announce_listening, configure_logging
from target_service.sockets import ListenError, listening_socket, socket_url
from target_service.tracing import TracingSetupError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slogate-gateway",
        description="OpenAI-compatible LLM gateway. SLOGATE_GATEWAY_* variables override the config.",
    )
    parser.add_argument("--config", type=Path, help="YAML config file (default: environment variables only)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8080, help="port to bind, or 0 for a free one (default: 8080)"
    )
    parser.add_argument(
        "--fd", type=int, help="serve on this inherited listening socket instead of --host/--port"
    )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="log level (default: log_level of the config)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"slogate-gateway: {exc}", file=sys.stderr)
        return 2
    log_level = args.log_level or config.log_level
    configure_logging(log_level)
    try:
        sock = listening_socket(args.host, args.port, args.fd)
    except ListenError as exc:
        print(f"slogate-gateway: {exc}", file=sys.stderr)
        return 2
    try:
        app = create_app(config)
    except TracingSetupError as exc:
        print(f"slogate-gateway: {exc}", file=sys.stderr)
        return 2
    announce_listening(socket_url(sock))
    serve(app, config, sock, log_level)
    return 0


def serve(app: FastAPI, config: GatewayConfig, sock: socket.socket, log_level: str) -> None:
    """Run uvicorn with uvloop and httptools on ``sock``; on SIGTERM or SIGINT, drain and stop."""
    server_config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,  # the gateway logs its own line per request
        log_config=None,
        log_level=log_level,
        server_header=False,
    )
    server = GatewayServer(
        server_config, app.state.lifecycle, app.state.metrics, config.shutdown.drain_timeout_s
    )
    server.run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())
