"""Chromium processes below a pid, for tests that check nothing is left behind; and a Chromium the
service did not launch (a remote browser)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable

import httpx

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


CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


class ExternalChromium:
    """A Chromium started as another team's browser service would: headless, DevTools on 127.0.0.1."""

    def __init__(self, port: int, profile: str) -> None:
        self.port = port
        self.profile = profile
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                f"--remote-debugging-port={self.port}",
                "--remote-debugging-address=127.0.0.1",
                f"--user-data-dir={self.profile}",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so the test can stop all of it
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.alive():
                return
            time.sleep(0.1)
        raise AssertionError("the external Chromium did not open its DevTools endpoint")

    def alive(self) -> bool:
        """The process runs and its DevTools endpoint answers."""
        if self.process is None or self.process.poll() is not None:
            return False
        try:
            return httpx.get(f"{self.http_url}/json/version", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def ws_url(self) -> str:
        url: str = httpx.get(f"{self.http_url}/json/version", timeout=5).json()["webSocketDebuggerUrl"]
        return url

    def pages(self) -> list[str]:
        """URLs of the page targets open in the browser."""
        targets = httpx.get(f"{self.http_url}/json/list", timeout=5).json()
        return [t["url"] for t in targets if t["type"] == "page"]

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
