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
        self._restart_lock = asyncio.Lock()
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
        """Close every context and the browser."""
        engine, self._engine = self._engine, None
        contexts, self._contexts = self._contexts, {}
        for context in contexts.values():
            await context.close()
        if engine is not None:
            await engine.close()

    def _on_disconnect(self) -> None:
        log.warning("browser disconnected", generation=self._generation)

    async def _ensure_engine(self) -> Engine:
        """The live engine, relaunching a dead one once for every caller that finds it dead."""
        if self._engine is not None and self._engine.connected:
            return self._engine
        async with self._restart_lock:
            if self._engine is not None and self._engine.connected:
                return self._engine
            await self.close()
            metrics.BROWSER_RESTARTS.inc()
            await self.start()
            assert self._engine is not None
            return self._engine

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
        """Readiness: the browser answers and can open (and close) a page."""
        if not self.connected:
            raise BrowserUnavailable("The browser is not connected.")
        spec = ContextSpec(width=320, height=200, scale=1)
        capture = CaptureSpec(url="about:blank", width=320, height=200)
        await self.render(None, spec, capture, Deadline(timeout_ms))
