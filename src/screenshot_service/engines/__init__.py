"""The small interface every browser engine implements; only engine modules import a browser library."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import msgspec

from ..errors import ForbiddenUrl, InvalidRequest, RenderError, RenderTimeout
from ..settings import ImageFormat, Settings, Wait

T = TypeVar("T")

# Flags for a server-side headless Chromium: no background traffic, no first-run UI, no GPU.
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-breakpad",
    "--metrics-recording-only",
    "--mute-audio",
    "--hide-scrollbars",
    "--font-render-hinting=none",
    # WebRTC's UDP (STUN/TURN) is invisible to request interception; no dashboard needs it.
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    # Keep cross-site iframes in their page's process, where the network policy's per-page interception
    # of redirects sees them (out-of-process iframes are separate DevTools targets).
    "--disable-site-isolation-trials",
    "--disable-features=IsolateOrigins,site-per-process",
)


def chromium_args(settings: Settings) -> list[str]:
    """The flags for launching Chromium with these settings."""
    args = list(CHROMIUM_ARGS)
    if settings.page_heap_mb:
        # A runaway page crashes its own tab (a clean error) before it can eat the container's memory.
        args.append(f"--js-flags=--max-old-space-size={settings.page_heap_mb}")
    return args


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
        with a little slack, so a library call that ignores its timeout cannot hang the render.
        """
        remaining = self.remaining_ms()
        if remaining <= 0:
            raise RenderTimeout(f"The render ran out of time before step '{step}'.", step=step)
        try:
            async with asyncio.timeout(remaining / 1000 + 0.25):
                return await call(remaining)
        except TimeoutError:
            raise RenderTimeout(f"The page did not finish step '{step}' in time.", step=step) from None


def blocked(step: str) -> ForbiddenUrl:
    """The error of a page whose navigation the network policy aborted (net::ERR_BLOCKED_BY_CLIENT)."""
    return ForbiddenUrl(
        "The page, or a redirect it made, goes to a destination this service may not reach.",
        extra={"step": step},
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

    async def close(self) -> None: ...


async def capture_page(page: EnginePage, spec: CaptureSpec, deadline: Deadline) -> bytes:
    """The steps of one capture, each named and bounded: navigate, wait for readiness, capture."""
    status = await deadline.run("navigate", lambda t: page.goto(spec.url, spec.wait.until, t))
    if status is not None and status >= 400:
        raise RenderError(f"The dashboard page answered HTTP {status}.", extra={"step": "navigate"})
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
        await asyncio.sleep(wait.delay_ms / 1000)
    return await deadline.run("capture", lambda t: page.screenshot(spec, t))


class EngineContext(Protocol):
    """A browser context: pages rendered in it share its cookies and headers."""

    async def capture(self, spec: CaptureSpec, deadline: Deadline) -> bytes:
        """Open a page, navigate, wait for readiness, capture, and close the page on every path."""
        ...

    async def close(self) -> None: ...


class Engine(Protocol):
    """A browser: launched (or connected to) once, then asked for contexts."""

    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    @property
    def connected(self) -> bool: ...

    @property
    def pid(self) -> int | None:
        """Chromium's main process, leader of its process group; None for a remote browser."""
        ...

    async def new_context(self, spec: ContextSpec) -> EngineContext: ...

    def open_targets(self) -> tuple[int, int]:
        """(contexts, pages) the browser has open: what tests and metrics check for leaks."""
        ...


def create_engine(settings: Settings, on_disconnect: Callable[[], None]) -> Engine:
    """The configured engine; its library is imported only here, when chosen."""
    if settings.engine == "pyppeteer":
        from .pyppeteer import PyppeteerEngine  # noqa: PLC0415  (optional extra)

        return PyppeteerEngine(settings, on_disconnect)
    from .playwright import PlaywrightEngine  # noqa: PLC0415

    return PlaywrightEngine(settings, on_disconnect)
