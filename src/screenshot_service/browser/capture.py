"""The capture algorithm and the small interface engines implement; only engine modules import a
browser library.

A render is a sequence of named steps (``context``, ``open-page``, ``navigate``, readiness steps,
``capture``), each bounded by what is left of one :class:`Deadline` and timed into
``screenshot_render_step_seconds``. What a browser opens under a deadline that runs out is closed when
it opens (:func:`open_within`); every close is bounded too (:func:`close_within`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, Protocol, TypeVar

import msgspec
import structlog

from .. import metrics
from ..errors import ForbiddenUrl, InvalidRequest, RenderError, RenderTimeout
from ..guard.netpolicy import Gate, NetPolicy
from ..settings import Settings

T = TypeVar("T")

ImageFormat = Literal["png", "jpeg"]
WaitUntil = Literal["load", "domcontentloaded", "networkidle"]

CLOSE_TIMEOUT_S = 5.0
"""Bound of closing a page, a context or a browser: past it the browser is treated as hung."""

log = structlog.get_logger(__name__)


class Wait(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """When a page counts as ready; every condition given must hold, in this order."""

    until: WaitUntil = "load"
    selector: str | None = None
    """A CSS selector that must be visible."""
    expression: str | None = None
    """A JavaScript expression that must become truthy."""
    network_idle: bool = False
    delay_ms: Annotated[int, msgspec.Meta(ge=0, le=30_000)] = 0


class ContextSpec(msgspec.Struct, kw_only=True, frozen=True):
    """What a browser context is made with: shared by every page rendered in it."""

    width: int
    height: int
    scale: float
    timezone: str | None = None
    locale: str | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    cookies: list[tuple[str, str, str]] = msgspec.field(default_factory=list)
    """(name, value, url) of each cookie; the url's path is the cookie's path."""
    trusted_origin: str | None = None
    """``scheme://host:port`` the network policy trusts (a configured dashboard's own); None trusts none."""
    allowlisted_navigation: bool = False
    """Main-frame navigations must go to hosts on the URL allowlist (raw URL renders)."""

    def __repr__(self) -> str:  # header and cookie values are secrets
        return (
            f"ContextSpec({self.width}x{self.height}@{self.scale}, tz={self.timezone}, locale={self.locale})"
        )

    def gate(self, policy: NetPolicy) -> Gate:
        """The network policy as a context made with this spec applies it to its pages' requests."""
        return Gate(
            policy, trusted_origin=self.trusted_origin, allowlisted_navigation=self.allowlisted_navigation
        )


class CaptureSpec(msgspec.Struct, kw_only=True, frozen=True):
    """One capture: where to go, when the page is ready, and what to photograph."""

    url: str
    width: int
    height: int
    wait: Wait = msgspec.field(default_factory=Wait)
    selector: str | None = None
    full_page: bool = False
    format: ImageFormat = "png"
    quality: int | None = None


class Shot(msgspec.Struct, kw_only=True, frozen=True):
    """What one capture made: the image, and what the page told about itself on the way."""

    data: bytes
    readiness: str = "complete"
    """How the page became ready: ``complete`` (every readiness condition held)."""


class Deadline:
    """A hard time budget shared by the steps of one render; each step gets what is left."""

    __slots__ = ("_end",)

    def __init__(self, timeout_ms: float) -> None:
        self._end = time.monotonic() + timeout_ms / 1000

    def remaining_ms(self) -> float:
        return max(0.0, (self._end - time.monotonic()) * 1000)

    async def run(self, step: str, call: Callable[[float], Awaitable[T]]) -> T:
        """Run ``call(timeout_ms)`` as step ``step``; past the deadline it is a :class:`RenderTimeout`.

        The engine is given the remaining time as its own timeout, and ``asyncio.timeout`` backs it up
        with a little slack, so a library call that ignores its timeout cannot hang the render. The
        step's duration and outcome go into ``screenshot_render_step_seconds``.
        """
        remaining = self.remaining_ms()
        if remaining <= 0:
            raise RenderTimeout(f"The render ran out of time before step '{step}'.", step=step)
        started = time.perf_counter()
        outcome = "error"
        try:
            async with asyncio.timeout(remaining / 1000 + 0.25):
                result = await call(remaining)
            outcome = "ok"
        except TimeoutError:
            outcome = "timeout"
            raise RenderTimeout(f"The page did not finish step '{step}' in time.", step=step) from None
        except RenderTimeout:
            outcome = "timeout"
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            metrics.STEP_SECONDS.labels(step, outcome).observe(time.perf_counter() - started)
        return result


_closing: set[asyncio.Task[None]] = set()
"""Closes of things whose opening a deadline cut short, running on their own."""


async def open_within(
    deadline: Deadline, step: str, opening: Awaitable[T], close: Callable[[T], Awaitable[None]]
) -> T:
    """``await opening`` as step ``step``; cut short (deadline, hang-up), what it opens is closed.

    A page or context whose opening is cancelled still comes into being in Chromium, so the opening
    runs in a task of its own and, should nobody wait for it any more, is closed when it is done.
    """
    task = asyncio.ensure_future(opening)
    try:
        return await deadline.run(step, lambda _: asyncio.shield(task))
    except BaseException:
        task.add_done_callback(lambda done: _close_orphan(done, close))
        raise


def _close_orphan(done: asyncio.Future[T], close: Callable[[T], Awaitable[None]]) -> None:
    if done.cancelled() or done.exception() is not None:
        return
    task = asyncio.ensure_future(close(done.result()))
    _closing.add(task)
    task.add_done_callback(_closing.discard)


async def until_set(work: Awaitable[T], event: asyncio.Event) -> asyncio.Future[T]:
    """Run ``work`` until it finishes or ``event`` is set, whichever comes first; cut short, it is
    cancelled and waited for (its pages closed). Returns its future, done either way."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task})  # its error, if any, is the caller's to weigh
    return task


def without_headers(request_headers: dict[str, str], dropped: dict[str, str]) -> list[dict[str, str]]:
    """A paused request's headers (CDP's ``Fetch.continueRequest`` form) without the ``dropped`` names:
    a dashboard's secrets stay on its own origin."""
    names = {name.lower() for name in dropped}
    return [{"name": k, "value": v} for k, v in request_headers.items() if k.lower() not in names]


def succeeded(done: asyncio.Future[Any]) -> bool:
    """Whether a finished future holds a result (not an error, not a cancellation)."""
    return not done.cancelled() and done.exception() is None


async def close_within(what: str, closing: Awaitable[object], *ignored: type[BaseException]) -> None:
    """Close something of the browser's within :data:`CLOSE_TIMEOUT_S`; a close that fails with one of
    ``ignored`` (it is gone already) or hangs is logged, never raised: closing is cleanup."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await closing
    except TimeoutError:
        log.warning("close timed out", what=what, timeout_s=CLOSE_TIMEOUT_S)
    except ignored:
        pass  # gone with its browser already: nothing left to close


def blocked(step: str) -> ForbiddenUrl:
    """The error of a page whose navigation the network policy aborted (net::ERR_BLOCKED_BY_CLIENT)."""
    return ForbiddenUrl(
        "The page, or a redirect it made, goes to a destination this service may not reach.", step=step
    )


def no_element(selector: str) -> InvalidRequest:
    """The error of a clip selector that matches nothing once the page is ready: the page will not
    grow the element while we wait (readiness conditions are where waiting belongs)."""
    return InvalidRequest(
        "selector: no element on the page matches it once the page is ready "
        "(to wait for a late element, make it the readiness selector).",
        field="selector",
    )


READINESS_STEPS = frozenset({"network-idle", "selector", "expression", "delay"})
"""Steps of :func:`capture_page` that wait for the page to be ready (after navigation, before capture)."""


class EnginePage(Protocol):
    """One page's primitives; every call takes its own timeout in milliseconds."""

    async def goto(self, url: str, until: str, timeout_ms: float) -> int | None:
        """Navigate; returns the main response's HTTP status when there is one."""
        ...

    async def wait_network_idle(self, timeout_ms: float) -> None: ...

    async def wait_selector(self, selector: str, timeout_ms: float) -> None: ...

    async def wait_expression(self, expression: str, timeout_ms: float) -> None: ...

    async def screenshot(self, spec: CaptureSpec, timeout_ms: float) -> bytes: ...


async def capture_page(page: EnginePage, spec: CaptureSpec, deadline: Deadline) -> Shot:
    """The steps of one capture, each named and bounded: navigate, wait for readiness, capture."""
    status = await deadline.run("navigate", lambda t: page.goto(spec.url, spec.wait.until, t))
    if status is not None and status >= 400:
        raise RenderError(f"The dashboard page answered HTTP {status}.", step="navigate")
    wait = spec.wait
    if wait.network_idle:
        await deadline.run("network-idle", page.wait_network_idle)
    if wait.selector:
        selector = wait.selector
        await deadline.run("selector", lambda t: page.wait_selector(selector, t))
    if wait.expression:
        expression = wait.expression
        await deadline.run("expression", lambda t: page.wait_expression(expression, t))
    if wait.delay_ms:
        if wait.delay_ms > deadline.remaining_ms():
            raise RenderTimeout("The configured extra delay does not fit in the time left.", step="delay")
        delay_s = wait.delay_ms / 1000
        await deadline.run("delay", lambda _: asyncio.sleep(delay_s))
    data = await deadline.run("capture", lambda t: page.screenshot(spec, t))
    return Shot(data=data)


class EngineContext(Protocol):
    """A browser context: pages rendered in it share its cookies and headers."""

    async def capture(self, spec: CaptureSpec, deadline: Deadline) -> Shot:
        """Open a page, navigate, wait for readiness, capture, and close the page on every path."""
        ...

    async def close(self) -> None:
        """Close the context and its pages; bounded, never raises."""
        ...

    @property
    def warm_pages(self) -> int:
        """Pages opened ahead of need and waiting in the context's pool."""
        ...


class Engine(Protocol):
    """A browser: launched (or connected to) once, then asked for contexts."""

    name: str

    async def start(self) -> None: ...

    async def close(self) -> None:
        """Close the browser (or disconnect from a remote one); bounded, never raises."""
        ...

    @property
    def connected(self) -> bool: ...

    @property
    def pid(self) -> int | None:
        """Chromium's main process, leader of its process group; None for a remote browser."""
        ...

    async def new_context(self, spec: ContextSpec, pool_size: int = 0) -> EngineContext:
        """A context made with ``spec``; with ``pool_size``, it keeps that many warm pages."""
        ...

    def open_targets(self) -> tuple[int, int]:
        """(contexts, pages) the browser has open: what tests and metrics check for leaks."""
        ...


EngineFactory = Callable[[Settings, Callable[[], None]], Engine]
"""Makes the engine a browser is launched with: its settings, and what to call when it is lost."""


def create_engine(settings: Settings, on_disconnect: Callable[[], None]) -> Engine:
    """The configured engine; its library is imported only here, when chosen."""
    if settings.engine == "pyppeteer":
        from .pyppeteer import PyppeteerEngine  # noqa: PLC0415  (optional extra)

        return PyppeteerEngine(settings, on_disconnect)
    from .playwright import PlaywrightEngine  # noqa: PLC0415

    return PlaywrightEngine(settings, on_disconnect)
