"""Light when idle: the service's memory after its browser is released, and the first render after.

    python -m benchmarks.idle [--rounds 5] [--release-s 5] [--engine playwright]

Starts the service (a real process) with a short ``SCREENSHOT_BROWSER_IDLE_RELEASE_S``, renders the
static page warm, then in each round waits for the release (``screenshot_browser_released``), measures
the PSS of the service's process tree, and times the next render (which launches a browser again)
beside warm renders right after it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from . import procs
from .pages import write_pages
from .run import META_TOKEN, PHONE_NUMBER_ID, PRIMARY, Service, dashboards_toml


def tree_pss_mb(root: int) -> float:
    """Proportional set size of ``root`` and its descendants: shared pages split among their users."""
    total_kb = 0
    for pid in procs.tree_pids(root):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
                    break
    return round(total_kb / 1024, 1)


async def render_ms(client: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    response = await client.post("/v1/renders", json={"dashboard": PRIMARY})
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000


async def released(client: httpx.AsyncClient, timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        metrics = (await client.get("/metrics")).text
        if "\nscreenshot_browser_released 1.0" in metrics:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("the browser was not released")


async def measure(args: argparse.Namespace, work: Path) -> None:
    pages_port, meta_port = procs.free_port(), procs.free_port()
    pages = f"http://127.0.0.1:{pages_port}"
    site = work / "site"
    site.mkdir()
    write_pages(site)
    (work / "dashboards.toml").write_text(dashboards_toml(pages), encoding="utf-8")
    with (
        procs.file_server(site, pages_port, work / "pages.log") as files,
        procs.emulator(meta_port, META_TOKEN, PHONE_NUMBER_ID, work / "meta.log") as meta,
    ):
        procs.wait_http(f"{pages}/static.html", files)
        procs.wait_http(f"http://127.0.0.1:{meta_port}/_emulator/uploads", meta)
        service = Service(args, work, args.engine, f"http://127.0.0.1:{meta_port}")
        service.env["SCREENSHOT_BROWSER_IDLE_RELEASE_S"] = str(args.release_s)
        proc, _ = await service.start()
        try:
            async with service.client() as client:
                for _ in range(3):
                    await render_ms(client)
                busy_pss = tree_pss_mb(proc.pid)
                cold, warm, idle = [], [], []
                for _ in range(args.rounds):
                    await released(client, args.release_s + 30)
                    await asyncio.sleep(1)  # the released browser's processes reaped
                    idle.append(tree_pss_mb(proc.pid))
                    cold.append(await render_ms(client))
                    warm.extend([await render_ms(client) for _ in range(3)])
        finally:
            procs.stop(proc)
    cold_p50, warm_p50 = statistics.median(cold), statistics.median(warm)
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"engine {args.engine}, {args.rounds} rounds, release after {args.release_s} s, load {load}")
    print(f"PSS of the service's tree: warm {busy_pss} MB, released {statistics.median(idle)} MB")
    print(f"first render after release p50 {cold_p50:.1f} ms, warm p50 {warm_p50:.1f} ms")
    print(f"ratio {cold_p50 / warm_p50:.2f} (cold {sorted(round(c) for c in cold)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.idle", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--release-s", type=float, default=5)
    parser.add_argument("--engine", default="playwright")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as work:
        asyncio.run(measure(args, Path(work)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
