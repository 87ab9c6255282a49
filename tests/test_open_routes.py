"""What anyone may ask without an API key: probes that stay cheap, CORS that stays off, no demo in
production, and OPTIONS answered cleanly whatever the per-key limit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from .support.metrics import Metrics
from .support.problems import assert_problem
from .support.service import running_service

READY_CHECKS = "screenshot_ready_checks_total"


async def test_an_anonymous_readiness_flood_costs_one_render(dashboards_file: Path) -> None:
    """However many callers ask /readyz, the browser renders its blank page once per cache period."""
    env = {"dashboards_file": str(dashboards_file), "ready_cache_s": "300"}
    async with (
        running_service(env) as service,
        httpx.AsyncClient(base_url=str(service.base_url), timeout=60) as anonymous,
    ):
        before = (await Metrics.read(service)).value(READY_CHECKS)
        together = await asyncio.gather(*(anonymous.get("/readyz") for _ in range(40)))
        one_by_one = [await anonymous.get("/readyz") for _ in range(40)]
        after = (await Metrics.read(service)).value(READY_CHECKS)
    assert {r.status_code for r in [*together, *one_by_one]} == {200}
    assert after - before == 1


@pytest.mark.parametrize("path", ["/demo/sales", "/demo/api/revenue"])
async def test_a_configured_service_serves_no_demo(service: httpx.AsyncClient, path: str) -> None:
    assert_problem(await service.get(path), 404, "not-found")


async def test_the_demo_is_served_without_a_dashboards_file() -> None:
    """The other side of the test above: the demo routes exist, only where there is a demo."""
    async with running_service() as demo:
        assert (await demo.get("/demo/sales")).status_code == 200


@pytest.mark.parametrize("limit", ["60/minute", "off"])
@pytest.mark.parametrize("path", ["/v1/renders", "/v1/media", "/v1/dashboards", "/v1/nothing-here"])
async def test_options_is_answered_without_cors(limit: str, path: str) -> None:
    """OPTIONS (a CORS preflight, say) never reaches a handler, needs no key, and is never a 5xx;
    CORS is off, so no Access-Control-* header says a browser page may call the API."""
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    async with (
        running_service({"rate_limit_per_key": limit}) as service,
        httpx.AsyncClient(base_url=str(service.base_url)) as anonymous,
    ):
        responses = [await anonymous.options(path, headers=preflight) for _ in range(3)]
    for response in responses:
        if path == "/v1/nothing-here":
            assert_problem(response, 404, "not-found")
        else:
            assert response.status_code == 204, response.text
            assert "OPTIONS" in response.headers["allow"]
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]
