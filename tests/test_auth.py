"""API keys on /v1/*: X-API-Key or bearer, compared in constant time; probes and metrics stay open."""

from __future__ import annotations

import httpx
import pytest

from .support.metrics import Metrics
from .support.problems import assert_problem
from .support.service import API_KEY, OTHER_KEY, running_service


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


METRICS_TOKEN = "metrics-Qm4t7Zx2Lp9Vw3Ks8Rb"


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-token"),
        pytest.param({"Authorization": "Bearer metrics-wrong-token-0000"}, id="wrong-token"),
        pytest.param({"Authorization": f"Bearer {METRICS_TOKEN}x"}, id="token-plus-one"),
        pytest.param({"Authorization": f"Basic {METRICS_TOKEN}"}, id="wrong-scheme"),
        pytest.param({"X-API-Key": API_KEY}, id="an-api-key-is-not-the-token"),
        pytest.param({"X-API-Key": METRICS_TOKEN}, id="token-in-the-api-key-header"),
    ],
)
async def test_metrics_token_guards_metrics(headers: dict[str, str]) -> None:
    async with (
        running_service({"metrics_token": METRICS_TOKEN}) as service,
        httpx.AsyncClient(base_url=str(service.base_url)) as anonymous,
    ):
        refused = await anonymous.get("/metrics", headers=headers)
        scraped = await anonymous.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        probes = [(await anonymous.get(route)).status_code for route in ("/healthz", "/readyz")]
    problem = assert_problem(refused, 401, "unauthorized")
    assert METRICS_TOKEN not in str(problem)
    assert "screenshot_" not in refused.text
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    assert "screenshot_http_requests_total" in scraped.text
    assert probes == [200, 200]  # the probes stay open
