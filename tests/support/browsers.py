"""Chromium processes below a pid, for tests that check nothing is left behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

from screenshot_service.browser import processes as procs

from .service import ServiceClient


def chromium(root: int | None = None) -> list[procs.Proc]:
    """Chromium processes below ``root`` (this process by default), zombies included."""
    return [p for p in procs.descendants(os.getpid() if root is None else root) if "chrom" in p.name]


def count(root: int | None = None) -> int:
    return len(chromium(root))


def unreaped(root: int | None = None) -> list[procs.Proc]:
    """Zombies whose parent is ``root`` itself: orphans handed to the service that it did not reap.

    (A zombie further down is a live Chromium's own child between its exit and Chromium's wait.)
    """
    pid = os.getpid() if root is None else root
    return [p for p in procs.descendants(pid) if p.zombie and p.ppid == pid]


def browser_leaders(root: int | None = None) -> list[int]:
    """Main processes of the Chromium browsers below ``root`` (each leads its process group)."""
    return [p.pid for p in chromium(root) if p.pid == p.pgid and not p.zombie]


def in_groups(leaders: set[int]) -> int:
    """Processes (zombies included) in the process groups of these browsers."""
    return sum(1 for p in procs.process_table() if p.pgid in leaders)


async def settle(at_most: int, counter: Callable[[], int], timeout_s: float = 10) -> int:
    """``counter()`` once it is steady (unchanged for a second) and no more than ``at_most``, or as it
    is when ``timeout_s`` has passed."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    readings: list[int] = []
    while True:
        readings = [*readings[-3:], counter()]
        steady = len(readings) == 4 and len(set(readings)) == 1
        if (steady and readings[-1] <= at_most) or loop.time() >= end:
            return readings[-1]
        await asyncio.sleep(0.25)


async def baseline(counter: Callable[[], int]) -> int:
    """The steady value of ``counter()`` (pages closed, Chromium's helpers settled)."""
    return await settle(1_000_000, counter)


class LeaderWatch:
    """Samples, while it runs, the browsers launched below this process that were not there before
    (browsers replaced while a test runs included)."""

    def __init__(self) -> None:
        self.others = set(browser_leaders())
        self.seen: set[int] = set()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LeaderWatch:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def wait_for(self, count: int, timeout_s: float = 60) -> None:
        """Return once ``count`` browsers have been seen (a replacement has started)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while True:
            if len(self.seen) >= count:
                return
            assert loop.time() < end, f"{count} browsers expected, {len(self.seen)} seen"
            await asyncio.sleep(0.05)

    async def _sample(self) -> None:
        while True:
            self.seen |= set(browser_leaders()) - self.others
            await asyncio.sleep(0.05)


class ServiceBrowser:
    """A service of the test's own, and the Chromium it launched (not the session service's)."""

    def __init__(self, client: ServiceClient, others: set[int], engine: str) -> None:
        self.http = client
        self._others = others
        self.engine = engine

    def browser(self) -> int:
        [leader] = set(browser_leaders()) - self._others
        return leader

    async def warm(self) -> tuple[int, int]:
        """Render once, so the browser is up: its leader, and the steady count of its processes."""
        assert (await self.http.post("/v1/renders", json={"dashboard": "box"})).status_code == 200
        leader = self.browser()
        return leader, await baseline(lambda: in_groups({leader}))
