"""Readiness of the browser: a real render of a blank page, its outcome reused for a few seconds."""

from __future__ import annotations

import asyncio
import os
import time

from .. import metrics
from ..errors import BrowserUnavailable, ServiceError
from .capture import CaptureSpec, ContextSpec, Deadline, Wait
from .supervisor import Supervisor

_BLANK_CONTEXT = ContextSpec(width=64, height=64, scale=1)
# The probe checks that the browser renders, not that a page settles: a blank page at ``load``.
_BLANK_CAPTURE = CaptureSpec(url="about:blank", width=64, height=64, wait=Wait(until="load"))


class BrowserProbe:
    """``await probe.check()`` raises the :class:`ServiceError` of a browser that cannot render.

    A browser that is gone is relaunched (or reconnected to) by the check, as by a render, within the
    backoff: a replica that readiness probes took out of traffic comes back by itself. Probes that
    arrive together share one check, and its outcome is reused for ``cache_s``.

    A browser released for idleness is not relaunched by a check: a kubelet probing every 10 s would
    otherwise keep an idle bot's browser up for ever. The replica is ready (the released browser was
    healthy, and the next render launches a new one) as long as Chromium can be launched: its
    executable is there. The check's render does not count as use (it does not put off the release).
    """

    def __init__(self, supervisor: Supervisor, cache_s: float, timeout_ms: float = 5000) -> None:
        self._supervisor = supervisor
        self._cache_s = cache_s
        self._timeout_ms = timeout_ms
        self._checked: tuple[float, ServiceError | None] | None = None
        self._lock = asyncio.Lock()

    async def check(self) -> str:
        """``ok``, or how a released browser is ready; raises the error of a browser that is not."""
        if self._supervisor.released:
            return self._released()
        async with self._lock:
            now = time.monotonic()
            if self._checked is None or now - self._checked[0] >= self._cache_s:
                self._checked = (now, await self._check_once())
            error = self._checked[1]
        if error is not None:
            raise error
        return "ok"

    def _released(self) -> str:
        path = self._supervisor.chromium_path
        if path is not None and not os.access(path, os.X_OK):
            metrics.READY_CHECKS.labels("browser-unavailable").inc()
            raise BrowserUnavailable(
                f"The browser is released and cannot be launched again: {path} is not executable."
            )
        metrics.READY_CHECKS.labels("released").inc()
        return "released (idle): the next render launches it"

    async def _check_once(self) -> ServiceError | None:
        try:
            await self._supervisor.render(
                None, _BLANK_CONTEXT, _BLANK_CAPTURE, Deadline(self._timeout_ms), keeps_awake=False
            )
        except ServiceError as exc:
            metrics.READY_CHECKS.labels(exc.slug).inc()
            return exc
        metrics.READY_CHECKS.labels("ok").inc()
        return None
