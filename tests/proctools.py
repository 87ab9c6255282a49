"""Chromium processes below a pid, counted from /proc, for tests that check nothing is left behind."""

from __future__ import annotations

import asyncio
import os

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


async def settle(at_most: int, root: int | None = None, timeout_s: float = 10) -> int:
    """The count of Chromium processes below ``root`` once it is steady (unchanged for a second)
    and no more than ``at_most``, or as it is when ``timeout_s`` has passed."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    readings: list[int] = []
    while True:
        readings = [*readings[-3:], count(root)]
        steady = len(readings) == 4 and len(set(readings)) == 1
        if (steady and readings[-1] <= at_most) or loop.time() >= end:
            return readings[-1]
        await asyncio.sleep(0.25)


async def baseline(root: int | None = None) -> int:
    """The steady count of Chromium processes below ``root`` (pages closed, helpers settled)."""
    return await settle(1_000_000, root)
