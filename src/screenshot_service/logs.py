"""Structured JSON logs: structlog configuration, request ids, and masking of what must not be logged."""

from __future__ import annotations

import logging
import re
import secrets
import sys
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.logging.config import LoggingConfig, StructLoggingConfig
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from structlog.typing import Processor

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def structlog_config(level: str, fmt: str) -> StructLoggingConfig:
    """Structlog as the service logs: one JSON object a line on stdout, request context merged in."""
    render: Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer()
    )
    common: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Plain-text tracebacks: structured ones would carry local variables, and with them secrets.
        structlog.processors.format_exc_info,
    ]
    # Records from the standard library (uvicorn, asyncio) take the same road to the same JSON lines;
    # Litestar's default for them cannot serialise a record's exc_info.
    stdlib = LoggingConfig(
        formatters={
            "standard": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ExtraAdder(),
                    *common,
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    render,
                ],
            }
        }
    )
    return StructLoggingConfig(
        processors=[*common, render],
        standard_lib_logging_config=stdlib,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        # A cached logger keeps the configuration it first saw; a few microseconds a line buy loggers
        # that follow a reconfiguration (several apps in one process, as in the tests).
        cache_logger_on_first_use=False,
        log_exceptions="never",  # unexpected errors are logged once, by the internal-error handler
    )


def new_request_id() -> str:
    return secrets.token_hex(8)


class RequestIdMiddleware:
    """Gives every request an id (the caller's ``X-Request-ID`` if well-formed), binds it to the log
    context, and returns it in the response header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        offered = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        request_id = offered if _REQUEST_ID_RE.fullmatch(offered) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self.app(scope, receive, send_with_id)


def bind(**values: Any) -> None:
    """Add fields to every log line of the current request."""
    structlog.contextvars.bind_contextvars(**values)
