"""Pages and contexts are closed on every path: success, failure, timeout, fresh-context renders.

Counts are read from the browser of the service under test (not from process-wide gauges, which every
app of a test run shares), and waited for until they settle: a cancelled render closes in its own time.
What stays open is exactly the shared contexts and their warm pages (``pool_size`` each).
"""

from __future__ import annotations

import httpx
import pytest

from .support.service import ServiceClient


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
async def test_nothing_left_open(service: ServiceClient, body: dict[str, object], status: int) -> None:
    # Warm the dashboard's shared context first, so only what this render opens is counted.
    await service.post("/v1/renders", json={"dashboard": body["dashboard"], "timeout_ms": 500})
    pool = service.app.state.supervisor.pool_size
    assert pool > 0  # the pool is on by default: its pages are counted below
    before = await service.idle_targets()
    assert before[1] == before[2] == before[0] * pool
    response = await service.post("/v1/renders", json=body)
    assert response.status_code == status, response.text
    # A fresh context is closed, a shared one reused, every rendered page closed; the pool refilled.
    assert await service.idle_targets() == before


async def test_cancelled_request_closes_its_page(service: ServiceClient) -> None:
    # The client gives up long before the page would time out: the render is cancelled server-side.
    with pytest.raises(httpx.ReadTimeout):
        await service.post("/v1/renders", json={"dashboard": "hang", "timeout_ms": 1400}, timeout=0.5)
    contexts, pages, warm = await service.idle_targets()
    assert pages == warm == contexts * service.app.state.supervisor.pool_size
