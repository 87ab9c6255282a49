"""Identical requests under way share one render and one upload; a dashboard with ``cache_ttl_s``
reuses its media id (``cached: true``); different requests never share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from .support.emulator import Emulator, meta_env
from .support.service import running_service


def count(metrics_text: str, sample: str) -> float:
    return next(
        (float(line.split()[-1]) for line in metrics_text.splitlines() if line.startswith(sample + " ")), 0
    )


@pytest.fixture(scope="module")
async def service(
    meta_emulator_url: str, tmp_path_factory: pytest.TempPathFactory, pages_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    root = tmp_path_factory.mktemp("single-flight")
    dashboards = root / "dashboards.toml"
    dashboards.write_text(
        f"""
[dashboards.slow]
url = "{pages_url}/box"
wait = {{ delay_ms = 1000 }}
[dashboards.slow.params.v]
default = "1"

[dashboards.cached]
url = "{pages_url}/box"
cache_ttl_s = 60
""",
        encoding="utf-8",
    )
    env = meta_env(meta_emulator_url, root / "images", dashboards_file=str(dashboards))
    async with running_service(env) as client:
        yield client


async def test_identical_requests_share_one_render_and_one_upload(
    service: httpx.AsyncClient, emulator: Emulator
) -> None:
    before = (await service.get("/metrics")).text
    same = {"dashboard": "slow", "params": {"v": "1"}}

    answers = await asyncio.gather(*(service.post("/v1/media", json=same) for _ in range(4)))
    other = await service.post("/v1/media", json={"dashboard": "slow", "params": {"v": "2"}})

    assert [a.status_code for a in answers] == [200] * 4
    assert len({a.json()["media_id"] for a in answers}) == 1
    assert not any(a.json()["cached"] for a in answers)
    assert len({a.json()["request_id"] for a in answers}) == 4  # each its own request
    assert other.status_code == 200
    assert other.json()["media_id"] != answers[0].json()["media_id"]
    assert len(await emulator.uploads()) == 2
    after = (await service.get("/metrics")).text
    shared = 'screenshot_media_reused_total{how="single-flight"}'
    assert count(after, shared) - count(before, shared) == 3
    renders = 'screenshot_renders_total{dashboard="slow",outcome="ok"}'
    assert count(after, renders) - count(before, renders) == 2


async def test_a_dashboard_with_a_cache_ttl_reuses_its_media_id(
    service: httpx.AsyncClient, emulator: Emulator
) -> None:
    first = await service.post("/v1/media", json={"dashboard": "cached"})
    second = await service.post("/v1/media", json={"dashboard": "cached"})
    wider = await service.post("/v1/media", json={"dashboard": "cached", "viewport": {"width": 900}})

    assert first.status_code == second.status_code == wider.status_code == 200
    assert first.json()["cached"] is False
    assert second.json()["cached"] is True
    assert second.json()["media_id"] == first.json()["media_id"]
    assert wider.json()["cached"] is False  # another viewport is another image
    assert len(await emulator.uploads()) == 2


async def test_one_caller_hanging_up_does_not_cancel_the_others(
    service: httpx.AsyncClient, emulator: Emulator
) -> None:
    same = {"dashboard": "slow", "params": {"v": "3"}}
    staying = asyncio.create_task(service.post("/v1/media", json=same))
    with pytest.raises(httpx.ReadTimeout):
        await service.post("/v1/media", json=same, timeout=0.5)

    response = await staying

    assert response.status_code == 200, response.text
    assert len(await emulator.uploads()) == 1
