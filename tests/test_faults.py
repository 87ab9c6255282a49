"""Fault injection against the real service: Chromium killed mid-render, hangs, tab crashes, Meta faults.

Every response is a 2xx or a well-formed problem, the next request succeeds, and the Chromium
processes below this (the service's) process return to their count before the fault.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import prometheus_client
import pytest

from screenshot_service import procs

from . import proctools
from .conftest import running_service
from .fault_pages import create_fault_pages_app
from .figures import FAULT_FIGURES
from .servers import free_socket, serve


@pytest.fixture(scope="module")
async def fault_pages_url() -> AsyncIterator[str]:
    async with serve(create_fault_pages_app(), free_socket()) as url:
        yield url


@pytest.fixture(scope="module")
def faults_dashboards(tmp_path_factory: pytest.TempPathFactory, pages_url: str, fault_pages_url: str) -> Path:
    path = tmp_path_factory.mktemp("faults") / "dashboards.toml"
    path.write_text(
        f"""
[dashboards.box]
url = "{pages_url}/box"

[dashboards.never-ready]
url = "{pages_url}/never-ready"
wait = {{ selector = "#never" }}
timeout_ms = 15000

[dashboards.hang]
url = "{pages_url}/hang"

[dashboards.hog]
url = "{fault_pages_url}/hog"
wait = {{ selector = "#never" }}
timeout_ms = 15000
""",
        encoding="utf-8",
    )
    return path


class Service:
    """A service of the test's own, and the Chromium it launched (not the session service's)."""

    def __init__(self, client: httpx.AsyncClient, others: set[int], engine: str) -> None:
        self.http = client
        self._others = others
        self.engine = engine

    def browser(self) -> int:
        [leader] = set(proctools.browser_leaders()) - self._others
        return leader

    async def warm(self) -> tuple[int, int]:
        """Render once, so the browser is up: its leader, and the steady count of its processes."""
        assert (await self.http.post("/v1/renders", json={"dashboard": "box"})).status_code == 200
        leader = self.browser()
        return leader, await proctools.baseline(lambda: proctools.in_groups({leader}))


@pytest.fixture(
    params=["playwright", pytest.param("pyppeteer", marks=pytest.mark.pyppeteer)],
)
async def service(faults_dashboards: Path, request: pytest.FixtureRequest) -> AsyncIterator[Service]:
    others = set(proctools.browser_leaders())
    env = {
        "dashboards_file": str(faults_dashboards),
        "ready_cache_s": "0",
        "page_heap_mb": "64",
        "engine": request.param,
    }
    async with running_service(env) as client:
        yield Service(client, others, request.param)


@pytest.fixture
def new_zombies() -> Callable[[], list[procs.Proc]]:
    """Unreaped orphans that were not there when the test began: in a full run, earlier tests' own
    helpers (a bench, a Chromium driven directly) can leave theirs to this process, its subreaper."""
    before = {p.pid for p in proctools.unreaped()}
    return lambda: [p for p in proctools.unreaped() if p.pid not in before]


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
    new_zombies: Callable[[], list[procs.Proc]], service: Service
) -> None:
    http = service.http
    leader, baseline = await service.warm()

    render = asyncio.create_task(http.post("/v1/renders", json={"dashboard": "never-ready"}))
    await wait_for_open_page(http)
    killed_at = time.monotonic()
    os.kill(leader, signal.SIGKILL)
    response = await render
    failed_after = time.monotonic() - killed_at

    problem = assert_problem(response, 503, "browser-unavailable")
    assert "restarted" in str(problem["detail"])
    assert response.headers["retry-after"].isdigit()
    assert failed_after < 2, f"the render took {failed_after:.1f} s to fail"
    # The probe itself waits for the relaunch (or starts it): a replica taken out of traffic comes back
    # without needing a render to wake its browser.
    assert (await http.get("/readyz")).status_code == 200
    assert service.browser() != leader
    assert (await http.post("/v1/renders", json={"dashboard": "box"})).status_code == 200
    successor = service.browser()
    after = await proctools.settle(baseline, lambda: proctools.in_groups({leader, successor}))
    FAULT_FIGURES.append(
        f"kill -9 chromium mid-render ({service.engine}): browser processes before {baseline}, "
        f"after {after} (of the killed browser: {len(procs.group(leader))})"
    )
    assert successor != leader
    assert after <= baseline
    assert new_zombies() == []
    assert procs.group(leader) == []  # the dead browser's renderers and helpers are gone too


@pytest.mark.parametrize(
    ("dashboard", "step"),
    [
        pytest.param("hang", "navigate", id="page-never-loads"),
        pytest.param("never-ready", "selector", id="selector-never-shows"),
    ],
)
async def test_a_page_that_hangs_forever_times_out_and_leaves_no_process(
    new_zombies: Callable[[], list[procs.Proc]], service: Service, dashboard: str, step: str
) -> None:
    http = service.http
    leader, baseline = await service.warm()

    response = await http.post("/v1/renders", json={"dashboard": dashboard, "timeout_ms": 2000})

    problem = assert_problem(response, 504, "render-timeout")
    assert problem["step"] == step
    assert (await http.post("/v1/renders", json={"dashboard": "box"})).status_code == 200
    assert service.browser() == leader  # a hung page costs its page, not the browser
    after = await proctools.settle(baseline, lambda: proctools.in_groups({leader}))
    FAULT_FIGURES.append(
        f"page that hangs at {step} ({service.engine}): browser processes before {baseline}, after {after}"
    )
    assert after <= baseline
    assert new_zombies() == []


def metric(text: str, sample: str) -> float:
    """The value of one sample (name with labels, as /metrics writes it); 0 when absent."""
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        pytest.param(
            {"browser_recycle_after": "2", "browser_max_rss_mb": "0"}, "renders", id="after-2-renders"
        ),
        pytest.param({"browser_recycle_after": "0", "browser_max_rss_mb": "1"}, "memory", id="past-1-mb"),
    ],
)
async def test_recycled_browsers_fail_no_render_and_leave_no_process(
    new_zombies: Callable[[], list[procs.Proc]], faults_dashboards: Path, env: dict[str, str], reason: str
) -> None:
    before_text = prometheus_client.generate_latest().decode()  # counters are the process's, not the app's
    async with (
        proctools.LeaderWatch() as browsers,
        running_service({"dashboards_file": str(faults_dashboards), **env}) as service,
    ):
        statuses = []
        for _ in range(2):  # waves of concurrent renders, while browsers are replaced under them
            wave = [service.post("/v1/renders", json={"dashboard": "box"}) for _ in range(3)]
            statuses += [r.status_code for r in await asyncio.gather(*wave)]
            await asyncio.sleep(0.6)
        text = (await service.get("/metrics")).text
        recycled = metric(text, f'screenshot_browser_recycles_total{{reason="{reason}"}}') - metric(
            before_text, f'screenshot_browser_recycles_total{{reason="{reason}"}}'
        )
        running = proctools.in_groups(browsers.seen)
    after = proctools.in_groups(browsers.seen)
    FAULT_FIGURES.append(
        f"recycling ({reason}): {recycled:.0f} browsers replaced over {len(statuses)} renders, "
        f"{len(browsers.seen)} browsers in all; their processes while running {running}, "
        f"after shutdown {after}"
    )
    assert statuses == [200] * len(statuses)
    assert recycled >= 1
    assert len(browsers.seen) >= 2
    assert after == 0
    assert new_zombies() == []


@pytest.mark.parametrize("service", ["playwright"], indirect=True)  # pyppeteer: see the kill test
async def test_a_page_that_eats_memory_crashes_its_tab_not_the_browser(
    new_zombies: Callable[[], list[procs.Proc]], service: Service
) -> None:
    http = service.http
    leader, baseline = await service.warm()

    response = await http.post("/v1/renders", json={"dashboard": "hog"})

    problem = assert_problem(response, 502, "page-crashed")
    assert "memory" in str(problem["detail"])
    assert (await http.post("/v1/renders", json={"dashboard": "box"})).status_code == 200
    assert service.browser() == leader  # the browser lived on
    after = await proctools.settle(baseline, lambda: proctools.in_groups({leader}))
    FAULT_FIGURES.append(f"tab out of memory: browser processes before {baseline}, after {after}")
    assert after <= baseline
    assert new_zombies() == []


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def test_a_burst_of_50_gets_renders_or_problems_with_retry_after(faults_dashboards: Path) -> None:
    env = {
        "dashboards_file": str(faults_dashboards),
        "render_concurrency": "4",
        "render_queue_size": "8",
        "render_queue_timeout_ms": "20000",
    }
    async with running_service(env) as service:

        async def one(width: int) -> tuple[httpx.Response, float]:
            started = time.monotonic()
            # Each its own viewport: identical requests would share one render (single flight).
            body = {"dashboard": "box", "viewport": {"width": width}}
            response = await service.post("/v1/renders", json=body)
            return response, time.monotonic() - started

        before = (await service.get("/metrics")).text  # counters are the process's, not the app's
        results = await asyncio.gather(*(one(400 + i) for i in range(50)))
        text = (await service.get("/metrics")).text
        assert (await service.post("/v1/renders", json={"dashboard": "box"})).status_code == 200

    accepted = [seconds for response, seconds in results if response.status_code == 200]
    refused = [(response, seconds) for response, seconds in results if response.status_code != 200]
    for response, _ in refused:
        slug = {429: "overloaded", 503: "queue-timeout"}[response.status_code]
        assert_problem(response, response.status_code, slug)
        assert int(response.headers["retry-after"]) >= 1
    for response, _ in results:
        if response.status_code == 200:
            assert response.headers["content-type"] == "image/png"

    def delta(sample: str) -> float:
        return metric(text, sample) - metric(before, sample)

    full = delta('screenshot_render_refused_total{reason="queue-full"}')
    timed_out = delta('screenshot_render_refused_total{reason="queue-timeout"}')
    waits = delta("screenshot_render_queue_wait_seconds_count")
    refused_s = [seconds for _, seconds in refused]
    FAULT_FIGURES.append(
        f"burst of 50 (4 slots, queue 8): accepted {len(accepted)}, refused {len(refused)} "
        f"(429 overloaded {full:.0f}, 503 queue-timeout {timed_out:.0f}); "
        f"accepted latency p50 {percentile(accepted, 0.5):.2f} s, p95 {percentile(accepted, 0.95):.2f} s; "
        f"refused latency p50 {percentile(refused_s, 0.5):.3f} s, p95 {percentile(refused_s, 0.95):.3f} s"
    )
    assert len(accepted) >= 12  # every slot and queue place was used
    assert len(accepted) + full + timed_out == 50
    assert waits == len(accepted)
    assert full >= 1  # 50 at once cannot all fit in 12 places
