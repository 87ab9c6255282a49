"""Every step of a render is bounded: a page that never gets ready ends in a 504 naming the step,
its page is closed, and the readiness outcome is in a response header and in the metrics."""

from __future__ import annotations

import pytest

from .support.metrics import Metrics
from .support.service import ServiceClient


async def readiness_count(service: ServiceClient, outcome: str) -> float:
    return (await Metrics.read(service)).value("screenshot_render_readiness_total", outcome=outcome)


@pytest.mark.parametrize(
    ("dashboard", "condition"),
    [
        pytest.param("box", "load+auto", id="no-wait-is-auto"),
        pytest.param("sales", "load+selector", id="explicit-selector-replaces-auto"),
        pytest.param("sales-unwaited", "load", id="explicit-until-replaces-auto"),
    ],
)
async def test_a_ready_page_says_which_conditions_held(
    service: ServiceClient, dashboard: str, condition: str
) -> None:
    before = await readiness_count(service, condition)

    response = await service.post("/v1/renders", json={"dashboard": dashboard})

    assert response.status_code == 200
    header = response.headers["x-render-readiness"]
    assert header.startswith(f"ready; condition={condition}; waited_ms="), header
    assert "moving=" not in header
    assert int(response.headers["x-queue-ms"]) >= 0
    assert await readiness_count(service, condition) == before + 1


@pytest.mark.parametrize(
    ("dashboard", "step"),
    [
        pytest.param("never-ready", "selector", id="selector-never-shows"),
        pytest.param("hang", "navigate", id="page-never-loads"),
    ],
)
async def test_a_page_that_never_gets_ready_is_a_504_naming_the_step(
    service: ServiceClient, dashboard: str, step: str
) -> None:
    before = await readiness_count(service, f"timeout:{step}")

    response = await service.post("/v1/renders", json={"dashboard": dashboard})

    assert response.status_code == 504, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith(":render-timeout")
    assert problem["step"] == step
    assert response.headers["x-render-readiness"] == f"timeout:{step}"
    contexts, pages, warm = await service.idle_targets()
    assert pages == warm == contexts * service.app.state.supervisor.pool_size  # closed; pools full
    after = await readiness_count(service, f"timeout:{step}")
    assert after == before + (step == "selector")  # navigation is not a readiness step
