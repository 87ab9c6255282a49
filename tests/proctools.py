"""Chromium processes below a pid, counted from /proc, for tests that check nothing is left behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

from screenshot_service import procs


def chromium(root: int | None = None) -> list[procs.Proc]:
    """Chromium processes below ``root`` (this process by default), zombies included."""
    return [p for p in procs.descendants(os.getpid() if root is None else root) if "chrom" in p.comm]


def count(root: int | None = None) -> int:
    return len(chromium(root))


def unreaped(root: int | None = None) -> list[procs.Proc]:
    """Zombies whose parent is ``root`` itself: orphans handed to the service that it did not reap.

    (A zombie further down is a live Chromium's own child between its exit and Chromium's wait.)
    """
    pid = os.getpid() if root is None else root
    return [p for p in procs.descendants(pid) if p.state == "Z" and p.ppid == pid]


def browser_leaders(root: int | None = None) -> list[int]:
    """Main processes of the Chromium browsers below ``root`` (each leads its process group)."""
    return [p.pid for p in chromium(root) if p.pid == p.pgid and p.state != "Z"]


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

    async def _sample(self) -> None:
        while True:
            self.seen |= set(browser_leaders()) - self.others
            await asyncio.sleep(0.05)
