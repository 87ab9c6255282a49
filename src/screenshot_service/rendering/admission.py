"""Admission to the render slots: a bounded queue in front of them, and a deadline for waiting in it."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator

from .. import metrics
from ..errors import Overloaded, QueueTimeout

_EWMA_WEIGHT = 0.2


class Admission:
    """``slots`` renders run at once; up to ``queue_size`` more wait, each for ``queue_timeout_ms`` at
    most. A request beyond the queue is refused at once (429), one that waits too long gets a 503; both
    carry a ``Retry-After`` estimated from recent render times, so a burst of alerts backs off instead
    of piling up behind a browser that cannot keep up.
    """

    def __init__(self, slots: int, queue_size: int, queue_timeout_ms: int) -> None:
        self._slots = slots
        self._free = asyncio.Semaphore(slots)
        self._queue_size = queue_size
        self._queue_timeout_s = queue_timeout_ms / 1000
        self._waiting = 0
        self._running = 0
        self._hold_s = 1.0  # recent time a slot is held, smoothed

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def running(self) -> int:
        return self._running

    def retry_after(self) -> int:
        """Seconds until the queue has likely moved on enough for one more request."""
        return max(1, min(120, math.ceil(self._hold_s * (self._waiting + 1) / self._slots)))

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[float]:
        """Hold a render slot for the block; yields the seconds spent waiting for it."""
        if self._running + self._waiting >= self._slots + self._queue_size:
            metrics.ADMISSION_REFUSED.labels("queue-full").inc()
            raise Overloaded(
                f"All {self._slots} render slots are busy and {self._waiting} renders are waiting; "
                "retry later.",
                retry_after=self.retry_after(),
            )
        queued = time.monotonic()
        self._waiting += 1
        metrics.QUEUE_DEPTH.set(self._waiting)
        try:
            async with asyncio.timeout(self._queue_timeout_s):
                await self._free.acquire()
        except TimeoutError:
            metrics.ADMISSION_REFUSED.labels("queue-timeout").inc()
            raise QueueTimeout(
                f"No render slot came free within {self._queue_timeout_s:g} s; retry later.",
                step="queue",
                retry_after=self.retry_after(),
            ) from None
        finally:
            self._waiting -= 1
            metrics.QUEUE_DEPTH.set(self._waiting)
        waited = time.monotonic() - queued
        metrics.QUEUE_WAIT_SECONDS.observe(waited)
        self._running += 1
        started = time.monotonic()
        try:
            yield waited
        finally:
            self._running -= 1
            self._free.release()
            held = time.monotonic() - started
            self._hold_s += _EWMA_WEIGHT * (held - self._hold_s)
