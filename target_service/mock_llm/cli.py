"""``slogate-mock-llm``: serve the mock upstream LLM on a port or on a socket inherited from a parent."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import uvloop
from aiohttp import web
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from target_service.mock_llm.server import create_mock_app
from target_service.mock_llm.settings import MockSettings
from target_service.observability import announce_listening, configure_logging, log_event
from target_service.sockets import ListenError, listening_socket, socket_url

SHUTDOWN_TIMEOUT_S = 2.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slogate-mock-llm",
        description="Deterministic OpenAI-compatible mock LLM with a set TTFT, token rate and error rate.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to bind, or 0 for a free one (default: 0)")
    parser.add_argument(
        "--fd", type=int, help="serve on this inherited listening socket instead of --host/--port"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of output words and injected errors (default: 0)"
    )
    parser.add_argument("--model", default="mock-llm", help="model name served (default: %(default)s)")
    parser.add_argument("--ttft-ms", type=float, default=0.0, help="time to first token in ms (default: 0)")
    parser.add_argument(
        "--tokens-per-s",
        type=float,
        default=0.0,
        help="output tokens per second, or 0 for no pacing (default: 0)",
    )
    parser.add_argument("--output-tokens", type=int, default=32, help="tokens per completion (default: 32)")
    parser.add_argument("--chunk-tokens", type=int, default=1, help="tokens per streamed chunk (default: 1)")
    parser.add_argument(
        "--error-rate",
        type=float,
        default=0.0,
        help="fraction of requests that get --error-status, 0 to 1 (default: 0)",
    )
    parser.add_argument(
        "--wrong-answer-rate",
        type=float,
        default=0.05,
        help="fraction of answer-table questions answered wrongly, 0 to 1 (default: 0.05)",
    )
    parser.add_argument(
        "--error-status", type=int, default=500, help="HTTP status of injected errors (default: 500)"
    )
    parser.add_argument(
        "--retry-after-s", type=int, default=None, help="Retry-After of injected errors (default: none)"
    )
    parser.add_argument(
        "--stall-after-tokens", type=int, default=None, help="pause a stream after this many tokens"
    )
    parser.add_argument("--stall-ms", type=float, default=0.0, help="length of that pause in ms (default: 0)")
    parser.add_argument(
        "--disconnect-after-tokens",
        type=int,
        default=None,
        help="drop a stream's connection after this many tokens",
    )
    parser.add_argument(
        "--split-utf8",
        action="store_true",
        help="send each stream event in two writes, cut inside a multi-byte character",
    )
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=None,
        help="chat completions served at once; more wait in a queue (default: no limit)",
    )
    parser.add_argument(
        "--precise-timing",
        action="store_true",
        help="poll the clock for the last millisecond before each due time: exact delays, more CPU",
    )
    parser.add_argument(
        "--startup-delay-ms",
        type=float,
        default=0.0,
        help="wait this long before serving, as a model server loading its weights (default: 0)",
    )
    return parser


def settings_from_args(args: argparse.Namespace) -> MockSettings:
    return MockSettings(
        seed=args.seed,
        model=args.model,
        ttft_ms=args.ttft_ms,
        tokens_per_s=args.tokens_per_s,
        output_tokens=args.output_tokens,
        chunk_tokens=args.chunk_tokens,
        error_rate=args.error_rate,
        wrong_answer_rate=args.wrong_answer_rate,
        error_status=args.error_status,
        retry_after_s=args.retry_after_s,
        stall_after_tokens=args.stall_after_tokens,
        stall_ms=args.stall_ms,
        disconnect_after_tokens=args.disconnect_after_tokens,
        split_utf8=args.split_utf8,
        max_concurrency=args.max_concurrency,
        precise_timing=args.precise_timing,
    )


def _describe_invalid_flag(error: ErrorDetails) -> str:
    flag = "--" + str(error["loc"][0]).replace("_", "-") if error["loc"] else "arguments"
    return f"{flag}: {error['msg'].lower()}, got {error.get('input')!r}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        parser.error("; ".join(_describe_invalid_flag(error) for error in exc.errors()))
    configure_logging("info")
    try:
        sock = listening_socket(args.host, args.port, args.fd)
    except ListenError as exc:
        print(f"slogate-mock-llm: {exc}", file=sys.stderr)
        return 2
    if args.startup_delay_ms < 0:
        parser.error(f"--startup-delay-ms: must be 0 or more, got {args.startup_delay_ms:g}")
    # Connections that arrive meanwhile wait in the socket's backlog, as they would at a loading server.
    time.sleep(args.startup_delay_ms / 1000)
    announce_listening(socket_url(sock), settings=settings.model_dump())
    web.run_app(
        create_mock_app(settings),
        sock=sock,
        print=None,
        access_log=None,
        handler_cancellation=True,  # a client that disconnects stops its generation
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        loop=uvloop.new_event_loop(),
    )
    log_event("shutdown")
    return 0


if __name__ == "__main__":
    sys.exit(main())
