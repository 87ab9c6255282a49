"""What automatic readiness costs on a page that is already still: the static benchmark page captured
through the service's own capture code with ``auto`` (the default) and with no wait (``until =
"load"`` only), in rotating turns in one browser, so load drifts alike.

    python -m benchmarks.readiness [--rounds 20] [--engines playwright,pyppeteer]

The difference is the price of knowing the page is still: one quiet window (500 ms) counted from the
page's last network event, so a page still during its load pays less than the whole window.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
from pathlib import Path

from screenshot_service.browser.capture import CaptureSpec, ContextSpec, Deadline, Wait, create_engine
from screenshot_service.settings import load_settings

from . import procs
from .measure import Sample, Stats, in_turns
from .pages import write_pages

WAITS = {"no wait (load)": Wait(until="load"), "auto": Wait()}


async def measure(engine_name: str, rounds: int, chromium: str, origin: str) -> dict[str, Stats]:
    settings = load_settings({
        "SCREENSHOT_API_KEYS": f"bench:bench-{secrets.token_hex(16)}",
        "SCREENSHOT_ENGINE": engine_name,
        "SCREENSHOT_CHROMIUM_PATH": chromium,
    })  # fmt: skip
    engine = create_engine(settings, lambda: None)
    await engine.start()
    try:
        context = await engine.new_context(
            ContextSpec(width=1280, height=800, scale=1, trusted_origin=origin)
        )
        try:

            def sample(wait: Wait) -> Sample:
                spec = CaptureSpec(url=f"{origin}/static.html", width=1280, height=800, wait=wait)

                async def capture() -> int | None:
                    shot = await context.capture(spec, Deadline(20_000))
                    return len(shot.data) if shot.readiness.state == "ready" else None

                return capture

            series = {name: sample(wait) for name, wait in WAITS.items()}
            await in_turns(series, 2)  # warm-up: caches and the first connections
            return await in_turns(series, rounds)
        finally:
            await context.close()
    finally:
        await engine.close()


async def run(rounds: int, chromium: str, engines: list[str]) -> dict[str, dict[str, Stats]]:
    """Static-page captures with and without auto readiness, per engine; printed as a ratio."""
    results: dict[str, dict[str, Stats]] = {}
    with tempfile.TemporaryDirectory(prefix="readiness-bench-") as tmp:
        write_pages(Path(tmp))
        port = procs.free_port()
        origin = f"http://127.0.0.1:{port}"
        with procs.file_server(Path(tmp), port, Path(tmp) / "pages.log") as server:
            procs.wait_http(f"{origin}/static.html", server)
            for engine in engines:
                stats = results[engine] = await measure(engine, rounds, chromium, origin)
                plain, auto = stats["no wait (load)"], stats["auto"]
                print(f"\nreadiness on the static page ({engine}), {rounds} rounds in turns, capture p50:")
                print(f"  no wait (load)  {plain.p50_ms:8.1f} ms")
                ratio, extra = auto.p50_ms / plain.p50_ms, auto.p50_ms - plain.p50_ms
                errors = plain.errors + auto.errors
                print(f"  auto            {auto.p50_ms:8.1f} ms   ({ratio:.2f}x no wait, +{extra:.0f} ms)")
                print(f"  errors          {errors}")
    return results


def bench(engines: list[str], chromium: str, *, quick: bool) -> dict[str, dict[str, Stats]]:
    """``make bench``'s part: 20 rounds per engine (2 with ``--quick``)."""
    return asyncio.run(run(2 if quick else 20, chromium, engines))


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.readiness", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--engines", default="playwright,pyppeteer")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    asyncio.run(run(args.rounds, args.chromium, [e for e in args.engines.split(",") if e]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
