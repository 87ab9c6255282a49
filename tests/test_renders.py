"""Renders of real pages in a real Chromium: sizes, clips, readiness, and per-dashboard contexts."""

from __future__ import annotations

import httpx
import pytest
from litestar import Litestar

from .support.images import decode, differing_fraction
from .support.pages import box_visits
from .support.service import API_KEY


async def render(service: httpx.AsyncClient, **body: object) -> httpx.Response:
    return await service.post("/v1/renders", json=body)


@pytest.mark.parametrize(
    ("body", "size"),
    [
        pytest.param(
            {"dashboard": "sales", "params": {"range": "7d"}}, (1280, 800), id="demo-default-viewport"
        ),
        pytest.param(
            {"dashboard": "box", "viewport": {"width": 640, "height": 480}}, (640, 480), id="viewport"
        ),
        pytest.param(
            {"dashboard": "box", "viewport": {"width": 400, "height": 300, "scale": 2}},
            (800, 600),
            id="scale",
        ),
        pytest.param({"dashboard": "box-clip"}, (600, 300), id="clip-selector-at-scale-2"),
        pytest.param({"dashboard": "box", "selector": "#box"}, (300, 150), id="clip-selector-override"),
    ],
)
async def test_png_size_is_viewport_times_scale(
    service: httpx.AsyncClient, body: dict[str, object], size: tuple[int, int]
) -> None:
    response = await render(service, **body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    image = decode(response.content)
    assert image.format == "PNG"
    assert image.size == size


async def test_clip_is_the_element_itself(service: httpx.AsyncClient) -> None:
    image = decode((await render(service, dashboard="box", selector="#box")).content).convert("RGB")
    assert {image.getpixel((x, y)) for x in (0, 150, 299) for y in (0, 75, 149)} == {(204, 0, 0)}


async def test_jpeg_format(service: httpx.AsyncClient) -> None:
    response = await render(service, dashboard="box", format="jpeg", quality=60)
    assert response.headers["content-type"] == "image/jpeg"
    assert decode(response.content).format == "JPEG"


async def test_default_dashboard_is_used_without_a_name(service: httpx.AsyncClient) -> None:
    response = await render(service)
    assert response.status_code == 200
    assert decode(response.content).size == (1280, 800)


async def test_late_panels_are_waited_for(service: httpx.AsyncClient) -> None:
    waited = (await render(service, dashboard="sales", params={"range": "7d"})).content
    early = (await render(service, dashboard="sales-unwaited")).content
    # The unwaited capture shows loading skeletons; the waited one shows the charts and tables.
    assert differing_fraction(waited, early) > 0.05


async def test_dashboard_headers_and_cookies_stay_in_its_own_context(
    service: httpx.AsyncClient, pages_app: Litestar
) -> None:
    before = len(box_visits(pages_app))
    assert (await render(service, dashboard="box")).status_code == 200
    assert (await render(service, dashboard="box-clip")).status_code == 200
    assert box_visits(pages_app)[before:] == [("dash-secret-token-42", "cookie-secret-77"), (None, None)]


async def test_dashboards_listing(service: httpx.AsyncClient) -> None:
    response = await service.get("/v1/dashboards")
    assert response.status_code == 200
    listing = response.json()
    assert listing["default"] == "sales"
    sales = next(d for d in listing["dashboards"] if d["name"] == "sales")
    assert sales["params"] == [
        {
            "name": "range",
            "default": "today",
            "pattern": "today|7d|30d|90d",
            "description": "",
            "values": ["today", "7d", "30d", "90d"],
        }
    ]
    assert "url" not in sales  # where dashboards live is the operator's business
    assert "dash-secret-token-42" not in response.text


async def test_openapi_is_served_and_names_the_api_key(service: httpx.AsyncClient) -> None:
    response = await service.get("/openapi/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert "/v1/renders" in spec["paths"]
    assert spec["components"]["securitySchemes"]["apiKey"]["name"] == "X-API-Key"
    assert API_KEY not in response.text


async def test_health_and_readiness(service: httpx.AsyncClient) -> None:
    assert (await service.get("/healthz", headers={"X-API-Key": ""})).json()["status"] == "ok"
    ready = await service.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["browser"] == "ok"
