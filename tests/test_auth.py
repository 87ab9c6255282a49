"""API keys on /v1/*: X-API-Key or bearer, compared in constant time; probes and metrics stay open."""

from __future__ import annotations

import httpx
import pytest

from .support.metrics import Metrics
from .support.problems import assert_problem
from .support.service import API_KEY, OTHER_KEY


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-key"),
        pytest.param({"X-API-Key": "wrong-key-0123456789abcdef"}, id="wrong-key"),
        pytest.param({"X-API-Key": API_KEY[:-1]}, id="prefix-of-key"),
        pytest.param({"X-API-Key": API_KEY + "x"}, id="key-plus-one"),
        pytest.param({"Authorization": f"Basic {API_KEY}"}, id="wrong-scheme"),
        pytest.param({"Authorization": "Bearer"}, id="empty-bearer"),
    ],
)
@pytest.mark.parametrize("route", ["/v1/renders", "/v1/dashboards"])
async def test_missing_or_wrong_key_is_401(
    service: httpx.AsyncClient, headers: dict[str, str], route: str
) -> None:
    async with httpx.AsyncClient(base_url=str(service.base_url), headers=headers) as anonymous:
        response = await (anonymous.post(route, json={}) if route == "/v1/renders" else anonymous.get(route))
    assert_problem(response, 401, "unauthorized")
    assert API_KEY not in response.text


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"X-API-Key": OTHER_KEY}, id="second-key"),
        pytest.param({"Authorization": f"Bearer {API_KEY}"}, id="bearer"),
        pytest.param({"authorization": f"bearer {API_KEY}"}, id="bearer-lower-case"),
    ],
)
async def test_valid_keys(service: httpx.AsyncClient, headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=str(service.base_url), headers=headers) as client:
        assert (await client.get("/v1/dashboards")).status_code == 200


@pytest.mark.parametrize("route", ["/healthz", "/readyz", "/metrics", "/openapi/openapi.json"])
async def test_open_routes(service: httpx.AsyncClient, route: str) -> None:
    async with httpx.AsyncClient(base_url=str(service.base_url)) as anonymous:
        assert (await anonymous.get(route)).status_code == 200


async def test_auth_failures_are_counted(service: httpx.AsyncClient) -> None:
    failures = "screenshot_auth_failures_total"
    async with httpx.AsyncClient(base_url=str(service.base_url)) as anonymous:
        before = (await Metrics.read(anonymous)).value(failures, reason="invalid")
        await anonymous.get("/v1/dashboards", headers={"X-API-Key": "nope-nope-nope-nope"})
        after = (await Metrics.read(anonymous)).value(failures, reason="invalid")
    assert after == before + 1
