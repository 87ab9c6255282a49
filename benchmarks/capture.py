"""What each capture-path change buys, old and new interleaved in one browser so load drifts alike.

    python -m benchmarks.capture [--rounds 20]

Per page: the CDP set-up of a page (three calls one after another, or at once) and the viewport
capture (Playwright's screenshot, which prepares, measures, captures and restores the page; or the
service's preparation script and one ``Page.captureScreenshot``, with and without ``optimizeForSpeed``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, CDPSession, Page, async_playwright

from screenshot_service.browser.flags import CHROMIUM_ARGS
from screenshot_service.browser.playwright import _PREPARE_CAPTURE

from . import procs
from .pages import write_pages

FETCH = {"patterns": [{"urlPattern": "*", "requestStage": "Request"}]}
FOCUS = {"enabled": True}


async def setup_sequential(session: CDPSession) -> None:
    await session.send("Page.getFrameTree")
    await session.send("Fetch.enable", FETCH)
    await session.send("Emulation.setFocusEmulationEnabled", FOCUS)


async def setup_gathered(session: CDPSession) -> None:
    await asyncio.gather(
        session.send("Page.getFrameTree"),
        session.send("Fetch.enable", FETCH),
        session.send("Emulation.setFocusEmulationEnabled", FOCUS),
    )


async def shot_playwright(page: Page, session: CDPSession) -> bytes:
    return await page.screenshot(type="png", animations="disabled")


async def _shot_cdp(session: CDPSession, fast: bool) -> bytes:
    view = (await session.send("Runtime.evaluate", {"expression": _PREPARE_CAPTURE, "awaitPromise": True,
                                                     "returnByValue": True}))["result"]["value"]  # fmt: skip
    clip = {"x": view["x"], "y": view["y"], "width": 1280, "height": 800, "scale": 1}
    params: dict[str, Any] = {"format": "png", "clip": clip}
    if fast:
        params["optimizeForSpeed"] = True
    return base64.b64decode((await session.send("Page.captureScreenshot", params))["data"])


async def shot_cdp(page: Page, session: CDPSession) -> bytes:
    return await _shot_cdp(session, fast=False)


async def shot_cdp_fast(page: Page, session: CDPSession) -> bytes:
    return await _shot_cdp(session, fast=True)


Setup = Callable[[CDPSession], Awaitable[None]]
Shot = Callable[[Page, CDPSession], Awaitable[bytes]]
SETUPS: dict[str, Setup] = {"setup: 3 calls in turn (before)": setup_sequential,
                            "setup: 3 calls at once (after)": setup_gathered}  # fmt: skip
SHOTS: dict[str, Shot] = {
    "capture: Playwright screenshot (before)": shot_playwright,
    "capture: script + CDP, default encoder": shot_cdp,
    "capture: script + CDP, optimizeForSpeed (after)": shot_cdp_fast,
}


async def one(context: BrowserContext, url: str, setup: Setup, shot: Shot) -> tuple[float, float, int]:
    page = await context.new_page()
    try:
        session = await context.new_cdp_session(page)

        async def go_on(event: dict[str, Any]) -> None:
            await session.send("Fetch.continueRequest", {"requestId": event["requestId"]})

        session.on("Fetch.requestPaused", go_on)
        t0 = time.perf_counter()
        await setup(session)
        t1 = time.perf_counter()
        await page.goto(url, wait_until="load")
        await page.wait_for_selector("body")
        t2 = time.perf_counter()
        data = await shot(page, session)
        t3 = time.perf_counter()
        return (t1 - t0) * 1000, (t3 - t2) * 1000, len(data)
    finally:
        await page.close()


async def run(rounds: int, chromium: str) -> None:
    with tempfile.TemporaryDirectory(prefix="capture-bench-") as tmp:
        write_pages(Path(tmp))
        port = procs.free_port()
        with procs.file_server(Path(tmp), port, Path(tmp) / "pages.log") as server:
            procs.wait_http(f"http://127.0.0.1:{port}/static.html", server)
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=chromium, args=list(CHROMIUM_ARGS))
                context = await browser.new_context(viewport={"width": 1280, "height": 800})
                for page_name in ("static", "heavy"):
                    url = f"http://127.0.0.1:{port}/{page_name}.html"
                    setups: dict[str, list[float]] = {name: [] for name in SETUPS}
                    shots: dict[str, list[tuple[float, int]]] = {name: [] for name in SHOTS}
                    setup_names = list(SETUPS)
                    for i in range(rounds):
                        for j, (shot_name, shot) in enumerate(SHOTS.items()):
                            setup_name = setup_names[(i + j) % len(setup_names)]
                            setup = SETUPS[setup_name]
                            setup_ms, shot_ms, size = await one(context, url, setup, shot)
                            setups[setup_name].append(setup_ms)
                            shots[shot_name].append((shot_ms, size))
                    print(f"\n{page_name} page, 1280x800, {rounds} rounds, medians:")
                    for name, values in setups.items():
                        print(f"  {name:<52}{statistics.median(values):8.1f} ms")
                    for name, pairs in shots.items():
                        ms = statistics.median(p[0] for p in pairs)
                        kb = statistics.median(p[1] for p in pairs) / 1024
                        print(f"  {name:<52}{ms:8.1f} ms {kb:7.0f} KB")
                await browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.capture", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    asyncio.run(run(args.rounds, args.chromium))
    return 0


if __name__ == "__main__":
    sys.exit(main())
