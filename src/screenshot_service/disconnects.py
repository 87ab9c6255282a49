"""Stop work nobody waits for: a request whose client hangs up is cancelled where it stands."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from . import metrics

log = structlog.get_logger(__name__)


class CancelOnDisconnect:
    """Runs each HTTP request in its own task and cancels it when the client disconnects.

    ASGI servers tell an application about a disconnect only when it calls ``receive()``, which a
    handler stops doing once it has read the body; left alone, a render and an upload would carry on
    for a caller who has gone (n8n timing out, say), holding a render slot and spending Meta quota.
    Cancellation runs every ``finally`` on the way out, so temp files are deleted as on any error.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        body_read = asyncio.Event()

        async def wait_for_disconnect() -> ReceiveMessage:
            await body_read.wait()
            while True:  # after the body, the only message left to come is the disconnect
                message = await receive()
                if message["type"] == "http.disconnect":
                    return message

        watcher = asyncio.create_task(wait_for_disconnect())

        async def receive_body() -> ReceiveMessage:
            if body_read.is_set():
                return await asyncio.shield(watcher)
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_read.set()
            return message

        async def run() -> None:
            await self.app(scope, receive_body, send)

        handler = asyncio.create_task(run())
        try:
            await asyncio.wait({handler, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # our own task cancelled (server shutdown): take the handler with us
            if not handler.done():
                handler.cancel()
            watcher.cancel()
        if handler.done() and not handler.cancelled():
            await handler  # its result, or its exception
            return
        metrics.CLIENT_DISCONNECTS.inc()
        log.info("client disconnected", path=scope["path"])
        with contextlib.suppress(asyncio.CancelledError):
            await handler
