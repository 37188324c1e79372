"""``slogate fault-proxy``: run the embedded Toxiproxy-compatible server on its own."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_PORT = 8474
"""Toxiproxy's API port."""

DEFAULT_MAX_BUFFER_MIB = 32
EXIT_USAGE = 2


class StartupError(Exception):
    """The server cannot start: a bad --config file or an address it cannot listen on."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address of the HTTP API (default: %(default)s)")
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="port of the HTTP API, 0 for a free one (default: 8474)",
    )
    parser.add_argument("--fd", type=int, help="serve the API on this inherited listening socket instead")
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="JSON array of proxies to create at startup, the body of POST /populate",
    )
    parser.add_argument(
        "--seed", type=int, help="seed of toxicity rolls, jitter and slice sizes (default: random)"
    )
    parser.add_argument(
        "--max-buffer-mib",
        type=int,
        default=DEFAULT_MAX_BUFFER_MIB,
        metavar="MIB",
        help="data buffered per connection and direction before reading pauses, in MiB (default: 32)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="lowest level logged to stderr (default: info)",
    )


def read_config(path: Path) -> Any:
    """Return the decoded JSON of a ``--config`` file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StartupError(f"cannot read --config {path}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StartupError(f"--config {path} is not valid JSON: {exc}") from exc


def api_socket(args: argparse.Namespace) -> socket.socket:
    """Return the listening socket of the API: the inherited ``--fd``, else a new one on --host/--port."""
    if args.fd is not None:
        sock = socket.socket(fileno=args.fd)
        if sock.type != socket.SOCK_STREAM:
            raise StartupError(f"--fd {args.fd} is not a stream socket")
        sock.listen()
        return sock
    try:
        return socket.create_server((args.host, args.port))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StartupError(
            f"cannot listen on {args.host}:{args.port}: {reason}; choose another --port, or 0 for a free one"
        ) from exc


async def _serve(args: argparse.Namespace, config: Any, sock: socket.socket) -> None:
    from harness.faults.collection import PopulateError, ProxyCollection
    from harness.faults.proxy import ProxySettings
    from harness.faults.server import serve

    settings = ProxySettings(random.Random(args.seed), args.max_buffer_mib * 1024 * 1024)
    collection = ProxyCollection(settings)
    if config is not None:
        try:
            proxies = await collection.populate(config)
        except PopulateError as exc:
            await collection.close()
            raise StartupError(f"--config {args.config}: {exc.error.message}") from exc
        logging.getLogger(__name__).info("created %d proxies from %s", len(proxies), args.config)
    await serve(collection, sock)


def run(args: argparse.Namespace) -> int:
    """Run the server until SIGTERM or SIGINT; return the exit status."""
    import uvloop

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.max_buffer_mib < 1:
        print(
            f"slogate fault-proxy: --max-buffer-mib must be at least 1, got {args.max_buffer_mib}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        config = read_config(args.config) if args.config is not None else None
        sock = api_socket(args)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_serve(args, config, sock))
    except StartupError as exc:
        print(f"slogate fault-proxy: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="slogate fault-proxy",
        description="Serve the Toxiproxy HTTP API and its toxics (embedded, Toxiproxy-compatible).",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
