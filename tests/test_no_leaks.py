"""Pages and contexts are closed on every path: success, failure, timeout, fresh-context renders."""

from __future__ import annotations

import asyncio

import httpx
import pytest


def gauge(metrics_text: str, name: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


async def open_targets(service: httpx.AsyncClient) -> tuple[float, float]:
    text = (await service.get("/metrics")).text
    return gauge(text, "screenshot_browser_contexts_open"), gauge(text, "screenshot_browser_pages_open")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param({"dashboard": "box"}, 200, id="success"),
        pytest.param({"dashboard": "broken"}, 502, id="page-error"),
        pytest.param({"dashboard": "never-ready"}, 504, id="selector-timeout"),
        pytest.param({"dashboard": "hang"}, 504, id="navigation-timeout"),
        pytest.param({"dashboard": "box", "viewport": {"scale": 2}}, 200, id="fresh-context-success"),
        pytest.param(
            {"dashboard": "never-ready", "timezone": "Europe/Berlin"}, 504, id="fresh-context-timeout"
        ),
    ],
)
async def test_nothing_left_open(service: httpx.AsyncClient, body: dict[str, object], status: int) -> None:
    # Warm the dashboard's shared context first, so only what this render opens is counted.
    await service.post("/v1/renders", json={"dashboard": body["dashboard"], "timeout_ms": 500})
    contexts_before, _ = await open_targets(service)
    response = await service.post("/v1/renders", json=body)
    assert response.status_code == status, response.text
    contexts_after, pages_after = await open_targets(service)
    assert pages_after == 0
    assert contexts_after == contexts_before  # a fresh context is closed; a shared one is reused


async def test_cancelled_request_closes_its_page(service: httpx.AsyncClient) -> None:
    # The client gives up long before the page would time out: the render is cancelled server-side.
    with pytest.raises(httpx.ReadTimeout):
        await service.post("/v1/renders", json={"dashboard": "hang", "timeout_ms": 1400}, timeout=0.5)
    # uvicorn cancels the handler when the client goes; by the render deadline everything is closed.
    for _ in range(40):
        if (await open_targets(service))[1] == 0:
            break
        await asyncio.sleep(0.1)
    assert (await open_targets(service))[1] == 0
