"""Encoders side by side on the 1280x16000 page of issue 17: Pillow, pyvips (if installed), Chromium.

    python -m benchmarks.encode [--rounds 3] [--noise 112] [--busy 13]

For the tall demo page (its PNG over 5 MB): Chromium's own PNG and JPEG captures; decoding the PNG and
encoding a full-size JPEG (q85) with Pillow and with libvips; the service's fitting (``fit_image``:
one full encode, then the predicted scale) and splitting (``split_image``: parts between panels). The
medians of ``--rounds`` runs, with the load average, since the machine is shared. ``--busy N`` runs N
busy loops of its own while the encoders are timed (the capture is taken before), for the figures
under load that the encode deadline must hold: 13 on top of a quiet 2-core machine is a load of ~15.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib
import io
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from PIL import Image
from playwright.async_api import async_playwright

from screenshot_service.browser.capture import BOXES_LIMIT, BOXES_SCRIPT, PageBoxes, read_boxes
from screenshot_service.dashboards.config import DEFAULT_PANELS
from screenshot_service.dev.demo import TALL_PAGE
from screenshot_service.whatsapp import imaging
from screenshot_service.whatsapp.parts import split_image

WIDTH, HEIGHT = 1280, 16000
QUALITY = imaging.FIT_QUALITY


def timed(call: Callable[[], Any], rounds: int) -> tuple[float, Any]:
    """Median milliseconds of ``rounds`` calls, and the last call's result."""
    times, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


async def chromium_captures(rounds: int, noise: int) -> tuple[dict[str, tuple[float, int]], bytes, PageBoxes]:
    """Chromium's full-page PNG and JPEG (CDP ``Page.captureScreenshot``), and the page's boxes."""
    page_html = TALL_PAGE.replace('get("noise") ?? 112', f'get("noise") ?? {noise}')
    out: dict[str, tuple[float, int]] = {}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium")
        )
        try:
            page = await browser.new_page(viewport={"width": WIDTH, "height": 800})
            await page.set_content(page_html)
            session = await page.context.new_cdp_session(page)
            clip = {"x": 0, "y": 0, "width": WIDTH, "height": HEIGHT, "scale": 1}
            png = b""
            for fmt, extra in (("png", {"optimizeForSpeed": True}), ("jpeg", {"quality": QUALITY})):
                times = []
                for _ in range(rounds):
                    started = time.perf_counter()
                    shot = await session.send(
                        "Page.captureScreenshot",
                        {"format": fmt, "clip": clip, "captureBeyondViewport": True, **extra},
                    )
                    data = base64.b64decode(shot["data"])
                    times.append((time.perf_counter() - started) * 1000)
                out[f"chromium {fmt}" + (f" q{QUALITY}" if fmt == "jpeg" else " (optimizeForSpeed)")] = (
                    statistics.median(times),
                    len(data),
                )
                if fmt == "png":
                    png = data
            found = await page.evaluate(BOXES_SCRIPT, [DEFAULT_PANELS, None, True, BOXES_LIMIT])
        finally:
            await browser.close()
    boxes = read_boxes(found)
    assert boxes is not None
    return out, png, boxes


def pillow(png: bytes, rounds: int) -> dict[str, tuple[float, int]]:
    decode_ms, rgb = timed(lambda: imaging.flatten(Image.open(io.BytesIO(png))), rounds)
    encode_ms, jpeg = timed(lambda: imaging._jpeg(rgb, QUALITY), rounds)
    return {"pillow decode png": (decode_ms, 0), f"pillow jpeg q{QUALITY} full size": (encode_ms, len(jpeg))}


def vips(png: bytes, rounds: int) -> dict[str, tuple[float, int]]:
    try:
        pyvips: Any = importlib.import_module("pyvips")  # optional: libvips from apt, pyvips from PyPI
    except (ImportError, OSError):
        return {}

    def decoded() -> Any:
        image = pyvips.Image.new_from_buffer(png, "", access="sequential")
        return image.flatten(background=[255, 255, 255]) if image.hasalpha() else image

    decode_ms, image = timed(lambda: decoded().copy_memory(), rounds)
    encode_ms, jpeg = timed(lambda: image.jpegsave_buffer(Q=QUALITY), rounds)
    both_ms, _ = timed(lambda: decoded().jpegsave_buffer(Q=QUALITY), rounds)
    return {
        "vips decode png": (decode_ms, 0),
        f"vips jpeg q{QUALITY} full size": (encode_ms, len(jpeg)),
        f"vips png -> jpeg q{QUALITY} streamed": (both_ms, len(jpeg)),
    }


def service(png: bytes, boxes: PageBoxes, rounds: int) -> dict[str, tuple[float, int]]:
    fit_ms, fitted = timed(lambda: imaging.fit_image(png, "png"), rounds)
    split_ms, parts = timed(lambda: split_image(png, "png", boxes, 1.0), rounds)
    largest = max(len(p.image.data) for p in parts)
    return {
        f"fit_image ({fitted.encodes} encodes, {fitted.width}x{fitted.height})": (fit_ms, len(fitted.data)),
        f"split_image ({len(parts)} parts, largest shown)": (split_ms, largest),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--noise", type=int, default=112, help="the page's texture, 0-255 (112: PNG ~16 MB)")
    parser.add_argument("--busy", type=int, default=0, help="busy loops run while the encoders are timed")
    args = parser.parse_args(argv)
    captures, png, boxes = asyncio.run(chromium_captures(args.rounds, args.noise))
    results = {**captures, "chromium png bytes": (0.0, len(png))}
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        if busy:
            time.sleep(60)  # the load average is a one-minute mean: let it climb before timing
        load_before = os.getloadavg()
        results |= pillow(png, args.rounds) | vips(png, args.rounds) | service(png, boxes, args.rounds)
        load_after = os.getloadavg()
    finally:
        for loop in busy:
            loop.terminate()
            loop.wait()
    print(f"{WIDTH}x{HEIGHT} page, PNG {len(png):,} bytes; median of {args.rounds}; {args.busy} busy loops;")
    print(f"load average {load_before[0]:.2f} before encoding, {load_after[0]:.2f} after")
    for name, (ms, size) in results.items():
        print(f"  {name:<48} {ms:8.0f} ms  {size:>12,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
