"""Automatic readiness: with no wait configured a page is captured once its network is idle and it is
still; a page that never stops moving is captured ``partial`` at the bound (or refused), naming what
moved; explicit conditions replace it. On both engines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .support.images import decode, near
from .support.problems import assert_problem
from .support.readiness_pages import PANEL_COLOURS, panel_centre
from .support.service import ServiceClient, running_service


@pytest.fixture(scope="module", params=["playwright", "pyppeteer"])
async def engine_service(
    request: pytest.FixtureRequest, dashboards_file: Path
) -> AsyncIterator[ServiceClient]:
    """The service on each engine (pyppeteer only with its extra installed)."""
    if request.param == "pyppeteer":
        pytest.importorskip("pyppeteer", reason="the [pyppeteer] extra is not installed")
    async with running_service({"engine": request.param, "dashboards_file": str(dashboards_file)}) as client:
        yield client


def panels_drawn(png: bytes) -> int:
    """How many of the late page's six panels show their colour."""
    image = decode(png).convert("RGB")
    return sum(near(image.getpixel(panel_centre(i)), colour) for i, colour in enumerate(PANEL_COLOURS))


def readiness(header: str) -> dict[str, str]:
    """``ready; condition=load+auto; waited_ms=512`` as {"state": "ready", "condition": ..., ...}."""
    state, *parts = header.split("; ")
    return {"state": state} | dict(part.split("=", 1) for part in parts)


async def test_a_late_page_with_no_wait_is_captured_with_all_its_panels(
    engine_service: ServiceClient,
) -> None:
    response = await engine_service.post("/v1/renders", json={"dashboard": "late"})

    assert response.status_code == 200, response.text
    assert panels_drawn(response.content) == len(PANEL_COLOURS)
    ready = readiness(response.headers["x-render-readiness"])
    assert (ready["state"], ready["condition"]) == ("ready", "load+auto")
    assert "moving" not in ready


async def test_captured_at_load_the_late_page_misses_panels(engine_service: ServiceClient) -> None:
    # What a capture at `load` makes of the same page: the test above could fail.
    response = await engine_service.post("/v1/renders", json={"dashboard": "late-at-load"})

    assert response.status_code == 200, response.text
    assert panels_drawn(response.content) < len(PANEL_COLOURS)
    assert readiness(response.headers["x-render-readiness"])["condition"] == "load"


async def test_a_page_that_never_stops_moving_is_partial_at_the_bound_naming_what_moved(
    engine_service: ServiceClient,
) -> None:
    response = await engine_service.post("/v1/renders", json={"dashboard": "never-still"})

    assert response.status_code == 200, response.text
    assert decode(response.content).size == (1280, 800)
    ready = readiness(response.headers["x-render-readiness"])
    assert (ready["state"], ready["condition"]) == ("partial", "load+auto")
    assert "canvas:canvas#live" in ready["moving"].split(",")


async def test_refuse_partial_makes_a_never_still_page_a_504(engine_service: ServiceClient) -> None:
    response = await engine_service.post("/v1/renders", json={"dashboard": "never-still-refused"})

    problem = assert_problem(response, 504, "render-timeout")
    assert problem["step"] == "auto"
    assert "canvas:canvas#live" in problem["detail"]
    assert response.headers["x-render-readiness"] == "timeout:auto"
    contexts, pages, warm = await engine_service.idle_targets()
    assert pages == warm == contexts * engine_service.app.state.supervisor.pool_size  # its page closed


@pytest.mark.parametrize("dashboard", ["box", "spinner"])
async def test_a_still_page_is_ready_after_one_quiet_window(
    engine_service: ServiceClient, dashboard: str
) -> None:
    # An endless spinner that does not move layout (a CSS transform) does not keep a page from being ready.
    response = await engine_service.post("/v1/renders", json={"dashboard": dashboard})

    assert response.status_code == 200, response.text
    ready = readiness(response.headers["x-render-readiness"])
    assert (ready["state"], ready["condition"]) == ("ready", "load+auto")
    assert "moving" not in ready
