"""The default engine: Playwright for Python driving the system's Chromium (never a downloaded one)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import os
import re
import secrets
from collections.abc import Callable
from typing import Any

import structlog
from playwright._impl._errors import TargetClosedError  # not re-exported; raised when Chromium dies
from playwright.async_api import (
    Browser,
    BrowserContext,
    CDPSession,
    Page,
    Playwright,
    Request,
    Route,
    WebSocketRoute,
    async_playwright,
)
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout

from ..errors import BrowserUnavailable, InvalidRequest, PageCrashed, RenderError, RenderTimeout
from ..guard.egress import EgressPort, EgressProxy
from ..guard.netpolicy import Gate, NetPolicy
from ..settings import Settings
from .capture import (
    CaptureSpec,
    ContextSpec,
    Deadline,
    Shot,
    blocked,
    capture_page,
    cdp_boxes,
    close_within,
    no_element,
    open_within,
    shot_with_boxes,
    without_headers,
)
from .flags import chromium_args
from .pool import PagePool
from .processes import find_group_leader
from .settle import NetworkWatch, evaluated

log = structlog.get_logger(__name__)


class PlaywrightEngine:
    """One Chromium, launched from ``chromium_path`` or reached over ``browser_ws_endpoint``."""

    name = "playwright"

    def __init__(self, settings: Settings, on_disconnect: Callable[[], None]) -> None:
        self._settings = settings
        self._on_disconnect = on_disconnect
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._pid: int | None = None
        self._policy = NetPolicy.from_settings(settings)
        self._egress = EgressProxy(settings.egress_proxy_host)

    async def start(self) -> None:
        self._playwright = await async_playwright().start()
        chromium = self._playwright.chromium
        try:
            if self._settings.browser_ws_endpoint:
                self._browser = await chromium.connect_over_cdp(
                    self._settings.browser_ws_endpoint, timeout=15_000
                )
            else:
                # A switch Chromium ignores, so that its main process can be found among ours.
                marker = f"--screenshot-service-launch={secrets.token_hex(8)}"
                # Anything not made in one of our contexts (each has its own proxy port) is refused.
                refuse_all = await self._egress.open(None)
                self._browser = await chromium.launch(
                    proxy={"server": refuse_all.url},  # Playwright adds <-loopback>: loopback too
                    executable_path=self._settings.chromium_path,
                    args=[*chromium_args(self._settings), marker],
                    # The server owns its signals; Playwright must not install handlers of its own.
                    handle_sigint=False,
                    handle_sigterm=False,
                    handle_sighup=False,
                    timeout=30_000,
                )
        except PlaywrightError as exc:
            await self.close()
            raise BrowserUnavailable(f"Chromium could not be started: {_first_line(exc)}") from exc
        except asyncio.CancelledError:
            await self.close()  # stop the Playwright driver this start began
            raise
        self._browser.on("disconnected", lambda _: self._on_disconnect())
        if not self._settings.browser_ws_endpoint:
            # Playwright starts Chromium in a process group of its own; its leader is the main process.
            self._pid = find_group_leader(marker, os.getpid())

    async def close(self) -> None:
        browser, self._browser = self._browser, None
        playwright, self._playwright = self._playwright, None
        try:
            if browser is not None:
                await close_within("browser", browser.close(), PlaywrightError)
        finally:
            if playwright is not None:
                await close_within("playwright driver", playwright.stop(), PlaywrightError)
            await self._egress.close()

    @property
    def connected(self) -> bool:
        return self._browser is not None and self._browser.is_connected()

    @property
    def pid(self) -> int | None:
        return self._pid

    def open_targets(self) -> tuple[int, int]:
        contexts = self._browser.contexts if self._browser is not None else []
        return len(contexts), sum(len(context.pages) for context in contexts)

    async def new_context(self, spec: ContextSpec, pool_size: int = 0) -> PlaywrightContext:
        if self._browser is None or not self._browser.is_connected():
            raise BrowserUnavailable("The browser is not running; it is being restarted.")
        gate = spec.gate(self._policy)
        egress = await self._egress.open(gate)
        try:
            context = await self._browser.new_context(
                viewport={"width": spec.width, "height": spec.height},
                device_scale_factor=spec.scale,
                timezone_id=spec.timezone,
                locale=spec.locale,
                proxy={"server": egress.url},  # with <-loopback>, as at launch
                service_workers="block",
            )
        except PlaywrightError as exc:
            await egress.close()
            raise _translate(exc, "context") from exc
        except BaseException:
            await egress.close()
            raise
        opened = PlaywrightContext(context, gate, spec.scale, egress, pool_size)
        try:
            await opened.prepare(spec)
        except BaseException:
            await opened.close()  # half made: cookies or routing refused, or the deadline passed
            raise
        return opened


async def _guard(context: BrowserContext, gate: Gate, headers: dict[str, str]) -> None:
    """Every request and WebSocket of the context's pages (navigations, redirects, subresources)
    goes through the network policy first; a forbidden one is aborted before it leaves Chromium.
    The dashboard's ``headers`` go only with requests to its own (trusted) origin."""

    async def on_request(route: Route, request: Request) -> None:
        main_frame_navigation = request.is_navigation_request() and request.frame.parent_frame is None
        if await gate.problem(request.url, main_frame_navigation=main_frame_navigation):
            with contextlib.suppress(PlaywrightError):  # the page may be gone already
                await route.abort("blockedbyclient")
            return
        with contextlib.suppress(PlaywrightError):
            if headers and gate.trusted(request.url):
                await route.continue_(headers={**await request.all_headers(), **headers})
            else:
                await route.continue_()

    async def on_websocket(websocket: WebSocketRoute) -> None:
        if await gate.problem(websocket.url, main_frame_navigation=False):
            with contextlib.suppress(PlaywrightError):
                await websocket.close(code=1008, reason="blocked by the network policy")
            return
        websocket.connect_to_server()

    await context.route("**/*", on_request)
    await context.route_web_socket(re.compile(".*"), on_websocket)


async def _guard_redirects(
    context: BrowserContext, page: Page, gate: Gate, headers: dict[str, str]
) -> CDPSession:
    """Redirect hops, which Playwright's routing lets through unasked, paused through CDP and checked.

    Playwright calls a route handler for the first URL of a request only and follows redirects itself,
    so a dashboard answering 302 to an internal address would get there. Chromium's Fetch domain
    pauses every hop; the page's own session checks the hops and lets first requests go on to the
    routing above (which also sees workers' requests). A hop that leaves the trusted origin loses the
    dashboard's ``headers``. The session is returned for the capture.
    """
    session = await context.new_cdp_session(page)
    main_frame = ""

    async def on_paused(event: dict[str, Any]) -> None:
        problem = None
        verdict: dict[str, Any] = {"requestId": event["requestId"]}
        if event.get("redirectedRequestId"):
            url = event["request"]["url"] + event["request"].get("urlFragment", "")
            navigation = event.get("resourceType") == "Document" and event.get("frameId") == main_frame
            problem = await gate.problem(url, main_frame_navigation=navigation)
            if headers and not gate.trusted(url):
                verdict["headers"] = without_headers(event["request"]["headers"], headers)
        with contextlib.suppress(PlaywrightError):  # the page may be gone already
            if problem:
                await session.send("Fetch.failRequest", {**verdict, "errorReason": "BlockedByClient"})
            else:
                await session.send("Fetch.continueRequest", verdict)

    session.on("Fetch.requestPaused", on_paused)
    # One round trip for the three: nothing is paused before the page navigates, after this returns.
    tree: dict[str, Any]
    tree, _, _ = await asyncio.gather(
        session.send("Page.getFrameTree"),
        session.send("Fetch.enable", {"patterns": [{"urlPattern": "*", "requestStage": "Request"}]}),
        # As Playwright's own session does: a page that is not focused cannot be captured over CDP.
        session.send("Emulation.setFocusEmulationEnabled", {"enabled": True}),
    )
    main_frame = tree["frameTree"]["frame"]["id"]
    return session


_WarmPage = tuple[Page, CDPSession]
"""A page and its guarding CDP session, ready to navigate."""


class PlaywrightContext:
    """A Playwright browser context; each capture gets a new page in it (a warm one from its pool)."""

    def __init__(
        self, context: BrowserContext, gate: Gate, scale: float, egress: EgressPort, pool_size: int = 0
    ) -> None:
        self._context = context
        self._gate = gate
        self._scale = scale
        self._egress = egress
        self._headers: dict[str, str] = {}
        self._pool: PagePool[_WarmPage] | None = None
        if pool_size > 0:
            self._pool = PagePool(
                pool_size, self._open_page, _close_warm, lambda warm: not warm[0].is_closed()
            )

    async def prepare(self, spec: ContextSpec) -> None:
        """The context's cookies, and the network policy on every request of its pages."""
        try:
            if spec.cookies:
                await self._context.add_cookies(
                    [{"name": name, "value": value, "url": url} for name, value, url in spec.cookies]
                )
            self._headers = dict(spec.headers)
            await _guard(self._context, self._gate, self._headers)
        except PlaywrightError as exc:
            raise _translate(exc, "context") from exc

    async def capture(self, spec: CaptureSpec, deadline: Deadline) -> Shot:
        page: Page | None = None
        try:
            warm = self._pool.take() if self._pool is not None else None
            if warm is None:
                warm = await open_within(deadline, "open-page", self._open_page(), _close_warm)
            page, session = warm
            return await capture_page(_PlaywrightPage(page, session, self._scale), spec, deadline)
        finally:
            if page is not None:
                await _close_page(page)
            if self._pool is not None:
                self._pool.refill()  # after every render, one that could not open its page too

    @property
    def warm_pages(self) -> int:
        return len(self._pool) if self._pool is not None else 0

    async def _open_page(self) -> _WarmPage:
        """A new page with its redirect guard and focus emulation: ready to navigate."""
        try:
            page = await self._context.new_page()
        except PlaywrightError as exc:
            raise _translate(exc, "open-page") from exc
        try:
            session = await _guard_redirects(self._context, page, self._gate, self._headers)
        except PlaywrightError as exc:
            await _close_page(page)
            raise _translate(exc, "open-page") from exc
        except BaseException:
            await _close_page(page)
            raise
        return page, session

    async def close(self) -> None:
        try:
            if self._pool is not None:
                await self._pool.close()
            await close_within("context", self._context.close(), PlaywrightError)
        finally:
            await self._egress.close()


async def _close_page(page: Page) -> None:
    await close_within("page", page.close(), PlaywrightError)  # it may have died with its browser


async def _close_warm(warm: _WarmPage) -> None:
    await _close_page(warm[0])


class _PlaywrightPage:
    """Page primitives with Playwright's errors translated into ours."""

    def __init__(self, page: Page, session: CDPSession, scale: float) -> None:
        self._page = page
        self._session = session
        self._scale = scale  # the context's device scale factor, which our CDP session does not see
        self.network = NetworkWatch.of(page, lambda request: request.resource_type)

    async def goto(self, url: str, until: str, timeout_ms: float) -> int | None:
        response = await self._call("navigate", self._page.goto(url, wait_until=until, timeout=timeout_ms))  # type: ignore[arg-type]
        return None if response is None else response.status

    async def wait_network_idle(self, timeout_ms: float) -> None:
        await self._call("network-idle", self._page.wait_for_load_state("networkidle", timeout=timeout_ms))

    async def wait_selector(self, selector: str, timeout_ms: float) -> None:
        await self._call(
            "selector", self._page.wait_for_selector(selector, state="visible", timeout=timeout_ms)
        )

    async def wait_expression(self, expression: str, timeout_ms: float) -> None:
        await self._call("expression", self._page.wait_for_function(expression, timeout=timeout_ms))

    async def evaluate(self, expression: str, timeout_ms: float) -> Any:
        params = {"expression": expression, "awaitPromise": True, "returnByValue": True}
        try:
            async with asyncio.timeout(timeout_ms / 1000):
                return evaluated(await self._session.send("Runtime.evaluate", params))
        except TimeoutError:
            raise RenderTimeout("The page did not finish step 'auto' in time.", step="auto") from None
        except PlaywrightError as exc:
            if "context was destroyed" in exc.message or "Cannot find context" in exc.message:
                return None  # it navigated: the caller starts again on the new document
            raise _translate(exc, "auto") from exc

    async def screenshot(self, spec: CaptureSpec, timeout_ms: float) -> Shot:
        if (self._page.viewport_size or {}) != {"width": spec.width, "height": spec.height}:
            await self._page.set_viewport_size({"width": spec.width, "height": spec.height})
        if not spec.selector and not spec.full_page:
            try:
                fast = await self._viewport_screenshot(spec)
            except TargetClosedError as exc:
                raise _translate(exc, "capture") from exc
            except PlaywrightError as exc:
                # A capture here failed once in ~1000 renders on an overloaded machine: Playwright's path
                # gets a second chance, and the log line says why.
                log.warning("fast capture failed, taking Playwright's", error=_first_line(exc))
                fast = None
            if fast is not None:
                return fast
        options: dict[str, Any] = {"type": spec.format, "timeout": timeout_ms, "animations": "disabled"}
        if spec.format == "jpeg" and spec.quality is not None:
            options["quality"] = spec.quality
        if spec.selector:
            matches = self._page.locator(spec.selector)
            if not await self._call("capture", matches.count()):
                raise no_element(spec.selector)
            capture = matches.first.screenshot(**options)
        else:
            capture = self._page.screenshot(full_page=spec.full_page, **options)
        boxes = None if spec.panels is None else cdp_boxes(self._session.send, spec)
        shot: Shot = await self._call("capture", shot_with_boxes(capture, boxes))
        return shot

    async def _viewport_screenshot(self, spec: CaptureSpec) -> Shot | None:
        """The viewport in two CDP calls instead of Playwright's six, with the same pixels.

        Playwright's screenshot prepares the page (animations finished, caret hidden, fonts awaited),
        measures it, captures, then restores the page, each a round trip; the page is closed right after
        a render, so nothing needs restoring, and the preparation is one script. A page with frames is
        left to Playwright, which prepares every frame. ``optimizeForSpeed`` makes Chromium's PNG
        encoder trade size for time: same pixels, a larger file. ``None``: use Playwright's path.
        """
        prepared = await self._session.send(
            "Runtime.evaluate",
            {"expression": _PREPARE_CAPTURE, "awaitPromise": True, "returnByValue": True},
        )
        view = prepared["result"].get("value") if not prepared.get("exceptionDetails") else None
        if not isinstance(view, dict) or view.get("frames") != 0:
            return None
        # The visible viewport in the page's CSS pixels, as Playwright clips it, at the device scale: the
        # emulated scale factor is set on Playwright's session, which Chromium's capture on ours ignores.
        clip = {
            "x": view["x"],
            "y": view["y"],
            "width": math.ceil(spec.width / view["scale"]),
            "height": math.ceil(spec.height / view["scale"]),
            "scale": view["scale"] * self._scale,
        }
        params: dict[str, Any] = {"format": spec.format, "clip": clip, "optimizeForSpeed": True}
        if spec.format == "jpeg":
            params["quality"] = spec.quality if spec.quality is not None else 80  # Playwright's default
        boxes = None if spec.panels is None else cdp_boxes(self._session.send, spec)
        return await shot_with_boxes(self._capture(params), boxes)

    async def _capture(self, params: dict[str, Any]) -> bytes:
        shot = await self._session.send("Page.captureScreenshot", params)
        return base64.b64decode(shot["data"], validate=False)

    @staticmethod
    async def _call(step: str, awaitable: Any) -> Any:
        try:
            return await awaitable
        except PlaywrightError as exc:
            raise _translate(exc, step) from exc


# What Playwright's screenshot(animations="disabled") does to a page before capturing it (finite
# animations finished, infinite ones cancelled, text carets hidden, web fonts awaited), in one script
# for the main frame; it answers the visible viewport, and the number of frames, which only
# Playwright's own path prepares.
_PREPARE_CAPTURE = """(async () => {
  const roots = [document];
  for (let i = 0; i < roots.length; i++) {
    const walker = document.createTreeWalker(roots[i], NodeFilter.SHOW_ELEMENT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (node.shadowRoot) roots.push(node.shadowRoot);
    }
  }
  const settle = (root) => {
    for (const animation of root.getAnimations()) {
      if (!animation.effect || animation.playbackRate === 0) continue;
      try {
        if (Number.isFinite(animation.effect.getComputedTiming().endTime)) animation.finish();
        else animation.cancel();
      } catch (e) {}
    }
  };
  for (const root of roots) {
    root.querySelectorAll("input,textarea,[contenteditable]").forEach(
      (element) => element.style.setProperty("caret-color", "transparent", "important"));
    settle(root);
    root.addEventListener("transitionrun", () => settle(root));
    root.addEventListener("animationstart", () => settle(root));
  }
  await document.fonts.ready;
  const view = window.visualViewport;
  return {frames: window.frames.length, x: view.pageLeft, y: view.pageTop, scale: view.scale};
})()"""


def _translate(exc: PlaywrightError, step: str) -> Exception:
    """Playwright's errors as ours; the caller sees the step and a network error code, not internals."""
    if isinstance(exc, PlaywrightTimeout):
        return RenderTimeout(f"The page did not finish step '{step}' in time.", step=step)
    if "crash" in exc.message.lower():  # the tab's renderer died; the browser lives on
        return PageCrashed(
            f"The page crashed during step '{step}' (it may have run out of memory; "
            "see SCREENSHOT_PAGE_HEAP_MB).",
            step=step,
        )
    if isinstance(exc, TargetClosedError):
        return BrowserUnavailable(f"The browser or page went away during step '{step}'.")
    for method, field in (("setLocaleOverride", "locale"), ("setTimezoneOverride", "timezone")):
        if method in exc.message:  # Chromium refused a value our patterns let through
            return InvalidRequest(f"{field}: Chromium does not accept this value.", field=field)
    if "net::ERR_BLOCKED_BY_CLIENT" in exc.message or "net::ERR_UNSAFE_REDIRECT" in exc.message:
        return blocked(step)
    if re.search(r"while parsing (css )?selector|is not a valid selector", exc.message):
        return InvalidRequest("selector: not a valid CSS selector.", field="selector")
    if match := re.search(r"net::ERR_[A-Z_]+", exc.message):
        return RenderError(f"The page could not be loaded ({match.group()}).", step=step)
    return RenderError(f"The browser failed at step '{step}'.", step=step)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
