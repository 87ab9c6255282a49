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


async def settle(expected: int, root: int | None = None, timeout_s: float = 10) -> int:
    """Wait until the count of Chromium processes below ``root`` is ``expected``; returns the last count."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while True:
        now = count(root)
        if now == expected or loop.time() >= end:
            return now
        await asyncio.sleep(0.1)
