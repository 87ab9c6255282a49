"""The optional second engine: pyppeteer (``[pyppeteer]`` extra) with its known hazards fenced off.

pyppeteer's own launcher replaces the server's signal handlers, blocks the event loop while it polls
for Chromium, and leaves ``<defunct>`` processes; so we start Chromium ourselves in its own process
group, connect pyppeteer to it, bound every call (``Deadline.run``), and treat a connection that stops
answering after a cancelled call as a dead browser, which the pool relaunches.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pyppeteer
from pyppeteer.browser import BrowserContext
from pyppeteer.errors import PyppeteerError
from pyppeteer.errors import TimeoutError as PyppeteerTimeout

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
    succeeded,
    until_set,
    without_headers,
)
from .flags import chromium_args
from .pool import PagePool
from .settle import NetworkWatch, evaluated

_DEVTOOLS_RE = re.compile(rb"DevTools listening on (ws://\S+)")
_UNTIL = {"load": "load", "domcontentloaded": "domcontentloaded", "networkidle": "networkidle0"}


class PyppeteerEngine:
    """One Chromium we launch and reap ourselves, driven through pyppeteer's DevTools connection."""

    name = "pyppeteer"

    def __init__(self, settings: Settings, on_disconnect: Callable[[], None]) -> None:
        self._settings = settings
        self._on_disconnect = on_disconnect
        self._process: asyncio.subprocess.Process | None = None
        self._profile: str | None = None
        self._browser: Any = None
        self._dead = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._policy = NetPolicy.from_settings(settings)
        self._egress = EgressProxy(settings.egress_proxy_host)

    async def start(self) -> None:
        self._dead = False
        try:
            endpoint = self._settings.browser_ws_endpoint or await self._launch()
            if endpoint.startswith(("http://", "https://")):
                endpoint = await _websocket_url(endpoint)
            self._browser = await asyncio.wait_for(
                pyppeteer.connect(browserWSEndpoint=endpoint, defaultViewport=None), 15
            )
        except (PyppeteerError, OSError, TimeoutError, httpx.HTTPError, KeyError, ValueError) as exc:
            await self.close()
            raise BrowserUnavailable("Chromium could not be reached over DevTools.") from exc
        except asyncio.CancelledError:
            await self.close()  # the refuse-all proxy port and the Chromium this start began
            raise
        self._browser.on("disconnected", self._lost)

    async def _launch(self) -> str:
        self._profile = tempfile.mkdtemp(prefix="screenshot-chromium-")
        args = [a for a in chromium_args(self._settings) if not a.startswith("--headless")]
        # Anything not made in one of our contexts (each has its own proxy port) is refused.
        refuse_all = await self._egress.open(None)
        args += [f"--proxy-server={refuse_all.url}", "--proxy-bypass-list=<-loopback>"]
        try:
            self._process = await asyncio.create_subprocess_exec(
                self._settings.chromium_path,
                "--headless",
                *args,
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--user-data-dir={self._profile}",
                "about:blank",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group: killed whole, never orphaned
            )
            assert self._process.stderr is not None
            endpoint = await asyncio.wait_for(_read_endpoint(self._process.stderr), 30)
        except (OSError, TimeoutError, EOFError) as exc:
            await self.close()
            raise BrowserUnavailable("Chromium could not be started.") from exc
        self._spawn(_drain(self._process.stderr))
        self._spawn(self._watch(self._process))
        return endpoint

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self, process: asyncio.subprocess.Process) -> None:
        await process.wait()
        if process is self._process:
            self._lost()

    def _lost(self, *_: object) -> None:
        if not self._dead:
            self._dead = True
            self._on_disconnect()

    async def close(self) -> None:
        self._dead = True
        browser, self._browser = self._browser, None
        if browser is not None:
            await close_within("browser connection", browser.disconnect(), *_GONE)
        process, self._process = self._process, None
        if process is not None:
            await _stop_group(process)
        for task in list(self._tasks):
            task.cancel()
        if self._profile:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None
        await self._egress.close()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def connected(self) -> bool:
        return self._browser is not None and not self._dead and self._browser._connection._connected

    def open_targets(self) -> tuple[int, int]:
        if self._browser is None:
            return 0, 0
        # The default context and its initial about:blank page are the browser's own, not ours.
        contexts = len(self._browser.browserContexts) - 1
        pages = sum(1 for t in self._browser.targets() if t.type == "page" and t.browserContext.isIncognito())
        return contexts, pages

    async def new_context(self, spec: ContextSpec, pool_size: int = 0) -> PyppeteerContext:
        if not self.connected:
            raise BrowserUnavailable("The browser is not running; it is being restarted.")
        gate = spec.gate(self._policy)
        egress = await self._egress.open(gate)
        try:
            context = await asyncio.wait_for(self._new_browser_context(egress.url), 10)
        except (PyppeteerError, TimeoutError) as exc:
            await egress.close()
            await self._check_alive()
            raise BrowserUnavailable("The browser did not open a context.") from exc
        except BaseException:
            await egress.close()
            raise
        return PyppeteerContext(self, context, spec, gate, egress, pool_size=pool_size)

    async def _new_browser_context(self, proxy_url: str) -> Any:
        """pyppeteer's ``createIncognitoBrowserContext``, with the context's own proxy (which it cannot
        pass): the same CDP call and bookkeeping."""
        browser = self._browser
        created = await browser._connection.send(
            "Target.createBrowserContext", {"proxyServer": proxy_url, "proxyBypassList": "<-loopback>"}
        )
        context = BrowserContext(browser, created["browserContextId"])
        browser._contexts[created["browserContextId"]] = context
        return context

    async def _check_alive(self) -> None:
        """After a failed or cancelled call: a connection that no longer answers is a dead browser."""
        if self._browser is None or self._dead:
            return
        try:
            await asyncio.wait_for(self._browser.version(), 2)
        except (PyppeteerError, OSError, TimeoutError, TypeError, asyncio.InvalidStateError):
            self._lost()  # (pyppeteer answers None, hence the TypeError, on a closed connection)


_WarmPage = tuple[Any, asyncio.Event]
"""A prepared page, and the event its crash sets."""


class PyppeteerContext:
    """An incognito context; pyppeteer sets headers, cookies and emulation per page, so we do it here.
    Each capture gets a new page (a warm one from the context's pool)."""

    def __init__(
        self,
        engine: PyppeteerEngine,
        context: Any,
        spec: ContextSpec,
        gate: Gate,
        egress: EgressPort,
        *,
        pool_size: int = 0,
    ) -> None:
        self._engine = engine
        self._context = context
        self._spec = spec
        self._gate = gate
        self._egress = egress
        self._pool: PagePool[_WarmPage] | None = None
        if pool_size > 0:
            self._pool = PagePool(pool_size, self._open_page, _close_warm, _usable)

    async def capture(self, spec: CaptureSpec, deadline: Deadline) -> Shot:
        page: Any = None
        try:
            warm = self._pool.take() if self._pool is not None else None
            if warm is None:
                warm = await open_within(deadline, "open-page", self._open_page(), _close_warm)
            page, crashed = warm
            return await _unless_crashed(capture_page(_PyppeteerPage(page), spec, deadline), crashed)
        except PyppeteerError as exc:
            await self._engine._check_alive()
            raise _translate(exc, "capture") from exc
        except RenderTimeout:
            await self._engine._check_alive()
            raise
        finally:
            if page is not None:
                await _close_page(page)
            if self._pool is not None:
                self._pool.refill()

    @property
    def warm_pages(self) -> int:
        return len(self._pool) if self._pool is not None else 0

    async def _open_page(self) -> _WarmPage:
        """A new page with its crash listener, request interception and emulation: ready to navigate."""
        try:
            page = await self._context.newPage()
        except PyppeteerError as exc:
            await self._engine._check_alive()
            raise _translate(exc, "open-page") from exc
        crashed = asyncio.Event()
        # Without a listener, pyppeteer raises the crash inside its connection's reader and the whole
        # connection dies with one tab; with it, only this render fails.
        page.on("error", lambda _: crashed.set())
        try:
            await self._prepare(page)
        except PyppeteerError as exc:
            await _close_page(page)
            await self._engine._check_alive()
            raise _translate(exc, "open-page") from exc
        except BaseException:
            await _close_page(page)
            raise
        return page, crashed

    async def _prepare(self, page: Any) -> None:
        spec = self._spec
        # Every request (navigations, redirects, subresources) waits for the network policy's verdict.
        # pyppeteer's own interception uses a CDP method Chromium has removed, so the Fetch domain is
        # driven directly.
        page._client.on(
            "Fetch.requestPaused", lambda event: self._engine._spawn(self._intercept(page, event))
        )
        client = page._client
        steps = [
            client.send("Fetch.enable", {"patterns": [{"urlPattern": "*", "requestStage": "Request"}]}),
            page.setViewport({"width": spec.width, "height": spec.height, "deviceScaleFactor": spec.scale}),
            # Lets a page be captured without activating its target, so concurrent pages don't contend.
            client.send("Emulation.setFocusEmulationEnabled", {"enabled": True}),
        ]
        if spec.timezone:
            steps.append(client.send("Emulation.setTimezoneOverride", {"timezoneId": spec.timezone}))
        if spec.locale:
            steps.append(client.send("Emulation.setLocaleOverride", {"locale": spec.locale}))
        steps.extend(page.setCookie({"name": n, "value": v, "url": u}) for n, v, u in spec.cookies)
        # Independent settings of a page that has not navigated yet: sent at once, one round trip.
        await asyncio.gather(*steps)

    async def close(self) -> None:
        try:
            if self._pool is not None:
                await self._pool.close()
            await close_within("context", self._context.close(), *_GONE)
        finally:
            await self._egress.close()

    async def _intercept(self, page: Any, event: dict[str, Any]) -> None:
        main_frame_navigation = event.get("resourceType") == "Document" and event.get("frameId") == (
            page.mainFrame._id
        )
        url = event["request"]["url"] + event["request"].get("urlFragment", "")
        problem = await self._gate.problem(url, main_frame_navigation=main_frame_navigation)
        request_id = {"requestId": event["requestId"]}
        verdict: tuple[str, dict[str, Any]]
        if problem:
            verdict = ("Fetch.failRequest", {**request_id, "errorReason": "BlockedByClient"})
        elif not (headers := self._spec.headers):
            verdict = ("Fetch.continueRequest", request_id)
        else:  # the dashboard's headers go to its own origin only, redirect hops included
            sent = without_headers(event["request"]["headers"], headers)
            if self._gate.trusted(url):
                sent += [{"name": k, "value": v} for k, v in headers.items()]
            verdict = ("Fetch.continueRequest", {**request_id, "headers": sent})
        with contextlib.suppress(PyppeteerError, OSError):  # the page may be gone already
            await page._client.send(*verdict)


class _PyppeteerPage:
    """Page primitives; pyppeteer has no network-idle wait after navigation, so requests are counted."""

    def __init__(self, page: Any) -> None:
        self._page = page
        self.network = NetworkWatch.of(page, lambda request: request.resourceType)

    async def goto(self, url: str, until: str, timeout_ms: float) -> int | None:
        response = await self._page.goto(url, waitUntil=_UNTIL[until], timeout=timeout_ms)
        return None if response is None else int(response.status)

    async def wait_network_idle(self, timeout_ms: float) -> None:
        # Idle as Playwright means it: no request in flight for 500 ms. Bounded by the caller's deadline.
        while True:
            await self.network.idle(timeout_ms)
            if self.network.inflight == 0 and self.network.quiet_ms() >= 500:
                return
            if self.network.inflight == 0:
                started = self.network.started
                await asyncio.sleep(0.5 - self.network.quiet_ms() / 1000)
                if self.network.started == started:
                    return

    async def evaluate(self, expression: str, timeout_ms: float) -> Any:
        params = {"expression": expression, "awaitPromise": True, "returnByValue": True}
        try:
            async with asyncio.timeout(timeout_ms / 1000):
                return evaluated(await self._page._client.send("Runtime.evaluate", params))
        except TimeoutError:
            raise RenderTimeout("The page did not finish step 'auto' in time.", step="auto") from None
        except PyppeteerError as exc:
            if "context was destroyed" in str(exc) or "Cannot find context" in str(exc):
                return None  # it navigated: the caller starts again on the new document
            raise _translate(exc, "auto") from exc

    async def wait_selector(self, selector: str, timeout_ms: float) -> None:
        await self._page.waitForSelector(selector, visible=True, timeout=timeout_ms)

    async def wait_expression(self, expression: str, timeout_ms: float) -> None:
        await self._page.waitForFunction(expression, timeout=timeout_ms)

    async def screenshot(self, spec: CaptureSpec, timeout_ms: float) -> Shot:
        viewport = self._page.viewport or {}
        if (viewport.get("width"), viewport.get("height")) != (spec.width, spec.height):
            await self._page.setViewport({**viewport, "width": spec.width, "height": spec.height})
        options: dict[str, Any] = {"type": spec.format}
        if spec.format == "jpeg" and spec.quality is not None:
            options["quality"] = spec.quality
        if spec.selector:
            element = await self._page.querySelector(spec.selector)
            if element is None:
                raise no_element(spec.selector)
            capture = self._library_capture(element, options)
        elif spec.full_page:
            capture = self._library_capture(self._page, {**options, "fullPage": True})
        else:
            # The viewport straight from Chromium, as pyppeteer would take it less its target activation;
            # optimizeForSpeed: the same pixels, encoded faster into a larger file.
            params = {key: value for key, value in options.items() if key != "type"}
            capture = self._cdp_capture(params | {"format": spec.format, "optimizeForSpeed": True})
        boxes = None if spec.panels is None else cdp_boxes(self._page._client.send, spec)
        return await shot_with_boxes(capture, boxes)

    @staticmethod
    async def _library_capture(target: Any, options: dict[str, Any]) -> bytes:
        return bytes(await target.screenshot(options))

    async def _cdp_capture(self, params: dict[str, Any]) -> bytes:
        shot = await self._page._client.send("Page.captureScreenshot", params)
        return base64.b64decode(shot["data"])


def _translate(exc: PyppeteerError, step: str) -> Exception:
    if isinstance(exc, PyppeteerTimeout):
        return RenderTimeout(f"The page did not finish step '{step}' in time.", step=step)
    message = str(exc)
    for method, field in (("setLocaleOverride", "locale"), ("setTimezoneOverride", "timezone")):
        if method in message:  # Chromium refused a value our patterns let through
            return InvalidRequest(f"{field}: Chromium does not accept this value.", field=field)
    if "net::ERR_BLOCKED_BY_CLIENT" in message or "net::ERR_UNSAFE_REDIRECT" in message:
        return blocked(step)
    if match := re.search(r"net::ERR_[A-Z_]+", message):
        return RenderError(f"The page could not be loaded ({match.group()}).", step=step)
    if "closed" in message.lower() or "crash" in message.lower():
        return BrowserUnavailable("The browser or page went away during the render.")
    return RenderError("The browser failed during the render.", step=step)


_GONE = (PyppeteerError, OSError, asyncio.InvalidStateError)
"""What pyppeteer raises when closing something its browser took away already."""


async def _close_page(page: Any) -> None:
    await close_within("page", page.close(), *_GONE)


def _usable(warm: _WarmPage) -> bool:
    """A warm page is usable while it is open and its renderer has not crashed as it waited."""
    page, crashed = warm
    return not page.isClosed() and not crashed.is_set()


async def _close_warm(warm: _WarmPage) -> None:
    await _close_page(warm[0])


async def _unless_crashed(work: Coroutine[Any, Any, Shot], crashed: asyncio.Event) -> Shot:
    """``work``'s result, or :class:`PageCrashed` at once when the page's renderer dies under it."""
    task = await until_set(work, crashed)
    if crashed.is_set() and not succeeded(task):
        raise PageCrashed(
            "The page crashed (it may have run out of memory; see SCREENSHOT_PAGE_HEAP_MB).",
            step="capture",
        )
    return task.result()


async def _read_endpoint(stream: asyncio.StreamReader) -> str:
    while line := await stream.readline():
        if match := _DEVTOOLS_RE.search(line):
            return match.group(1).decode()
    raise EOFError("Chromium exited before it printed its DevTools address")


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


async def _stop_group(process: asyncio.subprocess.Process) -> None:
    """Terminate Chromium's whole process group, then kill what is left, and reap it."""
    for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            await asyncio.wait_for(process.wait(), wait_s)
        except TimeoutError:
            continue
        break
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # helpers that outlived the browser process


async def _websocket_url(http_url: str) -> str:
    """A remote Chromium's browser WebSocket URL, from its ``/json/version`` (pyppeteer's own lookup
    blocks the event loop)."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{http_url.rstrip('/')}/json/version")
        response.raise_for_status()
        url: str = response.json()["webSocketDebuggerUrl"]
    return url
