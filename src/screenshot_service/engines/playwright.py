"""The default engine: Playwright for Python driving the system's Chromium (never a downloaded one)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Callable
from typing import Any

from playwright._impl._errors import TargetClosedError  # not re-exported; raised when Chromium dies
from playwright.async_api import (
    Browser,
    BrowserContext,
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
from ..netpolicy import Gate, NetPolicy
from ..procs import find_group_leader
from ..settings import Settings
from . import CaptureSpec, ContextSpec, Deadline, blocked, capture_page, chromium_args, no_element


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
                self._browser = await chromium.launch(
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
        self._browser.on("disconnected", lambda _: self._on_disconnect())
        if not self._settings.browser_ws_endpoint:
            # Playwright starts Chromium in a process group of its own; its leader is the main process.
            self._pid = find_group_leader(marker, os.getpid())

    async def close(self) -> None:
        browser, self._browser = self._browser, None
        playwright, self._playwright = self._playwright, None
        try:
            if browser is not None:
                await browser.close()
        except PlaywrightError:
            pass  # already gone: nothing left to close
        finally:
            if playwright is not None:
                await playwright.stop()

    @property
    def connected(self) -> bool:
        return self._browser is not None and self._browser.is_connected()

    @property
    def pid(self) -> int | None:
        return self._pid

    def open_targets(self) -> tuple[int, int]:
        contexts = self._browser.contexts if self._browser is not None else []
        return len(contexts), sum(len(context.pages) for context in contexts)

    async def new_context(self, spec: ContextSpec) -> PlaywrightContext:
        if self._browser is None or not self._browser.is_connected():
            raise BrowserUnavailable("The browser is not running; it is being restarted.")
        try:
            context = await self._browser.new_context(
                viewport={"width": spec.width, "height": spec.height},
                device_scale_factor=spec.scale,
                timezone_id=spec.timezone,
                locale=spec.locale,
                extra_http_headers=spec.headers or None,
                service_workers="block",
            )
            if spec.cookies:
                await context.add_cookies(
                    [{"name": name, "value": value, "url": url} for name, value, url in spec.cookies]
                )
            gate = Gate(self._policy, **_gate_options(spec))
            await _guard(context, gate)
        except PlaywrightError as exc:
            raise _translate(exc, "context") from exc
        return PlaywrightContext(context, gate)


def _gate_options(spec: ContextSpec) -> dict[str, Any]:
    return {"trusted_origin": spec.trusted_origin, "allowlisted_navigation": spec.allowlisted_navigation}


async def _guard(context: BrowserContext, gate: Gate) -> None:
    """Every request and WebSocket of the context's pages (navigations, redirects, subresources)
    goes through the network policy first; a forbidden one is aborted before it leaves Chromium."""

    async def on_request(route: Route, request: Request) -> None:
        main_frame_navigation = request.is_navigation_request() and request.frame.parent_frame is None
        if await gate.problem(request.url, main_frame_navigation=main_frame_navigation):
            with contextlib.suppress(PlaywrightError):  # the page may be gone already
                await route.abort("blockedbyclient")
            return
        with contextlib.suppress(PlaywrightError):
            await route.continue_()

    async def on_websocket(websocket: WebSocketRoute) -> None:
        if await gate.problem(websocket.url, main_frame_navigation=False):
            with contextlib.suppress(PlaywrightError):
                await websocket.close(code=1008, reason="blocked by the network policy")
            return
        websocket.connect_to_server()

    await context.route("**/*", on_request)
    await context.route_web_socket(re.compile(".*"), on_websocket)


async def _guard_redirects(context: BrowserContext, page: Page, gate: Gate) -> None:
    """Redirect hops, which Playwright's routing lets through unasked, paused through CDP and checked.

    Playwright calls a route handler for the first URL of a request only and follows redirects itself,
    so a dashboard answering 302 to an internal address would get there. Chromium's Fetch domain
    pauses every hop; the page's own session checks the hops and lets first requests go on to the
    routing above (which also sees workers' requests).
    """
    session = await context.new_cdp_session(page)
    tree = await session.send("Page.getFrameTree")
    main_frame = tree["frameTree"]["frame"]["id"]

    async def on_paused(event: dict[str, Any]) -> None:
        problem = None
        if event.get("redirectedRequestId"):
            url = event["request"]["url"] + event["request"].get("urlFragment", "")
            navigation = event.get("resourceType") == "Document" and event.get("frameId") == main_frame
            problem = await gate.problem(url, main_frame_navigation=navigation)
        request_id = event["requestId"]
        with contextlib.suppress(PlaywrightError):  # the page may be gone already
            if problem:
                await session.send(
                    "Fetch.failRequest", {"requestId": request_id, "errorReason": "BlockedByClient"}
                )
            else:
                await session.send("Fetch.continueRequest", {"requestId": request_id})

    session.on("Fetch.requestPaused", on_paused)
    await session.send("Fetch.enable", {"patterns": [{"urlPattern": "*", "requestStage": "Request"}]})


class PlaywrightContext:
    """A Playwright browser context; each capture gets a new page in it."""

    def __init__(self, context: BrowserContext, gate: Gate) -> None:
        self._context = context
        self._gate = gate

    async def capture(self, spec: CaptureSpec, deadline: Deadline) -> bytes:
        try:
            page = await deadline.run("open-page", lambda t: self._context.new_page())
        except PlaywrightError as exc:
            raise _translate(exc, "open-page") from exc
        try:
            await deadline.run("open-page", lambda t: _guard_redirects(self._context, page, self._gate))
            return await capture_page(_PlaywrightPage(page), spec, deadline)
        finally:
            with contextlib.suppress(PlaywrightError):  # the page may have died with its browser
                await page.close()

    async def close(self) -> None:
        with contextlib.suppress(PlaywrightError):  # closed with its browser
            await self._context.close()


class _PlaywrightPage:
    """Page primitives with Playwright's errors translated into ours."""

    def __init__(self, page: Page) -> None:
        self._page = page

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

    async def screenshot(self, spec: CaptureSpec, timeout_ms: float) -> bytes:
        if (self._page.viewport_size or {}) != {"width": spec.width, "height": spec.height}:
            await self._page.set_viewport_size({"width": spec.width, "height": spec.height})
        options: dict[str, Any] = {"type": spec.format, "timeout": timeout_ms, "animations": "disabled"}
        if spec.format == "jpeg" and spec.quality is not None:
            options["quality"] = spec.quality
        if spec.selector:
            matches = self._page.locator(spec.selector)
            if not await self._call("capture", matches.count()):
                raise no_element(spec.selector)
            data: bytes = await self._call("capture", matches.first.screenshot(**options))
        else:
            data = await self._call("capture", self._page.screenshot(full_page=spec.full_page, **options))
        return data

    async def close(self) -> None:
        await self._page.close()

    @staticmethod
    async def _call(step: str, awaitable: Any) -> Any:
        try:
            return await awaitable
        except PlaywrightError as exc:
            raise _translate(exc, step) from exc


def _translate(exc: PlaywrightError, step: str) -> Exception:
    """Playwright's errors as ours; the caller sees the step and a network error code, not internals."""
    if isinstance(exc, PlaywrightTimeout):
        return RenderTimeout(f"The page did not finish step '{step}' in time.", step=step)
    if "crash" in exc.message.lower():  # the tab's renderer died; the browser lives on
        return PageCrashed(
            f"The page crashed during step '{step}' (it may have run out of memory; "
            "see SCREENSHOT_PAGE_HEAP_MB).",
            extra={"step": step},
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
        return RenderError(f"The page could not be loaded ({match.group()}).", extra={"step": step})
    return RenderError(f"The browser failed at step '{step}'.", extra={"step": step})


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
