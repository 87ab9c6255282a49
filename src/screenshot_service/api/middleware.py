"""The HTTP layer's middleware: request ids, and cancelling work whose client has hung up."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets

import structlog
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

from .. import metrics

log = structlog.get_logger(__name__)

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def new_request_id() -> str:
    return secrets.token_hex(8)


class RequestId(ASGIMiddleware):
    """Gives every request an id (the caller's ``X-Request-ID`` if well-formed), binds it to the log
    context, and returns it in the response header."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        offered = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == REQUEST_ID_HEADER.encode()), ""
        )
        request_id = offered if _REQUEST_ID_RE.fullmatch(offered) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message["headers"] = headers
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await next_app(scope, receive, send_with_id)


class CancelOnDisconnect(ASGIMiddleware):
    """Runs each HTTP request in its own task and cancels it when the client disconnects.

    ASGI servers tell an application about a disconnect only when it calls ``receive()``, which a
    handler stops doing once it has read the body; left alone, a render and an upload would carry on
    for a caller who has gone (n8n timing out, say), holding a render slot and spending Meta quota.
    Cancellation runs every ``finally`` on the way out, so temp files are deleted as on any error.
    """

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
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
            await next_app(scope, receive_body, send)

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
