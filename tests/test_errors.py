"""Every failure is an RFC 9457 problem with a stable type, the right status, and nothing left open."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from litestar.exceptions import HTTPException

from screenshot_service.api.problems import from_http_exception, problem_body
from screenshot_service.errors import HttpRefused, ServiceError

from .support.metrics import Metrics
from .support.problems import assert_problem
from .support.service import running_service


@pytest.mark.parametrize(
    ("body", "status", "slug", "field"),
    [
        pytest.param({"dashboard": "nope"}, 404, "unknown-dashboard", None, id="unknown-dashboard"),
        pytest.param({"dashboard": "../sales"}, 404, "unknown-dashboard", None, id="path-trick"),
        pytest.param(
            {"dashboard": "sales", "params": {"range": "1y"}},
            422,
            "invalid-parameter",
            "params.range",
            id="param-pattern",
        ),
        pytest.param(
            {"dashboard": "sales", "params": {"range": "7d&x=1"}},
            422,
            "invalid-parameter",
            "params.range",
            id="param-injection",
        ),
        pytest.param(
            {"dashboard": "sales", "params": {"colour": "red"}},
            422,
            "invalid-parameter",
            "params.colour",
            id="unknown-param",
        ),
        pytest.param(
            {"dashboard": "box", "viewport": {"width": 99999}},
            422,
            "invalid-request",
            "viewport.width",
            id="viewport-too-wide",
        ),
        pytest.param(
            {"dashboard": "box", "viewport": {"width": "wide"}},
            422,
            "invalid-request",
            "viewport.width",
            id="viewport-not-a-number",
        ),
        pytest.param(
            {"dashboard": "box", "timeout_ms": 10_000_000},
            422,
            "invalid-request",
            "timeout_ms",
            id="timeout-too-long",
        ),
        pytest.param({"dashboard": "box", "extra": 1}, 422, "invalid-request", "extra", id="unknown-field"),
        pytest.param(
            {"dashboard": "box", "selector": "#no-such-element"},
            422,
            "invalid-request",
            "selector",
            id="clip-selector-matches-nothing",
        ),
        pytest.param({"url": "http://127.0.0.1/"}, 403, "forbidden", None, id="raw-url-disabled"),
        # Strict types: JSON has numbers, booleans and objects, so a string standing for one is refused.
        pytest.param(
            {"dashboard": "box", "timeout_ms": "20000"},
            422,
            "invalid-request",
            "timeout_ms",
            id="int-as-string",
        ),
        pytest.param(
            {"dashboard": "box", "full_page": "true"},
            422,
            "invalid-request",
            "full_page",
            id="bool-as-string",
        ),
        pytest.param(
            {"dashboard": "box", "viewport": {"width": "800"}},
            422,
            "invalid-request",
            "viewport.width",
            id="nested-int-as-string",
        ),
        pytest.param(
            {"dashboard": "box", "quality": 80.0}, 422, "invalid-request", "quality", id="int-as-float"
        ),
        pytest.param(
            {"dashboard": "box", "params": {"n": 7}},
            422,
            "invalid-request",
            "params[...]",
            id="param-as-number",
        ),
    ],
)
async def test_bad_requests(
    service: httpx.AsyncClient, body: dict[str, object], status: int, slug: str, field: str | None
) -> None:
    before = (await Metrics.read(service)).value("screenshot_problems_total", type=slug, status=str(status))

    problem = assert_problem(await service.post("/v1/renders", json=body), status, slug)

    after = (await Metrics.read(service)).value("screenshot_problems_total", type=slug, status=str(status))
    assert after == before + 1  # every problem is counted by its type
    if field is not None:
        assert problem["field"] == field
        assert field in str(problem["detail"])


@pytest.mark.parametrize("route", ["/v1/renders", "/v1/media"])
@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(b"{not json", None, id="malformed"),
        pytest.param(b"", None, id="empty"),
        pytest.param(b'["dashboard", "box"]', None, id="an-array"),
        pytest.param(b'"box"', None, id="a-string"),
        pytest.param(b"[" * 1100 + b"]" * 1100, None, id="nested-1100-array"),
        pytest.param(b"[" * 5000, None, id="nested-5000-unclosed"),
        # An object whose field has the wrong shape: a 422 naming the field, however deep it goes.
        pytest.param(
            b'{"dashboard":' + b"[" * 1100 + b"]" * 1100 + b"}", "dashboard", id="nested-1100-field"
        ),
        pytest.param(
            b'{"params":{"a":' + b'{"a":' * 1100 + b"1" + b"}" * 1102, "params[...]", id="nested-1100-objects"
        ),
    ],
)
async def test_a_body_that_is_not_a_request_object_is_a_4xx(
    service: httpx.AsyncClient, route: str, body: bytes, field: str | None
) -> None:
    """Not JSON, not an object, or nested deeper than any request: a 4xx problem, never a 500."""
    response = await service.post(route, content=body, headers={"Content-Type": "application/json"})
    if field is None:
        assert_problem(response, 400, "bad-request")
    else:
        assert assert_problem(response, 422, "invalid-request")["field"] == field
    assert "Recursion" not in response.text


async def test_body_too_large(service: httpx.AsyncClient) -> None:
    body = {"dashboard": "sales", "params": {"range": "x" * 40_000}}
    assert_problem(await service.post("/v1/renders", json=body), 413, "body-too-large")


async def test_unknown_route(service: httpx.AsyncClient) -> None:
    assert_problem(await service.get("/v1/nothing-here"), 404, "not-found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        pytest.param("GET", "/v1/renders", {"POST", "OPTIONS"}, id="get-renders"),
        pytest.param("TRACE", "/v1/media", {"POST", "OPTIONS"}, id="trace-media"),
        pytest.param("DELETE", "/v1/dashboards", {"GET", "HEAD", "OPTIONS"}, id="delete-dashboards"),
        pytest.param("POST", "/healthz", {"GET", "HEAD", "OPTIONS"}, id="post-healthz"),
        pytest.param("PUT", "/metrics", {"GET", "HEAD", "OPTIONS"}, id="put-metrics"),
    ],
)
async def test_wrong_method_is_405_with_allow(
    service: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    response = await service.request(method, path)
    assert_problem(response, 405, "method-not-allowed")
    assert {m.strip() for m in response.headers["allow"].split(",")} >= allowed - {"HEAD"}
    assert method not in response.headers["allow"]


@pytest.mark.parametrize(
    ("dashboard", "step"),
    [
        pytest.param("never-ready", "selector", id="selector-never-appears"),
        pytest.param("hang", "navigate", id="server-never-answers"),
    ],
)
async def test_render_timeout_names_the_step(service: httpx.AsyncClient, dashboard: str, step: str) -> None:
    problem = assert_problem(
        await service.post("/v1/renders", json={"dashboard": dashboard}), 504, "render-timeout"
    )
    assert problem["step"] == step


@pytest.mark.parametrize(
    ("dashboard", "detail"),
    [
        pytest.param("broken", "HTTP 500", id="page-answers-500"),
        # Chromium connects only to the egress proxy, which answers a refused connection with a 502
        # (and a Proxy-Status header); Chromium reports that as a failed response, not a refusal.
        pytest.param("unreachable", "could not be loaded", id="connection-refused"),
    ],
)
async def test_page_failures_are_502(service: httpx.AsyncClient, dashboard: str, detail: str) -> None:
    problem = assert_problem(
        await service.post("/v1/renders", json={"dashboard": dashboard}), 502, "render-failed"
    )
    assert detail in str(problem["detail"])
    assert "127.0.0.1" not in str(problem["detail"])


async def test_browser_unavailable_is_503() -> None:
    async with running_service({"chromium_path": "/nonexistent/chromium"}) as client:
        assert_problem(
            await client.post("/v1/renders", json={"dashboard": "sales"}), 503, "browser-unavailable"
        )
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"


async def test_request_id_is_echoed_or_made(service: httpx.AsyncClient) -> None:
    given = await service.post(
        "/v1/renders", json={"dashboard": "nope"}, headers={"X-Request-ID": "n8n-exec-42"}
    )
    assert given.headers["x-request-id"] == "n8n-exec-42"
    assert given.json()["request_id"] == "n8n-exec-42"
    hostile = await service.post(
        "/v1/renders", json={"dashboard": "nope"}, headers={"X-Request-ID": "<script>" + "x" * 200}
    )
    assert re.fullmatch(r"[0-9a-f]{16}", hostile.headers["x-request-id"])


def _problem_classes(cls: type[ServiceError]) -> list[type[ServiceError]]:
    return [cls, *(c for sub in cls.__subclasses__() for c in _problem_classes(sub))]


def test_the_readme_lists_every_problem_with_its_status() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    rows = {
        (int(status), slug)
        for status, slugs in re.findall(r"^\| (\d{3}) \| (`[^|]+`) \|", readme, flags=re.MULTILINE)
        for slug in re.findall(r"`([a-z-]+)`", slugs)
    }
    named = [c for c in _problem_classes(ServiceError) if c not in {ServiceError, HttpRefused}]
    documented = {(c.status, c.slug) for c in named}
    assert documented <= rows, f"missing from README.md's problem table: {sorted(documented - rows)}"


@pytest.mark.parametrize(
    ("status", "slug"),
    [
        pytest.param(415, "unsupported-media-type", id="415"),
        pytest.param(406, "not-acceptable", id="406"),
        pytest.param(429, "too-many-requests", id="429"),
    ],
)
def test_other_http_refusals_keep_their_status(status: int, slug: str) -> None:
    error = from_http_exception(HTTPException(status_code=status, detail="refused"))
    body = problem_body(error)
    assert (body["status"], body["type"]) == (status, f"urn:screenshot-service:problem:{slug}")


@pytest.mark.parametrize("path", ["/v1/dashboards", "/healthz"])
async def test_a_body_on_a_route_that_takes_none_is_400(service: httpx.AsyncClient, path: str) -> None:
    response = await service.request("GET", path, content=b'{"dashboard": "box"}')
    assert_problem(response, 400, "bad-request")
    assert (await service.get(path)).status_code == 200
