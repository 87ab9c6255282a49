"""SIGTERM on the real process: it stops accepting, lets the render in flight finish, closes Chromium,
empties its temp directory and exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from screenshot_service.browser import processes as procs

from .support import browsers
from .support.servers import closed_port
from .support.service import API_KEY


async def wait_up(base: str, timeout_s: float = 60) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        for _ in range(int(timeout_s * 10)):
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{base} did not get ready")


async def test_sigterm_drains_the_render_in_flight_and_exits_0(pages_url: str, tmp_path: Path) -> None:
    dashboards = tmp_path / "dashboards.toml"
    dashboards.write_text(
        f'[dashboards.slow]\nurl = "{pages_url}/box"\nwait = {{ delay_ms = 2500 }}\n', encoding="utf-8"
    )
    temp_dir = tmp_path / "images"
    port = closed_port()
    env = {
        **os.environ,
        "SCREENSHOT_API_KEYS": f"tests:{API_KEY}",
        "SCREENSHOT_HOST": "127.0.0.1",
        "SCREENSHOT_PORT": str(port),
        "SCREENSHOT_DASHBOARDS_FILE": str(dashboards),
        "SCREENSHOT_TEMP_DIR": str(temp_dir),
        "SCREENSHOT_DRAIN_TIMEOUT_S": "20",
        "SCREENSHOT_RATE_LIMIT_PER_KEY": "off",
        "SCREENSHOT_RATE_LIMIT_PER_PHONE": "off",
    }
    base = f"http://127.0.0.1:{port}"
    service = subprocess.Popen(  # noqa: ASYNC220  (polled below without blocking the loop)
        [sys.executable, "-m", "screenshot_service", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await wait_up(base)
        [leader] = browsers.browser_leaders(service.pid)
        chromium_before = browsers.count(service.pid)
        async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": API_KEY}, timeout=60) as client:
            render = asyncio.create_task(client.post("/v1/renders", json={"dashboard": "slow"}))
            await asyncio.sleep(1.0)  # the render is waiting out its delay
            service.send_signal(signal.SIGTERM)
            response = await render
            with pytest.raises(httpx.TransportError):  # no longer accepting
                await client.get("/healthz")
        for _ in range(300):
            if service.poll() is not None:
                break
            await asyncio.sleep(0.1)
        exit_code = service.poll()
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert exit_code == 0
    assert procs.group(leader) == []  # no Chromium left behind, nor its helpers
    assert list(temp_dir.iterdir()) == []
    print(f"\nSIGTERM: chromium processes before {chromium_before}, after exit {len(procs.group(leader))}")
