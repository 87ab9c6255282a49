"""A remote browser: the service connects to a Chromium it did not launch, over its DevTools endpoint,
leaves it running when it stops, and reconnects when the connection drops."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from .support.browsers import ExternalChromium
from .support.service import running_service, wait_until_ready


@pytest.mark.parametrize(
    ("engine", "endpoint"),
    [
        pytest.param("playwright", "http", id="playwright-http"),
        pytest.param("playwright", "ws", id="playwright-ws"),
        pytest.param("pyppeteer", "http", id="pyppeteer-http", marks=pytest.mark.pyppeteer),
    ],
)
async def test_renders_in_a_remote_chromium_and_leaves_it_running(
    remote_chromium: ExternalChromium, dashboards_file: Path, engine: str, endpoint: str
) -> None:
    if engine == "pyppeteer":
        pytest.importorskip("pyppeteer", reason="the [pyppeteer] extra is not installed")
    url = remote_chromium.http_url if endpoint == "http" else remote_chromium.ws_url()
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
        # Each render's page is closed after it; the dashboard context's warm pages wait, blank.
        _, _, warm = await client.idle_targets()
        assert warm == client.app.state.supervisor.pool_size
        assert remote_chromium.pages() == ["about:blank"] * (1 + warm), "each render's page is closed"
    assert remote_chromium.alive(), "stopping the service must not stop a browser it did not launch"
    assert remote_chromium.pages() == ["about:blank"], (
        "the service's contexts and pages are closed, the browser's own kept"
    )


async def test_reconnects_when_the_remote_browser_comes_back(
    remote_chromium: ExternalChromium, dashboards_file: Path
) -> None:
    env = {
        "browser_ws_endpoint": remote_chromium.http_url,
        "dashboards_file": str(dashboards_file),
        "chromium_path": "/nonexistent",
    }
    async with running_service(env) as client:
        assert (await client.post("/v1/renders", json={"dashboard": "box"})).status_code == 200
        remote_chromium.stop()  # the connection drops with the browser (stop waits for the process to end)
        down = await client.get("/readyz")
        assert down.status_code == 503
        assert (await client.post("/v1/renders", json={"dashboard": "box"})).status_code == 503
        await asyncio.to_thread(remote_chromium.start)  # the browser service brings it back on the same port
        # Readiness probes reconnect, as Kubernetes would keep probing; no render is needed for it.
        ready = await wait_until_ready(client)
        assert ready.status_code == 200, ready.text
        response = await client.post("/v1/renders", json={"dashboard": "box"})
        assert response.status_code == 200, response.text
