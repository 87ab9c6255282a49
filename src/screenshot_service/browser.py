"""The long-lived browser: launch, supervision (crash, relaunch with backoff, recycling), contexts."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from . import metrics, procs
from .engines import CaptureSpec, ContextSpec, Deadline, Engine, EngineContext, create_engine
from .errors import BrowserUnavailable, ServiceError
from .settings import Settings

log = structlog.get_logger(__name__)

EngineFactory = Callable[[Settings, Callable[[], None]], Engine]

STABLE_AFTER_S = 30.0
"""A browser that lived this long before it died resets the relaunch backoff."""
MAX_BACKOFF_S = 30.0
WATCH_INTERVAL_S = 1.0
"""How often orphans are reaped and the browser's memory is measured."""


def backoff_s(failures: int) -> float:
    """Delay before the next launch after ``failures`` launches in a row that failed or died young."""
    if failures <= 0:
        return 0.0
    return min(MAX_BACKOFF_S, 0.5 * 2.0 ** (failures - 1)) * random.uniform(0.8, 1.2)  # noqa: S311


class _Browser:
    """One launched Chromium, the contexts opened in it, and the renders it is doing."""

    def __init__(self, engine: Engine, number: int) -> None:
        self.engine = engine
        self.number = number
        self.pgid = engine.pid
        self.helpers: set[int] = set()
        """Chromium's crash handlers for this browser: they leave its process group."""
        self.contexts: dict[str, EngineContext] = {}
        self.context_locks: dict[str, asyncio.Lock] = {}
        self.in_flight = 0
        self.renders = 0
        self.started = time.monotonic()
        self.dead = asyncio.Event()
        self.retiring = False
        self.closing = False

    @property
    def alive(self) -> bool:
        return not self.dead.is_set() and not self.closing and self.engine.connected


class BrowserPool:
    """Owns the process's Chromium: renders go to the current browser, in per-dashboard contexts.

    A browser that dies fails its renders at once (503) and is relaunched, with a backoff when
    browsers keep dying young; one that has done ``browser_recycle_after`` renders or passes
    ``browser_max_rss_mb`` is replaced: new renders go to its successor while it finishes its own,
    then it is closed. Every browser's process group is killed when it goes and its orphans reaped.

    Contexts are kept per key (a dashboard with its default context options) so a dashboard's cookies
    and headers stay its own without paying for a new context on every render; a render with no key
    (a raw URL, or overridden context options) gets a fresh context that is closed after it.
    """

    def __init__(self, settings: Settings, engine_factory: EngineFactory = create_engine) -> None:
        self._settings = settings
        self._engine_factory = engine_factory
        self._current: _Browser | None = None
        self._draining: set[_Browser] = set()
        self._groups: set[int] = set()
        """Process groups of every browser launched, until none of their processes is left."""
        self._own: set[int] = set()
        """Browser processes that are our own children (not Playwright's): asyncio reaps those."""
        self._launch: asyncio.Task[_Browser] | None = None
        self._failures = 0
        self._next_launch_at = 0.0
        self._generation = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._closed = False
        self._checked: tuple[float, ServiceError | None] | None = None
        self._check_lock = asyncio.Lock()

    @property
    def engine_name(self) -> str:
        return self._settings.engine

    @property
    def connected(self) -> bool:
        return self._current is not None and self._current.alive

    @property
    def generation(self) -> int:
        """How many browsers have been launched so far."""
        return self._generation

    async def start(self) -> None:
        """Launch (or connect to) Chromium; raises :class:`BrowserUnavailable` if it cannot.

        Supervision starts either way: a browser that could not start is launched again on demand.
        """
        self._closed = False
        procs.become_subreaper()  # orphans of a crashed Chromium come to us, to be reaped
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch())
        self._install(await self._launch_browser())

    async def close(self) -> None:
        """Close every browser (draining ones too), kill their process groups and reap them."""
        self._closed = True
        for task in (self._watcher, self._launch):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, ServiceError):
                    await task
        self._watcher = self._launch = None
        browsers = [b for b in (self._current, *self._draining) if b is not None]
        self._current = None
        for browser in browsers:
            await self._dispose(browser)
        if self._tasks:  # disposals and replacements under way
            await asyncio.wait(list(self._tasks), timeout=10)
        for pgid in list(self._groups):
            procs.kill_group(pgid)
            await self._reap(pgid)
        # Crash handlers of browsers that died earlier exit in their own time; reap them a last time,
        # as no watcher will once we are closed.
        for _ in range(10):
            procs.reap_orphans(set(), frozenset(self._own))
            await asyncio.sleep(0.1)

    # --- Rendering ------------------------------------------------------------------------------

    async def render(
        self, key: str | None, context: ContextSpec, capture: CaptureSpec, deadline: Deadline
    ) -> bytes:
        """Capture one page in the current browser; pages (and a keyless context) are closed on every
        path, and a render whose browser dies under it fails at once with a 503."""
        browser = await self._browser_for(deadline)
        browser.in_flight += 1
        try:
            return await self._render_in(browser, key, context, capture, deadline)
        finally:
            browser.in_flight -= 1
            browser.renders += 1
            self._after_render(browser)

    async def _render_in(
        self,
        browser: _Browser,
        key: str | None,
        context: ContextSpec,
        capture: CaptureSpec,
        deadline: Deadline,
    ) -> bytes:
        work = asyncio.ensure_future(self._capture(browser, key, context, capture, deadline))
        died = asyncio.ensure_future(browser.dead.wait())
        try:
            await asyncio.wait({work, died}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            died.cancel()
            if not work.done():
                work.cancel()
                await asyncio.wait({work})  # its pages closed; its error, if any, is not ours to raise
        finished = work.done() and not work.cancelled()
        if browser.dead.is_set() and not (finished and work.exception() is None):
            # Whatever the render saw (a closed target, a timeout), the cause is the browser.
            raise BrowserUnavailable(
                "The browser crashed during this render and has been restarted; retry the request.",
                retry_after=max(1, math.ceil(self._next_launch_at - time.monotonic())),
            )
        return work.result()

    async def _capture(
        self,
        browser: _Browser,
        key: str | None,
        context: ContextSpec,
        capture: CaptureSpec,
        deadline: Deadline,
    ) -> bytes:
        if key is None:
            fresh = await browser.engine.new_context(context)
            try:
                return await fresh.capture(capture, deadline)
            finally:
                await fresh.close()
        shared = await self._context_for(browser, key, context)
        return await shared.capture(capture, deadline)

    async def _context_for(self, browser: _Browser, key: str, spec: ContextSpec) -> EngineContext:
        lock = browser.context_locks.setdefault(key, asyncio.Lock())
        async with lock:
            context = browser.contexts.get(key)
            if context is None:
                context = await browser.engine.new_context(spec)
                browser.contexts[key] = context
            return context

    async def _browser_for(self, deadline: Deadline) -> _Browser:
        """The current browser; while it is being (re)launched, the launch, within the deadline."""
        current = self._current
        if current is not None and current.alive:
            return current
        if self._closed:
            raise BrowserUnavailable("The service is shutting down.", retry_after=1)
        wait_s = self._next_launch_at - time.monotonic()
        if wait_s * 1000 >= deadline.remaining_ms():
            raise BrowserUnavailable(
                "The browser is down and will be relaunched shortly; retry the request.",
                retry_after=max(1, math.ceil(wait_s)),
            )
        launch = self._relaunch_soon()
        return await deadline.run("browser", lambda _: asyncio.shield(launch))

    # --- Supervision ----------------------------------------------------------------------------

    async def _launch_browser(self) -> _Browser:
        browser: _Browser | None = None

        def lost() -> None:
            if browser is not None:
                self._lost(browser)

        engine = self._engine_factory(self._settings, lost)
        try:
            await engine.start()
        except BrowserUnavailable:
            self._failures += 1
            self._next_launch_at = time.monotonic() + backoff_s(self._failures)
            raise
        self._generation += 1
        browser = _Browser(engine, self._generation)
        known = set().union(*(b.helpers for b in (self._current, *self._draining) if b is not None))
        browser.helpers = set(procs.crash_handlers()) - known
        if browser.pgid is not None:
            self._groups.add(browser.pgid)
            if procs.parent_of(browser.pgid) == os.getpid():
                self._own.add(browser.pgid)
        log.info("browser started", engine=engine.name, generation=browser.number, pid=browser.pgid)
        if not engine.connected:  # died while we were looking away
            self._lost(browser)
        return browser

    def _install(self, browser: _Browser) -> None:
        """Make ``browser`` the one new renders go to; the one it replaces drains and is closed."""
        if self._closed:
            self._spawn(self._dispose(browser))
            return
        old, self._current = self._current, browser
        if old is not None and old is not browser:
            self._drain(old)

    def _drain(self, browser: _Browser) -> None:
        if browser.in_flight == 0:
            self._spawn(self._dispose(browser))
        else:
            self._draining.add(browser)  # closed by its last render (see _after_render)

    def _relaunch_soon(self) -> asyncio.Task[_Browser]:
        """The launch under way, or a new one (after the backoff delay)."""
        if self._launch is None or self._launch.done():
            self._launch = asyncio.create_task(self._relaunch())
            self._launch.add_done_callback(_retrieve)
        return self._launch

    async def _relaunch(self) -> _Browser:
        if (delay := self._next_launch_at - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        current = self._current
        if current is not None and current.alive:
            return current
        metrics.BROWSER_RESTARTS.inc()
        try:
            browser = await self._launch_browser()
        except BrowserUnavailable as exc:
            log.error("browser relaunch failed", detail=exc.detail, failures=self._failures)  # noqa: TRY400
            raise
        self._install(browser)
        return browser

    def _lost(self, browser: _Browser) -> None:
        """The engine says the browser is gone (crashed, killed, connection lost): fail its renders now."""
        if browser.closing or browser.dead.is_set():
            return
        browser.dead.set()
        metrics.BROWSER_CRASHES.inc()
        lived = time.monotonic() - browser.started
        self._failures = 0 if lived >= STABLE_AFTER_S else self._failures + 1
        self._next_launch_at = time.monotonic() + backoff_s(self._failures)
        log.warning(
            "browser lost",
            generation=browser.number,
            renders_in_flight=browser.in_flight,
            lived_s=round(lived, 1),
            relaunch_in_s=round(max(0.0, self._next_launch_at - time.monotonic()), 2),
        )
        self._draining.discard(browser)
        self._spawn(self._dispose(browser))
        if browser is self._current:
            self._current = None
            if not self._closed:
                self._relaunch_soon()

    def _after_render(self, browser: _Browser) -> None:
        limit = self._settings.browser_recycle_after
        if limit and browser.renders >= limit:
            self._retire(browser, "renders")
        if browser in self._draining and browser.in_flight == 0:
            self._draining.discard(browser)
            self._spawn(self._dispose(browser))

    def _retire(self, browser: _Browser, reason: str) -> None:
        """Replace a healthy browser that has worked enough (or grown too big) without failing a render."""
        if browser.retiring or not browser.alive or browser is not self._current or self._closed:
            return
        browser.retiring = True
        metrics.BROWSER_RECYCLES.labels(reason).inc()
        log.info("browser recycling", generation=browser.number, reason=reason, renders=browser.renders)
        self._spawn(self._replace(browser))

    async def _replace(self, old: _Browser) -> None:
        try:
            browser = await self._launch_browser()
        except BrowserUnavailable as exc:
            log.warning("browser recycle postponed", detail=exc.detail)
            old.retiring = False  # keep serving with the old one; try again later
            return
        current = self._current
        if current is not None and current is not old and current.alive:
            self._spawn(self._dispose(browser))  # a relaunch got there first
        else:
            self._install(browser)

    async def _dispose(self, browser: _Browser) -> None:
        """Close a browser's contexts and the browser, kill what is left of its group, reap it."""
        browser.closing = True
        self._draining.discard(browser)
        contexts = list(browser.contexts.values())
        browser.contexts.clear()
        try:
            for context in contexts:
                await context.close()
            await browser.engine.close()
        finally:
            if browser.pgid is not None:
                procs.kill_group(browser.pgid)
                await self._reap(browser.pgid)
            await self._reap_helpers(browser.helpers)
        log.info("browser closed", generation=browser.number, renders=browser.renders)

    async def _reap(self, pgid: int, timeout_s: float = 5.0) -> None:
        """Reap the group's orphans until none of its processes is left (or the time is up)."""
        end = time.monotonic() + timeout_s
        while True:
            procs.reap_orphans({pgid}, frozenset(self._own))
            if not procs.group(pgid):
                self._groups.discard(pgid)
                self._own.discard(pgid)
                return
            if time.monotonic() >= end:
                log.warning("browser processes linger", pgid=pgid, left=len(procs.group(pgid)))
                return
            await asyncio.sleep(0.05)

    async def _reap_helpers(self, pids: set[int], timeout_s: float = 2.0) -> None:
        """Give a closed browser's crash handlers a moment to exit, then kill them; reap them."""
        end = time.monotonic() + timeout_s
        while pids & set(procs.crash_handlers()):
            if time.monotonic() >= end:
                for pid in pids:
                    procs.kill(pid)
            procs.reap_orphans(set(), frozenset(self._own))
            if time.monotonic() >= end + 1:
                return
            await asyncio.sleep(0.05)
        procs.reap_orphans(set(), frozenset(self._own))

    async def _watch(self) -> None:
        """Reap orphans of every browser we launched; recycle the current one when it grows too big."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            if self._groups:
                current = await asyncio.to_thread(self._watch_once, self._current)
                if current is not None:
                    self._retire(current, "memory")

    def _watch_once(self, current: _Browser | None) -> _Browser | None:
        """One look at the process table (in a thread): reap, measure; the browser to recycle, if any."""
        table = procs.process_table()
        procs.reap_orphans(set(self._groups), frozenset(self._own), table)
        if current is None or current.pgid is None or not current.alive:
            return None
        rss = procs.group_rss_bytes(current.pgid, table)
        metrics.BROWSER_RSS.set(rss)
        limit = self._settings.browser_max_rss_mb * 1024 * 1024
        return current if limit and rss > limit else None

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_retrieve)

    # --- Introspection and readiness ------------------------------------------------------------

    def open_targets(self) -> tuple[int, int]:
        """(browser contexts, pages) open right now, as the browsers themselves count them."""
        contexts = pages = 0
        for browser in (self._current, *self._draining):
            if browser is not None and not browser.closing:
                c, p = browser.engine.open_targets()
                contexts, pages = contexts + c, pages + p
        return contexts, pages

    async def check(self, timeout_ms: float = 5000) -> None:
        """Readiness: a real render of a blank page; the outcome is reused for ``ready_cache_s``."""
        async with self._check_lock:  # probes that arrive together share one check
            now = time.monotonic()
            if self._checked is None or now - self._checked[0] >= self._settings.ready_cache_s:
                self._checked = (now, await self._check_once(timeout_ms))
            error = self._checked[1]
        if error is not None:
            raise error

    async def _check_once(self, timeout_ms: float) -> ServiceError | None:
        # A browser that is gone is relaunched (or reconnected to) here as on a render, within the
        # backoff: a replica that readiness probes took out of traffic comes back by itself.
        spec = ContextSpec(width=64, height=64, scale=1)
        capture = CaptureSpec(url="about:blank", width=64, height=64)
        try:
            await self.render(None, spec, capture, Deadline(timeout_ms))
        except ServiceError as exc:
            metrics.READY_CHECKS.labels(exc.slug).inc()
            return exc
        metrics.READY_CHECKS.labels("ok").inc()
        return None


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a background task's exception as seen (it was logged where it happened)."""
    if not task.cancelled() and (exc := task.exception()) is not None and not isinstance(exc, ServiceError):
        log.error("background task failed", exc_info=exc)
