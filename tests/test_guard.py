"""Rate limits per API key and per requester, the phone allowlist, and the request limits they sit beside."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore

from screenshot_service.app import create_app
from screenshot_service.errors import InvalidRequest
from screenshot_service.guard.limits import STORE_NAME
from screenshot_service.guard.selectors import check_selector

from .support.metrics import Metrics
from .support.pages import box_visits
from .support.problems import assert_problem
from .support.servers import closed_port
from .support.service import API_KEY, OTHER_KEY, running_service, service_settings

NUMBER = "97699112233"


async def test_per_key_limit_is_429_with_retry_after() -> None:
    async with running_service({"rate_limit_per_key": "3/minute"}) as client:
        for _ in range(3):
            assert (await client.get("/v1/dashboards")).status_code == 200
        refused = await client.get("/v1/dashboards")
        assert_problem(refused, 429, "rate-limited")
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        # Another key has a budget of its own; probes and metrics are not limited.
        assert (await client.get("/v1/dashboards", headers={"X-API-Key": OTHER_KEY})).status_code == 200
        metrics = (await client.get("/metrics")).text
    limited = Metrics(metrics)
    assert limited.value("screenshot_rate_limited_total", key="tests", scope="key") == 1
    assert limited.value("screenshot_rate_limited_total", key="other", scope="key") == 0
    assert API_KEY not in metrics


@pytest.fixture(scope="module")
async def phones(dashboards_file: Path) -> AsyncIterator[httpx.AsyncClient]:
    env = {
        "dashboards_file": str(dashboards_file),
        "rate_limit_per_phone": "2/minute",
        "phone_allowlist": "+976 9911-2233, 97688000111, +1 (202) 555-0147",
    }
    async with running_service(env) as client:
        yield client


async def test_per_phone_limit_counts_every_written_form_of_a_number(
    phones: httpx.AsyncClient, pages_app: Litestar
) -> None:
    for written in ("+976 9911-2233", "97699112233"):
        response = await phones.post("/v1/renders", json={"dashboard": "box", "requester": written})
        assert response.status_code == 200, response.text
    seen = len(box_visits(pages_app))
    refused = await phones.post("/v1/renders", json={"dashboard": "box", "requester": "976-99-11-22-33"})
    assert_problem(refused, 429, "rate-limited")
    assert int(refused.headers["retry-after"]) >= 1
    assert len(box_visits(pages_app)) == seen  # not rendered
    assert NUMBER not in refused.text
    # Another number, same key: its own budget.
    other = await phones.post("/v1/renders", json={"dashboard": "box", "requester": "+12025550147"})
    assert other.status_code == 200, other.text
    metrics = (await phones.get("/metrics")).text
    assert Metrics(metrics).value("screenshot_rate_limited_total", key="tests", scope="phone") == 1
    assert NUMBER not in metrics


@pytest.mark.parametrize(
    "written", ["(976) 8800 0111", "+(976) 8800-0111", "976.8800.0111", "+976 (88) 00 01 11"]
)
async def test_brackets_and_separators_in_a_requester_are_ignored(
    service: httpx.AsyncClient, written: str
) -> None:
    """The README's rule: digits with an optional '+'; spaces, dashes, dots and brackets ignored."""
    response = await service.post("/v1/renders", json={"dashboard": "nope", "requester": written})
    # Past the requester checks (a well-formed number): refused only for the unknown dashboard.
    assert_problem(response, 404, "unknown-dashboard")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"dashboard": "box", "requester": "97600000000"}, id="not-on-allowlist"),
        pytest.param({"dashboard": "box"}, id="no-requester"),
        pytest.param({"dashboard": "box", "requester": "976881000111"}, id="one-digit-more"),
    ],
)
async def test_phone_allowlist_refuses_and_does_not_render(
    phones: httpx.AsyncClient, pages_app: Litestar, body: dict[str, object]
) -> None:
    seen = len(box_visits(pages_app))
    problem = assert_problem(await phones.post("/v1/renders", json=body), 403, "requester-not-allowed")
    assert problem["field"] == "requester"
    assert len(box_visits(pages_app)) == seen
    assert "97600000000" not in str(problem)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"requester": "12345"}, "requester", id="requester-too-short"),
        pytest.param({"requester": "1234567890123456"}, "requester", id="requester-too-long"),
        pytest.param({"requester": "+976 abc 2233"}, "requester", id="requester-letters"),
        pytest.param({"requester": "0976 9911 2233"}, "requester", id="requester-trunk-prefix"),
        pytest.param({"requester": "97699112233;drop"}, "requester", id="requester-injection"),
        pytest.param({"selector": "#" + "a" * 600}, "selector", id="selector-too-long"),
        pytest.param({"selector": ""}, "selector", id="selector-empty"),
        pytest.param({"timezone": "Mars/Olympus_Mons"}, "timezone", id="timezone-unknown"),
        pytest.param({"timezone": "../../etc"}, "timezone", id="timezone-path"),
        pytest.param({"locale": "en_US.UTF-8"}, "locale", id="locale-pattern"),
        pytest.param(
            {"locale": "AA-0-0-0"}, "locale", id="locale-chromium-refuses"
        ),  # found by the fuzz test
        pytest.param({"viewport": {"scale": 9}}, "viewport.scale", id="scale-too-big"),
        pytest.param({"viewport": {"height": 99999}}, "viewport.height", id="viewport-too-tall"),
        pytest.param({"timeout_ms": 10}, "timeout_ms", id="timeout-too-short"),
        pytest.param({"dashboard": "box", "params": {"x" * 65: "1"}}, "params", id="param-name-too-long"),
    ],
)
async def test_input_limits_name_the_field(
    service: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    response = await service.post("/v1/renders", json={"dashboard": "box", **body})
    assert response.status_code == 422, response.text
    problem = assert_problem(response, 422, "invalid-request")
    assert str(problem["field"]).startswith(field)


@pytest.mark.parametrize(
    "selector",
    [
        pytest.param("div[[[", id="css-bracket"),
        pytest.param("#1box", id="css-id-digit"),
        pytest.param("div,", id="css-trailing-comma"),
        pytest.param("a >> b", id="playwright-chain"),
        pytest.param(":visible", id="playwright-pseudo-class"),
        pytest.param("div::before", id="pseudo-element"),
        pytest.param("css=div[[", id="css-engine-prefix"),
        pytest.param("xpath=//[", id="xpath-engine-prefix"),
        pytest.param("//div[@id='box'", id="xpath-unclosed"),
        pytest.param("..//(", id="xpath-dot-dot"),
        pytest.param("xpath=count(//div", id="xpath-function"),
    ],
)
async def test_an_invalid_selector_is_422_before_any_render(
    service: httpx.AsyncClient, pages_app: Litestar, selector: str
) -> None:
    seen = len(box_visits(pages_app))
    response = await service.post("/v1/renders", json={"dashboard": "box", "selector": selector})
    assert assert_problem(response, 422, "invalid-request")["field"] == "selector"
    assert len(box_visits(pages_app)) == seen  # refused at the boundary: the page was never loaded


@pytest.mark.parametrize(
    "selector",
    ["#box", "css=#box", "body > #box:is(div)", "xpath=//*[@id='box']", "//*[@id='box']"],
)
async def test_valid_css_and_xpath_selectors_clip(service: httpx.AsyncClient, selector: str) -> None:
    response = await service.post("/v1/renders", json={"dashboard": "box", "selector": selector})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("selector", ["xpath=//*[@id='box']", "//div", "css=#box"])
def test_pyppeteer_takes_css_only(selector: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        check_selector(selector, "pyppeteer")
    assert raised.value.field == "selector"
    check_selector("#box > p:nth-child(2 of .x)", "pyppeteer")


async def test_redis_url_selects_the_redis_store_and_fails_closed() -> None:
    """Counters go to Redis when a URL is set; a Redis that cannot be reached refuses with a 503."""
    url = f"redis://:sekret-redis-password@127.0.0.1:{closed_port()}/0"
    env = {"redis_url": url, "rate_limit_per_key": "5/minute", "log_hash_key": "shared-by-replicas"}
    async with running_service(env) as client:
        assert isinstance(client.app.stores.get(STORE_NAME), RedisStore)
        response = await client.get("/v1/dashboards")
    problem = assert_problem(response, 503, "limiter-unavailable")
    assert response.headers["retry-after"] == "5"
    assert "sekret" not in str(problem)


def test_memory_store_by_default() -> None:
    app = create_app(service_settings(closed_port()))
    assert isinstance(app.stores.get(STORE_NAME), MemoryStore)
