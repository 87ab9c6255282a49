"""The long-lived browser: launch, supervision and relaunch, one context per dashboard, bounded renders."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from . import metrics
from .engines import CaptureSpec, ContextSpec, Deadline, Engine, EngineContext, create_engine
from .errors import BrowserUnavailable
from .settings import Settings

log = structlog.get_logger(__name__)

EngineFactory = Callable[[Settings, Callable[[], None]], Engine]


class BrowserPool:
    """Owns one Chromium for the process; renders run in bounded slots, in per-dashboard contexts.

    Contexts are kept per key (a dashboard with its default context options) so a dashboard's cookies
    and headers stay its own without paying for a new context on every render; a render with no key
    (a raw URL, or overridden context options) gets a fresh context that is closed after it.
    """

    def __init__(self, settings: Settings, engine_factory: EngineFactory = create_engine) -> None:
        self._settings = settings
        self._engine_factory = engine_factory
        self._engine: Engine | None = None
        self._contexts: dict[str, EngineContext] = {}
        self._context_locks: dict[str, asyncio.Lock] = {}
        self._slots = asyncio.Semaphore(settings.render_concurrency)
        self._relaunch: asyncio.Task[None] | None = None
        self._generation = 0

    @property
    def engine_name(self) -> str:
        return self._settings.engine

    @property
    def connected(self) -> bool:
        return self._engine is not None and self._engine.connected

    async def start(self) -> None:
        """Launch (or connect to) Chromium; raises :class:`BrowserUnavailable` if it cannot."""
        engine = self._engine_factory(self._settings, self._on_disconnect)
        await engine.start()
        self._engine = engine
        self._generation += 1
        log.info("browser started", engine=engine.name, generation=self._generation)

    async def close(self) -> None:
        """Stop a relaunch under way, close every context and the browser (a remote one is only
        disconnected from: it is not ours to stop)."""
        relaunch, self._relaunch = self._relaunch, None
        if relaunch is not None and not relaunch.done():
            relaunch.cancel()
            await asyncio.wait([relaunch])
        await self._discard()

    async def _discard(self) -> None:
        engine, self._engine = self._engine, None
        contexts, self._contexts = self._contexts, {}
        for context in contexts.values():
            await context.close()
        if engine is not None:
            await engine.close()

    def _on_disconnect(self) -> None:
        log.warning("browser disconnected", generation=self._generation)

    async def _ensure_engine(self) -> Engine:
        """The live engine; a dead one is relaunched (or reconnected to) once for all who find it dead.

        The relaunch runs as a task of its own that callers wait for, shielded: a caller whose deadline
        passes (a readiness probe's few seconds, a render's timeout) stops waiting without cancelling
        it, so a slow reconnect still completes for whoever comes next.
        """
        if self._engine is not None and self._engine.connected:
            return self._engine
        if self._relaunch is None or self._relaunch.done():
            self._relaunch = asyncio.get_running_loop().create_task(self._relaunch_engine())
            # Read the outcome even if every waiter gave up, so a failure is not reported as unretrieved.
            self._relaunch.add_done_callback(lambda t: t.cancelled() or t.exception())
        await asyncio.shield(self._relaunch)
        if self._engine is None or not self._engine.connected:
            raise BrowserUnavailable("The browser went away again right after it was restarted.")
        return self._engine

    async def _relaunch_engine(self) -> None:
        await self._discard()
        metrics.BROWSER_RESTARTS.inc()
        await self.start()

    async def _context_for(self, engine: Engine, key: str, spec: ContextSpec) -> EngineContext:
        lock = self._context_locks.setdefault(key, asyncio.Lock())
        async with lock:
            context = self._contexts.get(key)
            if context is None:
                context = await engine.new_context(spec)
                self._contexts[key] = context
            return context

    async def render(
        self, key: str | None, context: ContextSpec, capture: CaptureSpec, deadline: Deadline
    ) -> bytes:
        """Capture one page in a render slot; pages (and a keyless context) are closed on every path."""
        async with self._slots:
            engine = await deadline.run("browser", lambda _: self._ensure_engine())
            if key is None:
                fresh = await engine.new_context(context)
                try:
                    return await fresh.capture(capture, deadline)
                finally:
                    await fresh.close()
            shared = await self._context_for(engine, key, context)
            return await shared.capture(capture, deadline)

    def open_targets(self) -> tuple[int, int]:
        """(browser contexts, pages) open right now, as the browser itself counts them."""
        return self._engine.open_targets() if self._engine is not None else (0, 0)

    async def check(self, timeout_ms: float = 5000) -> None:
        """Readiness: the browser answers and can open (and close) a page.

        A browser that is gone is relaunched (or reconnected to) here as on a render, so a replica
        that readiness probes took out of service comes back by itself when its browser does.
        """
        spec = ContextSpec(width=320, height=200, scale=1)
        capture = CaptureSpec(url="about:blank", width=320, height=200)
        await self.render(None, spec, capture, Deadline(timeout_ms))
