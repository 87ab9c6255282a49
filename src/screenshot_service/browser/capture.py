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
from .settle import QUIET_MS, Preset, StillPage, settle, settle_budget_ms

T = TypeVar("T")

ImageFormat = Literal["png", "jpeg"]
WaitUntil = Literal["load", "domcontentloaded", "networkidle"]

CLOSE_TIMEOUT_S = 5.0
"""Bound of closing a page, a context or a browser: past it the browser is treated as hung."""

log = structlog.get_logger(__name__)


class Wait(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """When a page counts as ready; every condition given must hold, in this order.

    With none given, the page is ready when it is still (``auto``, see :mod:`.settle`). An explicit
    condition (``until``, ``selector``, ``expression``, ``network_idle``, ``delay_ms``) replaces that,
    unless ``auto = true`` is also given: then the explicit ones hold first, and the page must then be
    still. A ``preset`` is auto with the app's own "still working" signal, after any explicit ones.
    """

    until: WaitUntil | None = None
    """The navigation event waited for (``load`` when not given)."""
    selector: str | None = None
    """A CSS selector that must be visible."""
    expression: str | None = None
    """A JavaScript expression that must become truthy."""
    network_idle: bool = False
    delay_ms: Annotated[int, msgspec.Meta(ge=0, le=30_000)] = 0
    auto: bool | None = None
    """Wait until the page is still; by default on when no explicit condition is given."""
    preset: Preset | None = None
    """A dashboard app's readiness: ``auto``, ``streamlit``, ``dash``, ``panel``."""
    quiet_ms: Annotated[int, msgspec.Meta(ge=100, le=5_000)] = QUIET_MS
    """How long the network must be idle and the page still at once."""
    max_ms: Annotated[int, msgspec.Meta(ge=0, le=300_000)] | None = None
    """Bound of the still-wait (besides the deadline); past it the capture is ``partial``."""
    refuse_partial: bool = False
    """A page still moving at the bound is a 504 (``render-timeout``, step ``auto``), not a capture."""

    @property
    def navigation(self) -> WaitUntil:
        return self.until or "load"

    @property
    def settles(self) -> bool:
        """Whether the page must become still before the capture."""
        if self.preset is not None or self.auto is not None:
            return self.preset is not None or bool(self.auto)
        explicit = (
            self.until,
            self.selector,
            self.expression,
            self.network_idle or None,
            self.delay_ms or None,
        )
        return all(condition is None for condition in explicit)

    def conditions(self) -> list[str]:
        """The names of the conditions this wait checks, in order (what a readiness report names)."""
        names: list[str] = [self.navigation]
        names += [
            name
            for name, on in (
                ("network-idle", self.network_idle),
                ("selector", self.selector),
                ("expression", self.expression),
                ("delay", self.delay_ms),
            )
            if on
        ]
        if self.settles:
            names.append(f"preset:{self.preset}" if self.preset not in (None, "auto") else "auto")
        return names


class Readiness(msgspec.Struct, kw_only=True, frozen=True):
    """How a page became ready: which conditions held (or that it was captured ``partial`` at the
    bound), how long waiting for them took after navigation, and what was still moving."""

    state: Literal["ready", "partial"] = "ready"
    condition: str = "load"
    """The conditions that were waited for, joined by ``+`` (e.g. ``load+auto``, ``load+selector``)."""
    waited_ms: int = 0
    """Time from the end of navigation until the page was ready (or the bound passed)."""
    moving: tuple[str, ...] = ()
    """What still changed in the last quiet window of a ``partial`` capture: ``network``,
    ``canvas:canvas#id``, ``dom:div#panel``, ``animation:name``, ``fonts``, ``image:img``, or a
    preset's signal (``streamlit:running``...)."""

    def header(self) -> str:
        """The compact form of ``X-Render-Readiness``: ``ready; condition=load+auto; waited_ms=512``."""
        parts = [self.state, f"condition={self.condition}", f"waited_ms={self.waited_ms}"]
        if self.moving:
            parts.append("moving=" + ",".join(self.moving))
        return "; ".join(parts)

    @property
    def outcome(self) -> str:
        """The few-valued label of ``screenshot_render_readiness_total``."""
        return "partial" if self.state == "partial" else self.condition


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
    readiness: Readiness = msgspec.field(default_factory=Readiness)
    """How the page became ready."""


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


READINESS_STEPS = frozenset({"network-idle", "selector", "expression", "delay", "auto"})
"""Steps of :func:`capture_page` that wait for the page to be ready (after navigation, before capture)."""


class EnginePage(StillPage, Protocol):
    """One page's primitives; every call takes its own timeout in milliseconds. Its ``network`` is fed
    with the page's requests from before navigation on."""

    async def goto(self, url: str, until: str, timeout_ms: float) -> int | None:
        """Navigate; returns the main response's HTTP status when there is one."""
        ...

    async def wait_network_idle(self, timeout_ms: float) -> None: ...

    async def wait_selector(self, selector: str, timeout_ms: float) -> None: ...

    async def wait_expression(self, expression: str, timeout_ms: float) -> None: ...

    async def screenshot(self, spec: CaptureSpec, timeout_ms: float) -> bytes: ...


async def capture_page(page: EnginePage, spec: CaptureSpec, deadline: Deadline) -> Shot:
    """The steps of one capture, each named and bounded: navigate, wait for readiness, capture."""
    wait = spec.wait
    status = await deadline.run("navigate", lambda t: page.goto(spec.url, wait.navigation, t))
    if status is not None and status >= 400:
        raise RenderError(f"The dashboard page answered HTTP {status}.", step="navigate")
    loaded = time.monotonic()
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
    readiness = Readiness(condition="+".join(wait.conditions()))
    if wait.settles:
        settled = await deadline.run(
            "auto",
            lambda t: settle(
                page,
                quiet_ms=wait.quiet_ms,
                budget_ms=settle_budget_ms(t, wait.max_ms),
                full=spec.full_page,
                preset=wait.preset or "auto",
            ),
        )
        if not settled.still:
            if wait.refuse_partial:
                raise RenderTimeout(
                    "The page was still moving when the time to wait for it ran out "
                    f"({', '.join(settled.moving) or 'unknown'}); refuse_partial is set.",
                    step="auto",
                )
            readiness = msgspec.structs.replace(readiness, state="partial", moving=settled.moving)
    readiness = msgspec.structs.replace(readiness, waited_ms=round((time.monotonic() - loaded) * 1000))
    data = await deadline.run("capture", lambda t: page.screenshot(spec, t))
    return Shot(data=data, readiness=readiness)


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
