"""What the egress proxy costs: a page loaded and captured in a context that goes through the service's
egress proxy and in one that does not, interleaved in one browser so load drifts alike.

    python -m benchmarks.egress [--rounds 30]

Each round opens a page in each context (order alternating), navigates to the benchmark page (static or
heavy, served on 127.0.0.1), waits for load and captures the viewport. The proxied context's gate
trusts the page server's origin, as a configured dashboard's is.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from playwright.async_api import BrowserContext, async_playwright

from screenshot_service.browser.flags import CHROMIUM_ARGS
from screenshot_service.guard.egress import EgressProxy
from screenshot_service.guard.netpolicy import Gate, NetPolicy

from . import procs
from .pages import write_pages


async def one(context: BrowserContext, url: str) -> float:
    page = await context.new_page()
    try:
        started = time.perf_counter()
        await page.goto(url, wait_until="load")
        await page.screenshot(type="png")
        return (time.perf_counter() - started) * 1000
    finally:
        await page.close()


async def run(rounds: int, chromium: str) -> None:
    with tempfile.TemporaryDirectory(prefix="egress-bench-") as tmp:
        write_pages(Path(tmp))
        port = procs.free_port()
        origin = f"http://127.0.0.1:{port}"
        with procs.file_server(Path(tmp), port, Path(tmp) / "pages.log") as server:
            procs.wait_http(f"{origin}/static.html", server)
            proxy = EgressProxy()
            gate = Gate(NetPolicy(), trusted_origin=origin, allowlisted_navigation=False)
            proxied_port = await proxy.open(gate)
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=chromium, args=list(CHROMIUM_ARGS))
                viewport = {"width": 1280, "height": 800}
                contexts = {
                    "direct": await browser.new_context(viewport=viewport),  # type: ignore[arg-type]
                    "egress proxy": await browser.new_context(
                        viewport=viewport,  # type: ignore[arg-type]
                        proxy={"server": proxied_port.url},
                    ),
                }
                for page_name in ("static", "heavy"):
                    url = f"{origin}/{page_name}.html"
                    times: dict[str, list[float]] = {name: [] for name in contexts}
                    names = list(contexts)
                    for i in range(rounds + 2):
                        for name in names[i % 2 :] + names[: i % 2]:
                            elapsed = await one(contexts[name], url)
                            if i >= 2:  # two warm-up rounds: caches and the first connections
                                times[name].append(elapsed)
                    direct = statistics.median(times["direct"])
                    proxied = statistics.median(times["egress proxy"])
                    print(f"\n{page_name} page, 1280x800, {rounds} rounds, load + capture medians:")
                    print(f"  direct         {direct:8.1f} ms")
                    print(f"  egress proxy   {proxied:8.1f} ms   ({proxied / direct:.2f}x direct)")
                await browser.close()
            await proxy.close()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.egress", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    asyncio.run(run(args.rounds, args.chromium))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
