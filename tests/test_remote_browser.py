"""A remote browser: the service connects to a Chromium it did not launch, over its DevTools endpoint,
leaves it running when it stops, and reconnects when the connection drops."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .support.servers import closed_port
from .support.service import running_service, wait_until_ready

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


class ExternalChromium:
    """A Chromium started as another team's browser service would: headless, DevTools on 127.0.0.1."""

    def __init__(self, port: int, profile: str) -> None:
        self.port = port
        self.profile = profile
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                f"--remote-debugging-port={self.port}",
                "--remote-debugging-address=127.0.0.1",
                f"--user-data-dir={self.profile}",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so the test can stop all of it
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.alive():
                return
            time.sleep(0.1)
        raise AssertionError("the external Chromium did not open its DevTools endpoint")

    def alive(self) -> bool:
        """The process runs and its DevTools endpoint answers."""
        if self.process is None or self.process.poll() is not None:
            return False
        try:
            return httpx.get(f"{self.http_url}/json/version", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def ws_url(self) -> str:
        url: str = httpx.get(f"{self.http_url}/json/version", timeout=5).json()["webSocketDebuggerUrl"]
        return url

    def pages(self) -> list[str]:
        """URLs of the page targets open in the browser."""
        targets = httpx.get(f"{self.http_url}/json/list", timeout=5).json()
        return [t["url"] for t in targets if t["type"] == "page"]

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@pytest.fixture
def chromium() -> Iterator[ExternalChromium]:
    with tempfile.TemporaryDirectory(prefix="external-chromium-") as profile:
        browser = ExternalChromium(closed_port(), profile)
        browser.start()
        try:
            yield browser
        finally:
            browser.stop()


@pytest.mark.parametrize(
    ("engine", "endpoint"),
    [
        pytest.param("playwright", "http", id="playwright-http"),
        pytest.param("playwright", "ws", id="playwright-ws"),
        pytest.param("pyppeteer", "http", id="pyppeteer-http", marks=pytest.mark.pyppeteer),
    ],
)
async def test_renders_in_a_remote_chromium_and_leaves_it_running(
    chromium: ExternalChromium, dashboards_file: Path, engine: str, endpoint: str
) -> None:
    if engine == "pyppeteer":
        pytest.importorskip("pyppeteer", reason="the [pyppeteer] extra is not installed")
    url = chromium.http_url if endpoint == "http" else chromium.ws_url()
    # The launch path leads nowhere: a render can only succeed in the external browser.
    env = {
        "engine": engine,
        "browser_ws_endpoint": url,
        "dashboards_file": str(dashboards_file),
        "chromium_path": "/nonexistent",
    }
    async with running_service(env) as client:
        ready = await wait_until_ready(client)
        assert ready.status_code == 200, ready.text
        response = await client.post("/v1/renders", json={"dashboard": "sales", "params": {"range": "7d"}})
        assert response.status_code == 200, response.text
        assert response.content.startswith(b"\x89PNG")
        assert chromium.pages() == ["about:blank"], "each render's page is closed after it"
    assert chromium.alive(), "stopping the service must not stop a browser it did not launch"
    assert chromium.pages() == ["about:blank"], (
        "the service's contexts and pages are closed, the browser's own kept"
    )


async def test_reconnects_when_the_remote_browser_comes_back(
    chromium: ExternalChromium, dashboards_file: Path
) -> None:
    env = {
        "browser_ws_endpoint": chromium.http_url,
        "dashboards_file": str(dashboards_file),
        "chromium_path": "/nonexistent",
    }
    async with running_service(env) as client:
        assert (await client.post("/v1/renders", json={"dashboard": "box"})).status_code == 200
        chromium.stop()  # the connection drops with the browser (stop waits for the process to end)
        down = await client.get("/readyz")
        assert down.status_code == 503
        assert (await client.post("/v1/renders", json={"dashboard": "box"})).status_code == 503
        await asyncio.to_thread(chromium.start)  # the browser service brings it back on the same port
        # Readiness probes reconnect, as Kubernetes would keep probing; no render is needed for it.
        ready = await wait_until_ready(client)
        assert ready.status_code == 200, ready.text
        response = await client.post("/v1/renders", json={"dashboard": "box"})
        assert response.status_code == 200, response.text
