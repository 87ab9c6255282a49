"""Warm pages: blank pages of one context opened and prepared ahead of need, each used by one render.

Opening a page and preparing it (its CDP session, request interception, focus emulation) takes about
100 ms of a render; a pool does it between renders, so a render that finds a warm page starts at
navigation. A page is taken once and closed by its render, never put back: isolation between renders
is the same as without a pool. The pool refills in the background after each render, and is closed
with its context (which closes any page still opening).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import structlog

from .. import metrics
from ..errors import ServiceError

P = TypeVar("P")

OPEN_TIMEOUT_S = 10.0
"""Bound of opening one warm page; a browser this slow is left to the renders' own deadlines."""

log = structlog.get_logger(__name__)


class PagePool(Generic[P]):
    """Up to ``size`` prepared pages made by ``open``; ``take`` hands one out or None (open your own)."""

    def __init__(
        self,
        size: int,
        open_page: Callable[[], Awaitable[P]],
        close_page: Callable[[P], Awaitable[None]],
        usable: Callable[[P], bool],
    ) -> None:
        self._size = size
        self._open = open_page
        self._close = close_page
        self._usable = usable
        self._pages: deque[P] = deque()
        self._filling: asyncio.Task[None] | None = None
        self._closed = False

    def __len__(self) -> int:
        return len(self._pages)

    def take(self) -> P | None:
        """A warm page, now the caller's to use once and close; None when none is ready."""
        while self._pages:
            page = self._pages.popleft()
            if self._usable(page):
                metrics.PAGE_POOL.labels("hit").inc()
                return page
            self._discard(page)  # its renderer died while it waited
        metrics.PAGE_POOL.labels("miss").inc()
        return None

    def refill(self) -> None:
        """Open pages in the background until the pool is full again (one filler at a time)."""
        if self._closed or len(self._pages) >= self._size:
            return
        if self._filling is None or self._filling.done():
            self._filling = asyncio.create_task(self._fill())
            self._filling.add_done_callback(_retrieve)

    async def close(self) -> None:
        """Stop filling and close the warm pages (the context's close takes any page still opening)."""
        self._closed = True
        filling, self._filling = self._filling, None
        if filling is not None:
            filling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await filling
        pages = list(self._pages)
        self._pages.clear()
        for page in pages:
            await self._close(page)

    async def _fill(self) -> None:
        while self._wanted():
            try:
                async with asyncio.timeout(OPEN_TIMEOUT_S):
                    page = await self._open()
            except (ServiceError, TimeoutError) as exc:
                # A browser going away, or too busy: the next render opens its own page and retries.
                log.info("warm page not opened", error=type(exc).__name__)
                return
            if self._closed:  # closed while the page opened
                await self._close(page)
                return
            self._pages.append(page)

    def _wanted(self) -> bool:
        return not self._closed and len(self._pages) < self._size

    def _discard(self, page: P) -> None:
        task = asyncio.ensure_future(self._close(page))
        _discarding.add(task)
        task.add_done_callback(_discarding.discard)


_discarding: set[asyncio.Future[None]] = set()
"""Closes of warm pages found dead, running on their own."""


def _retrieve(task: asyncio.Task[None]) -> None:
    """Log a filler's unexpected failure (a browser library's error we do not translate yet)."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("warm page filler failed", exc_info=exc)
