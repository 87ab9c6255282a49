"""Structured JSON logs: structlog configuration, and masking of what must not be logged."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any

import structlog
from litestar.logging.config import LoggingConfig, StructLoggingConfig
from structlog.typing import EventDict, Processor

from .guard.phones import Masker


def structlog_config(level: str, fmt: str, redactor: Redactor | None = None) -> StructLoggingConfig:
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
        *([redactor] if redactor is not None else []),
    ]
    # Records from the standard library (uvicorn, asyncio) take the same road to the same JSON lines;
    # Litestar's default for them cannot serialise a record's exc_info.
    stdlib = LoggingConfig(
        formatters={
            "standard": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ExtraAdder(),
                    _drop_color_message,
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


def _drop_color_message(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """uvicorn passes a copy of each message with terminal colours in an extra field."""
    event_dict.pop("color_message", None)
    return event_dict


def bind(**values: Any) -> None:
    """Add fields to every log line of the current request."""
    structlog.contextvars.bind_contextvars(**values)


class Redactor:
    """The last line of defence, run on every log line: known secret values become stars and anything
    shaped like a phone number becomes its masked form, in every string field (tracebacks included).

    Code should never log these in the first place (the requester is bound already masked); this
    catches what slips through, such as a number quoted in an exception message.
    """

    _EXEMPT = frozenset({"request_id", "timestamp", "level", "event"})

    def __init__(self, secrets: Iterable[str], masker: Masker) -> None:
        # Longest first, so a secret containing another is replaced whole; short values would
        # match innocent text and are not secrets worth the name.
        self._secrets = sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True)
        self._masker = masker

    def __call__(self, logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
        for key, value in event_dict.items():
            if key not in self._EXEMPT:
                event_dict[key] = self._clean(value)
        return event_dict

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                value = value.replace(secret, "**********")
            return self._masker.scrub(value)
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return value
