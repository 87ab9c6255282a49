"""Every failure is an RFC 9457 problem with a stable type, the right status, and nothing left open."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from litestar.exceptions import HTTPException

from screenshot_service.api.problems import from_http_exception, problem_body
from screenshot_service.errors import HttpRefused, ServiceError

from .support.service import running_service

PROBLEM = "urn:screenshot-service:problem:"


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = response.json()
    assert body["type"] == PROBLEM + slug
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert isinstance(body["detail"], str)
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body


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
    ],
)
async def test_bad_requests(
    service: httpx.AsyncClient, body: dict[str, object], status: int, slug: str, field: str | None
) -> None:
    problem = assert_problem(await service.post("/v1/renders", json=body), status, slug)
    if field is not None:
        assert problem["field"] == field
        assert field in str(problem["detail"])


async def test_a_value_not_allowed_is_answered_with_the_allowed_ones(service: httpx.AsyncClient) -> None:
    body = {"dashboard": "sales", "params": {"range": "1y"}}
    problem = assert_problem(await service.post("/v1/renders", json=body), 422, "invalid-parameter")
    assert problem["detail"] == "params.range must be one of: today, 7d, 30d, 90d."


async def test_malformed_json(service: httpx.AsyncClient) -> None:
    response = await service.post(
        "/v1/renders", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code in (400, 422)
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_body_too_large(service: httpx.AsyncClient) -> None:
    body = {"dashboard": "sales", "params": {"range": "x" * 40_000}}
    assert_problem(await service.post("/v1/renders", json=body), 413, "body-too-large")


async def test_unknown_route_and_method(service: httpx.AsyncClient) -> None:
    assert_problem(await service.get("/v1/nothing-here"), 404, "not-found")
    assert_problem(await service.get("/v1/renders"), 405, "method-not-allowed")


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
        pytest.param("unreachable", "net::ERR_CONNECTION_REFUSED", id="connection-refused"),
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
