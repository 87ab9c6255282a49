"""Every step of a render is bounded: a page that never gets ready ends in a 504 naming the step,
its page is closed, and the readiness outcome is in a response header and in the metrics."""

from __future__ import annotations

import httpx
import pytest

from .test_no_leaks import open_targets


def readiness_count(metrics_text: str, outcome: str) -> float:
    sample = f'screenshot_render_readiness_total{{outcome="{outcome}"}} '
    return next((float(line.split()[-1]) for line in metrics_text.splitlines() if line.startswith(sample)), 0)


async def test_a_ready_page_says_complete(service: httpx.AsyncClient) -> None:
    before = readiness_count((await service.get("/metrics")).text, "complete")

    response = await service.post("/v1/renders", json={"dashboard": "box"})

    assert response.status_code == 200
    assert response.headers["x-render-readiness"] == "complete"
    assert int(response.headers["x-queue-ms"]) >= 0
    assert readiness_count((await service.get("/metrics")).text, "complete") == before + 1


@pytest.mark.parametrize(
    ("dashboard", "step"),
    [
        pytest.param("never-ready", "selector", id="selector-never-shows"),
        pytest.param("hang", "navigate", id="page-never-loads"),
    ],
)
async def test_a_page_that_never_gets_ready_is_a_504_naming_the_step(
    service: httpx.AsyncClient, dashboard: str, step: str
) -> None:
    before = readiness_count((await service.get("/metrics")).text, f"timeout:{step}")

    response = await service.post("/v1/renders", json={"dashboard": dashboard})

    assert response.status_code == 504, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith(":render-timeout")
    assert problem["step"] == step
    assert response.headers["x-render-readiness"] == f"timeout:{step}"
    assert (await open_targets(service))[1] == 0  # its page is closed
    after = readiness_count((await service.get("/metrics")).text, f"timeout:{step}")
    assert after == before + (step == "selector")  # navigation is not a readiness step
