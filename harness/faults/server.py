"""The Toxiproxy HTTP API, served by aiohttp on the event loop that also runs the proxies.

Routes, status codes and JSON bodies follow Toxiproxy 2.12: 201 for a created proxy and for
``/populate``, 200 for a created toxic, 204 for deletes and ``/reset``, errors as
``{"error": message, "status": code}``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from harness import __version__
from harness.faults.collection import PopulateError, ProxyCollection
from harness.faults.models import ApiError, ProxyFields, ToxicFields, decode_json, parse_body

logger = logging.getLogger(__name__)

TOXIPROXY_API_VERSION = "2.12.0"
"""The Toxiproxy release whose HTTP API and toxics this server implements."""

SHUTDOWN_TIMEOUT_S = 2.0
"""How long API requests in progress may take to finish after SIGTERM or SIGINT."""

COLLECTION_KEY = web.AppKey("collection", ProxyCollection)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


async def _body(request: web.Request) -> Any:
    return decode_json(await request.read())


def _collection(request: web.Request) -> ProxyCollection:
    return request.app[COLLECTION_KEY]


@web.middleware
async def reject_browsers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Reject browsers, as Toxiproxy does, so that no web page can reconfigure the proxies."""
    if request.headers.get("User-Agent", "").startswith("Mozilla/"):
        return web.Response(status=403, text="User agent not allowed\n")
    return await handler(request)


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Return errors in Toxiproxy's JSON shape, unexpected ones as 500."""
    try:
        return await handler(request)
    except ApiError as exc:
        if exc.status >= 500:
            logger.warning("%s %s failed: %s", request.method, request.path, exc.message)
        return _json(exc.body(), exc.status)
    except web.HTTPException:
        raise  # aiohttp's own 404 and 405 for unknown routes and methods
    except Exception as exc:
        logger.exception("%s %s failed", request.method, request.path)
        error = ApiError(500, f"internal error: {type(exc).__name__}: {exc}")
        return _json(error.body(), error.status)


async def show_version(request: web.Request) -> web.Response:
    body = {"version": TOXIPROXY_API_VERSION, "server": f"slogate {__version__}"}
    return _json(body)


async def list_proxies(request: web.Request) -> web.Response:
    proxies = _collection(request).proxies
    return _json({name: proxy.to_json() for name, proxy in proxies.items()})


async def create_proxy(request: web.Request) -> web.Response:
    proxy = await _collection(request).create(parse_body(ProxyFields, await _body(request)))
    return _json(proxy.to_json(), 201)


async def populate(request: web.Request) -> web.Response:
    try:
        proxies = await _collection(request).populate(await _body(request))
    except PopulateError as exc:
        body = {**exc.error.body(), "proxies": [proxy.to_json() for proxy in exc.proxies]}
        return _json(body, exc.error.status)
    return _json({"proxies": [proxy.to_json() for proxy in proxies]}, 201)


async def reset(request: web.Request) -> web.Response:
    await _collection(request).reset()
    return web.Response(status=204)


async def show_proxy(request: web.Request) -> web.Response:
    return _json(_collection(request).get(request.match_info["proxy"]).to_json())


async def update_proxy(request: web.Request) -> web.Response:
    name = request.match_info["proxy"]
    _collection(request).get(name)
    proxy = await _collection(request).update(name, parse_body(ProxyFields, await _body(request)))
    return _json(proxy.to_json())


async def delete_proxy(request: web.Request) -> web.Response:
    await _collection(request).delete(request.match_info["proxy"])
    return web.Response(status=204)


async def list_toxics(request: web.Request) -> web.Response:
    return _json(_collection(request).get(request.match_info["proxy"]).toxics_json())


async def create_toxic(request: web.Request) -> web.Response:
    proxy = _collection(request).get(request.match_info["proxy"])
    toxic = proxy.add_toxic(parse_body(ToxicFields, await _body(request)))
    return _json(toxic.to_json())


async def show_toxic(request: web.Request) -> web.Response:
    proxy = _collection(request).get(request.match_info["proxy"])
    return _json(proxy.get_toxic(request.match_info["toxic"]).to_json())


async def update_toxic(request: web.Request) -> web.Response:
    proxy = _collection(request).get(request.match_info["proxy"])
    toxic = proxy.update_toxic(request.match_info["toxic"], parse_body(ToxicFields, await _body(request)))
    return _json(toxic.to_json())


async def delete_toxic(request: web.Request) -> web.Response:
    proxy = _collection(request).get(request.match_info["proxy"])
    proxy.remove_toxic(request.match_info["toxic"])
    return web.Response(status=204)


def create_app(collection: ProxyCollection) -> web.Application:
    app = web.Application(middlewares=[reject_browsers, api_errors])
    app[COLLECTION_KEY] = collection
    app.router.add_get("/version", show_version)
    app.router.add_post("/reset", reset)
    app.router.add_post("/populate", populate)
    app.router.add_get("/proxies", list_proxies)
    app.router.add_post("/proxies", create_proxy)
    app.router.add_get("/proxies/{proxy}", show_proxy)
    app.router.add_post("/proxies/{proxy}", update_proxy)
    app.router.add_patch("/proxies/{proxy}", update_proxy)
    app.router.add_delete("/proxies/{proxy}", delete_proxy)
    app.router.add_get("/proxies/{proxy}/toxics", list_toxics)
    app.router.add_post("/proxies/{proxy}/toxics", create_toxic)
    app.router.add_get("/proxies/{proxy}/toxics/{toxic}", show_toxic)
    app.router.add_post("/proxies/{proxy}/toxics/{toxic}", update_toxic)
    app.router.add_patch("/proxies/{proxy}/toxics/{toxic}", update_toxic)
    app.router.add_delete("/proxies/{proxy}/toxics/{toxic}", delete_toxic)
    return app


async def serve(collection: ProxyCollection, sock: socket.socket) -> None:
    """Serve the API on the listening socket ``sock`` until SIGTERM or SIGINT, then close every proxy."""
    runner = web.AppRunner(
        create_app(collection), access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S
    )
    await runner.setup()
    await web.SockSite(runner, sock).start()
    host, port = sock.getsockname()[:2]
    logger.info("fault proxy API listening on http://%s:%d", host, port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        logger.info("stopping: closing %d proxies", len(collection.proxies))
        await collection.close()
        await runner.cleanup()
