"""Chromium driven directly, with no service in between: the floor (one warm browser) and the
naive baseline (a browser launched for every capture), for each engine library."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
from playwright.async_api import async_playwright

from screenshot_service.browser.flags import CHROMIUM_ARGS

from .measure import Stats, in_turns


class Target(msgspec.Struct, kw_only=True, frozen=True):
    """A page as the service's dashboard for it is configured: URL, viewport, readiness, emulation."""

    dashboard: str
    url: str
    width: int = 1280
    height: int = 800
    selector: str | None = None
    timezone: str | None = None
    locale: str | None = None


Capture = Callable[[Target], Awaitable[bytes]]


@contextlib.asynccontextmanager
async def playwright_floor(chromium: str) -> AsyncIterator[Capture]:
    """One warm browser; every capture opens a page in a warm context of its target, as the service does."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=list(CHROMIUM_ARGS))
        contexts: dict[str, Any] = {}

        async def capture(target: Target) -> bytes:
            if target.dashboard not in contexts:
                contexts[target.dashboard] = await browser.new_context(
                    viewport={"width": target.width, "height": target.height},
                    timezone_id=target.timezone,
                    locale=target.locale,
                )
            page = await contexts[target.dashboard].new_page()
            try:
                await page.goto(target.url, wait_until="load")
                if target.selector:
                    await page.wait_for_selector(target.selector, state="visible")
                shot: bytes = await page.screenshot(type="png")
                return shot
            finally:
                await page.close()

        try:
            yield capture
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def playwright_baseline(chromium: str) -> AsyncIterator[Capture]:
    """What a simple bot does: launch Chromium, capture, quit; Playwright's driver itself stays up."""
    async with async_playwright() as pw:

        async def capture(target: Target) -> bytes:
            browser = await pw.chromium.launch(executable_path=chromium, args=list(CHROMIUM_ARGS))
            try:
                page = await browser.new_page(
                    viewport={"width": target.width, "height": target.height},
                    timezone_id=target.timezone,
                    locale=target.locale,
                )
                await page.goto(target.url, wait_until="load")
                if target.selector:
                    await page.wait_for_selector(target.selector, state="visible")
                return await page.screenshot(type="png")
            finally:
                await browser.close()

        yield capture


async def _pyppeteer_launch(chromium: str) -> Any:
    import pyppeteer  # noqa: PLC0415  (optional extra)

    args = [a for a in CHROMIUM_ARGS if not a.startswith("--headless")]
    return await pyppeteer.launch(
        executablePath=chromium,
        args=args,
        headless=True,
        handleSIGINT=False,
        handleSIGTERM=False,
        handleSIGHUP=False,
        defaultViewport=None,
    )


async def _pyppeteer_capture(browser_or_context: Any, target: Target) -> bytes:
    page = await browser_or_context.newPage()
    try:
        await page.setViewport({"width": target.width, "height": target.height})
        if target.timezone:
            await page._client.send("Emulation.setTimezoneOverride", {"timezoneId": target.timezone})
        if target.locale:
            await page._client.send("Emulation.setLocaleOverride", {"locale": target.locale})
        await page.goto(target.url, waitUntil="load")
        if target.selector:
            await page.waitForSelector(target.selector, visible=True)
        return bytes(await page.screenshot({"type": "png"}))
    finally:
        await page.close()


@contextlib.asynccontextmanager
async def pyppeteer_floor(chromium: str) -> AsyncIterator[Capture]:
    browser = await _pyppeteer_launch(chromium)
    contexts: dict[str, Any] = {}

    async def capture(target: Target) -> bytes:
        if target.dashboard not in contexts:
            contexts[target.dashboard] = await browser.createIncognitoBrowserContext()
        return await _pyppeteer_capture(contexts[target.dashboard], target)

    try:
        yield capture
    finally:
        await browser.close()


@contextlib.asynccontextmanager
async def pyppeteer_baseline(chromium: str) -> AsyncIterator[Capture]:
    async def capture(target: Target) -> bytes:
        browser = await _pyppeteer_launch(chromium)
        try:
            return await _pyppeteer_capture(browser, target)
        finally:
            await browser.close()

    yield capture


FLOORS = {"playwright": playwright_floor, "pyppeteer": pyppeteer_floor}
BASELINES = {"playwright": playwright_baseline, "pyppeteer": pyppeteer_baseline}


async def measure_baseline(engine: str, chromium: str, target: Target, *, count: int) -> Stats:
    """Launch-per-request captures of ``target``, one after the other."""
    async with BASELINES[engine](chromium) as capture:

        async def one() -> int:
            return len(await capture(target))

        return (await in_turns({"baseline": one}, count))["baseline"]
