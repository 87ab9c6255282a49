"""The supervised browser: launch, crash and relaunch with backoff, recycling, and per-dashboard contexts."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
import weakref
from collections.abc import Coroutine
from typing import Any

import structlog

from .. import metrics
from ..errors import BrowserUnavailable, ServiceError
from ..settings import Settings
from . import processes
from .capture import (
    CaptureSpec,
    ContextSpec,
    Deadline,
    Engine,
    EngineContext,
    EngineFactory,
    Shot,
    create_engine,
    open_within,
    succeeded,
    until_set,
)

log = structlog.get_logger(__name__)

STABLE_AFTER_S = 30.0
"""A browser that lived this long before it died resets the relaunch backoff."""
MAX_BACKOFF_S = 30.0
CLOSE_TASKS_S = 10.0
"""How long closing waits for disposals and replacements under way before it cancels them."""
WATCH_INTERVAL_S = 1.0
"""How often orphans are reaped and the browser's memory is measured."""

_RUNNING: weakref.WeakSet[Supervisor] = weakref.WeakSet()
"""Supervisors started and not yet closed: what the browser gauges count (one, outside tests)."""


def open_targets_everywhere() -> tuple[int, int]:
    """(contexts, pages) open in the browsers of every running supervisor of this process."""
    counts = [supervisor.open_targets() for supervisor in list(_RUNNING)]
    return sum(c for c, _ in counts), sum(p for _, p in counts)


metrics.BROWSER_CONTEXTS.set_function(lambda: open_targets_everywhere()[0])
metrics.BROWSER_PAGES.set_function(lambda: open_targets_everywhere()[1])
metrics.BROWSER_UP.set_function(lambda: any(supervisor.connected for supervisor in list(_RUNNING)))
metrics.BROWSER_RELEASED.set_function(lambda: any(supervisor.released for supervisor in list(_RUNNING)))


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
        self.context_users: dict[str, int] = {}
        """Renders using each shared context right now: one in use is never trimmed."""
        self.context_used: dict[str, float] = {}
        """When each shared context was last used (monotonic)."""
        self.in_flight = 0
        self.renders = 0
        self.started = time.monotonic()
        self.dead = asyncio.Event()
        self.retiring = False
        self.closing = False

    @property
    def alive(self) -> bool:
        return not self.dead.is_set() and not self.closing and self.engine.connected


class Supervisor:
    """Owns the process's Chromium: renders go to the current browser, in per-dashboard contexts.

    A browser that dies fails its renders at once (503) and is relaunched, with a backoff when
    browsers keep dying young; one that has done ``browser_recycle_after`` renders or passes
    ``browser_max_rss_mb`` is replaced: new renders go to its successor while it finishes its own,
    then it is closed. Every browser's process group is killed when it goes and its orphans reaped
    (by the :class:`~.processes.Reaper`).

    Contexts are kept per key (a dashboard with its default context options) so a dashboard's cookies
    and headers stay its own without paying for a new context on every render; a render with no key
    (a raw URL, or overridden context options) gets a fresh context that is closed after it. A shared
    context keeps ``pool_size`` warm pages (see :mod:`.pool`), and is closed when its dashboard has not
    been rendered for ``context_idle_s``.

    Light when idle: after ``browser_idle_release_s`` without renders the browser is closed (released)
    and the next render launches a new one. Readiness checks are not renders: they neither keep the
    browser up nor launch a released one (see :meth:`released`).
    """

    def __init__(self, settings: Settings, engine_factory: EngineFactory = create_engine) -> None:
        self._settings = settings
        self._engine_factory = engine_factory
        metrics.BROWSER_RSS_LIMIT.set(settings.browser_max_rss_mb * 1024 * 1024)
        self._current: _Browser | None = None
        self._draining: set[_Browser] = set()
        self._reaper = processes.Reaper()
        self._launch: asyncio.Task[_Browser] | None = None
        self._failures = 0
        self._next_launch_at = 0.0
        self._generation = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._closed = False
        self._released = False
        self._last_render = time.monotonic()

    @property
    def engine_name(self) -> str:
        return self._settings.engine

    @property
    def connected(self) -> bool:
        return self._current is not None and self._current.alive

    @property
    def chromium_path(self) -> str | None:
        """The executable a launch runs; None when the browser is a remote one."""
        return None if self._settings.browser_ws_endpoint else self._settings.chromium_path

    @property
    def browser_pid(self) -> int | None:
        """The current browser's main process; None while there is none, or it is a remote one."""
        return self._current.pgid if self._current is not None else None

    @property
    def released(self) -> bool:
        """Whether the browser is closed on purpose for idleness; the next render launches it again."""
        return self._released and self._current is None

    @property
    def generation(self) -> int:
        """How many browsers have been launched so far."""
        return self._generation

    async def start(self) -> None:
        """Launch (or connect to) Chromium; raises :class:`BrowserUnavailable` if it cannot.

        Supervision starts either way: a browser that could not start is launched again on demand.
        """
        self._closed = False
        _RUNNING.add(self)
        self._reaper.start()  # orphans of a crashed Chromium come to us, to be reaped
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch())
        self._last_render = time.monotonic()
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
        await self._finish_tasks(CLOSE_TASKS_S)
        await self._reaper.close()
        _RUNNING.discard(self)

    # --- Rendering ------------------------------------------------------------------------------

    async def render(
        self,
        key: str | None,
        context: ContextSpec,
        capture: CaptureSpec,
        deadline: Deadline,
        *,
        keeps_awake: bool = True,
    ) -> Shot:
        """Capture one page in the current browser; pages (and a keyless context) are closed on every
        path, and a render whose browser dies under it fails at once with a 503. A render that does
        not ``keeps_awake`` (a readiness check) does not put off the browser's idle release."""
        if keeps_awake:
            self._last_render = time.monotonic()
        browser = await self._browser_for(deadline)
        browser.in_flight += 1
        try:
            return await self._render_in(browser, key, context, capture, deadline)
        finally:
            browser.in_flight -= 1
            browser.renders += 1
            if keeps_awake:
                self._last_render = time.monotonic()
            self._after_render(browser)

    async def _render_in(
        self,
        browser: _Browser,
        key: str | None,
        context: ContextSpec,
        capture: CaptureSpec,
        deadline: Deadline,
    ) -> Shot:
        work = await until_set(self._capture(browser, key, context, capture, deadline), browser.dead)
        if browser.dead.is_set() and not succeeded(work):
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
    ) -> Shot:
        if key is None:
            fresh = await self._new_context(browser, context, deadline)
            try:
                return await fresh.capture(capture, deadline)
            finally:
                await fresh.close()
        shared = await self._context_for(browser, key, context, deadline)
        try:
            return await shared.capture(capture, deadline)
        finally:
            browser.context_users[key] -= 1
            browser.context_used[key] = time.monotonic()

    async def _context_for(
        self, browser: _Browser, key: str, spec: ContextSpec, deadline: Deadline
    ) -> EngineContext:
        """The shared context of ``key``, counted as in use (the caller uncounts it)."""
        lock = browser.context_locks.setdefault(key, asyncio.Lock())
        async with lock:
            context = browser.contexts.get(key)
            if context is None:
                pool_size = self._settings.pool_size
                context = await self._new_context(browser, spec, deadline, pool_size)
                browser.contexts[key] = context
            browser.context_users[key] = browser.context_users.get(key, 0) + 1
            browser.context_used[key] = time.monotonic()
            return context

    @staticmethod
    async def _new_context(
        browser: _Browser, spec: ContextSpec, deadline: Deadline, pool_size: int = 0
    ) -> EngineContext:
        opening = browser.engine.new_context(spec, pool_size)
        return await open_within(deadline, "context", opening, _close_context)

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
        browser.helpers = self._reaper.adopt(browser.pgid)
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
        self._released = False
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
        if not self._released:  # a relaunch after an idle release is no restart
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

    async def _finish_tasks(self, bound_s: float) -> None:
        """Wait for disposals and replacements under way, and for those they start meanwhile (a
        replacement that lands after :meth:`close` disposes of its browser in a task of its own);
        past ``bound_s`` the rest are cancelled, and their cleanup awaited. A task left to the event
        loop's end would be cut short there, its browser's proxy ports and processes left open."""
        end = time.monotonic() + bound_s
        while self._tasks and (left := end - time.monotonic()) > 0:
            await asyncio.wait(list(self._tasks), timeout=left)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=bound_s)

    async def _dispose(self, browser: _Browser) -> None:
        """Close a browser's contexts and the browser, kill what is left of its group, reap it."""
        browser.closing = True
        self._draining.discard(browser)
        contexts = list(browser.contexts.values())
        browser.contexts.clear()
        browser.context_used.clear()
        try:
            for context in contexts:
                await context.close()
        finally:
            try:
                await browser.engine.close()  # cut short above, the browser and its ports still close
            finally:
                await self._reaper.release(browser.pgid, browser.helpers)
        log.info("browser closed", generation=browser.number, renders=browser.renders)

    async def _watch(self) -> None:
        """Reap orphans of every browser we launched; recycle the current one when it grows too big;
        close what has been idle too long."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            if self._reaper.busy:
                current = await asyncio.to_thread(self._watch_once, self._current)
                if current is not None:
                    self._retire(current, "memory")
            now = time.monotonic()
            self._trim_contexts(now)
            self._release_if_idle(now)

    def _trim_contexts(self, now: float) -> None:
        """Close the shared contexts (and their warm pages) of dashboards not rendered lately."""
        limit = self._settings.context_idle_s
        if not limit:
            return
        for browser in (self._current, *self._draining):
            if browser is None or browser.closing:
                continue
            for key, used in list(browser.context_used.items()):
                if browser.context_users.get(key, 0) or now - used < limit:
                    continue
                context = browser.contexts.pop(key, None)
                del browser.context_used[key]
                browser.context_users.pop(key, None)
                if context is not None:
                    metrics.CONTEXTS_TRIMMED.inc()
                    log.info(
                        "context closed for idleness", generation=browser.number, idle_s=round(now - used)
                    )
                    self._spawn(context.close())

    def _release_if_idle(self, now: float) -> None:
        """Close the browser after ``browser_idle_release_s`` without renders; the next render relaunches."""
        limit = self._settings.browser_idle_release_s
        current = self._current
        if not limit or current is None or self._closed or now - self._last_render < limit:
            return
        if current.in_flight or current.retiring or self._draining or not current.alive:
            return
        self._current = None
        self._released = True
        metrics.BROWSER_IDLE_RELEASES.inc()
        metrics.BROWSER_RSS.set(0)
        log.info(
            "browser released for idleness", generation=current.number, idle_s=round(now - self._last_render)
        )
        self._spawn(self._dispose(current))

    def _watch_once(self, current: _Browser | None) -> _Browser | None:
        """One look at the process table (in a thread): reap, measure; the browser to recycle, if any."""
        table = processes.process_table()
        self._reaper.sweep(table)
        if current is None or current.pgid is None or not current.alive:
            return None
        rss = processes.group_rss_bytes(current.pgid, table)
        metrics.BROWSER_RSS.set(rss)
        limit = self._settings.browser_max_rss_mb * 1024 * 1024
        return current if limit and rss > limit else None

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_retrieve)

    # --- Introspection ------------------------------------------------------------------------------

    @property
    def pool_size(self) -> int:
        """Warm pages each shared context keeps."""
        return self._settings.pool_size

    def warm_pages(self) -> int:
        """Pages waiting in the pools of the current browser's shared contexts."""
        current = self._current
        if current is None or current.closing:
            return 0
        return sum(context.warm_pages for context in current.contexts.values())

    def open_targets(self) -> tuple[int, int]:
        """(browser contexts, pages) open right now, as the browsers themselves count them."""
        contexts = pages = 0
        for browser in (self._current, *self._draining):
            if browser is not None and not browser.closing:
                c, p = browser.engine.open_targets()
                contexts, pages = contexts + c, pages + p
        return contexts, pages


async def _close_context(context: EngineContext) -> None:
    await context.close()


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a background task's exception as seen (it was logged where it happened)."""
    if not task.cancelled() and (exc := task.exception()) is not None and not isinstance(exc, ServiceError):
        log.error("background task failed", exc_info=exc)
