"""Fault injection against the real service: Chromium killed mid-render, hangs, tab crashes, Meta faults.

Every response is a 2xx or a well-formed problem, the next request succeeds, and the Chromium
processes below this (the service's) process return to their count before the fault.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from screenshot_service import procs

from . import proctools
from .conftest import running_service

FIGURES: list[str] = []


@pytest.fixture(scope="module")
def faults_dashboards(tmp_path_factory: pytest.TempPathFactory, pages_url: str) -> Path:
    path = tmp_path_factory.mktemp("faults") / "dashboards.toml"
    path.write_text(
        f"""
[dashboards.box]
url = "{pages_url}/box"

[dashboards.never-ready]
url = "{pages_url}/never-ready"
wait = {{ selector = "#never" }}
timeout_ms = 15000
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
async def service(faults_dashboards: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with running_service({"dashboards_file": str(faults_dashboards)}) as client:
        yield client


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, object] = response.json()
    assert problem["type"] == f"urn:screenshot-service:problem:{slug}"
    assert problem["status"] == status
    assert problem["request_id"] == response.headers["x-request-id"]
    return problem


async def wait_for_open_page(service: httpx.AsyncClient) -> None:
    for _ in range(100):
        text = (await service.get("/metrics")).text
        if any(
            line.startswith("screenshot_browser_pages_open ") and not line.endswith(" 0.0")
            for line in text.splitlines()
        ):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the render never opened its page")


async def test_chromium_killed_mid_render_fails_fast_and_the_next_render_works(
    service: httpx.AsyncClient,
) -> None:
    assert (await service.post("/v1/renders", json={"dashboard": "box"})).status_code == 200
    baseline = proctools.count()
    [leader] = proctools.browser_leaders()

    render = asyncio.create_task(service.post("/v1/renders", json={"dashboard": "never-ready"}))
    await wait_for_open_page(service)
    killed_at = time.monotonic()
    os.kill(leader, signal.SIGKILL)
    response = await render
    failed_after = time.monotonic() - killed_at

    problem = assert_problem(response, 503, "browser-unavailable")
    assert "restarted" in str(problem["detail"])
    assert response.headers["retry-after"].isdigit()
    assert failed_after < 2, f"the render took {failed_after:.1f} s to fail"
    assert (await service.post("/v1/renders", json={"dashboard": "box"})).status_code == 200
    after = await proctools.settle(baseline)
    FIGURES.append(f"kill -9 chromium mid-render: processes before {baseline}, after {after}")
    assert after == baseline
    assert proctools.unreaped() == []
    assert procs.group(leader) == []  # the dead browser's renderers and helpers are gone too
    assert leader not in proctools.browser_leaders()


def test_report_figures() -> None:
    print("\n".join(FIGURES))
