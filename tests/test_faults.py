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

from screenshot_service.browser import processes as procs

from .support import browsers
from .support.browsers import ServiceBrowser
from .support.figures import FAULT_FIGURES
from .support.metrics import Metrics
from .support.problems import assert_problem
from .support.service import ServiceClient, running_service, wait_until_ready

pytestmark = pytest.mark.slow


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

[dashboards.hang]
url = "{pages_url}/hang"

[dashboards.hog]
url = "{pages_url}/hog"
wait = {{ selector = "#never" }}
timeout_ms = 15000
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture(
    params=["playwright", pytest.param("pyppeteer", marks=pytest.mark.pyppeteer)],
)
async def service(faults_dashboards: Path, request: pytest.FixtureRequest) -> AsyncIterator[ServiceBrowser]:
    others = set(browsers.browser_leaders())
    env = {
        "dashboards_file": str(faults_dashboards),
        "ready_cache_s": "0",
        "page_heap_mb": "64",
        "engine": request.param,
        # These tests count the browser's processes: each warm page is a renderer of its own, so a new
        # dashboard context's pool would look like a process left behind. The pool's own closing on
        # recycle, crash and shutdown is tested in test_page_pool.py.
        "page_pool_size": "0",
    }
    async with running_service(env) as client:
        yield ServiceBrowser(client, others, request.param)


@pytest.fixture
def new_zombies() -> Callable[[], list[procs.Proc]]:
    """Unreaped orphans that were not there when the test began: in a full run, earlier tests' own
    helpers (a bench, a Chromium driven directly) can leave theirs to this process, its subreaper."""
    before = {p.pid for p in browsers.unreaped()}
    return lambda: [p for p in browsers.unreaped() if p.pid not in before]


async def wait_for_open_page(service: ServiceClient) -> None:
    _, pages = await service.targets_once(lambda targets: targets[1] > 0)
    assert pages > 0, "the render never opened its page"


async def test_chromium_killed_mid_render_fails_fast_and_the_next_render_works(
    new_zombies: Callable[[], list[procs.Proc]], service: ServiceBrowser
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
    # At once, not at the page's 15 s timeout (a third of it leaves room for a loaded machine).
    assert failed_after < 5, f"the render took {failed_after:.1f} s to fail"
    # The probe itself waits for the relaunch (or starts it): a replica taken out of traffic comes back
    # without needing a render to wake its browser.
    ready = await wait_until_ready(http)
    assert ready.status_code == 200, ready.text
    assert service.browser() != leader
    assert (await http.post("/v1/renders", json={"dashboard": "box"})).status_code == 200
    successor = service.browser()
    after = await browsers.settle(baseline, lambda: browsers.in_groups({leader, successor}))
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
    new_zombies: Callable[[], list[procs.Proc]], service: ServiceBrowser, dashboard: str, step: str
) -> None:
    http = service.http
    leader, baseline = await service.warm()

    response = await http.post("/v1/renders", json={"dashboard": dashboard, "timeout_ms": 2000})

    problem = assert_problem(response, 504, "render-timeout")
    assert problem["step"] == step
    assert (await http.post("/v1/renders", json={"dashboard": "box"})).status_code == 200
    assert service.browser() == leader  # a hung page costs its page, not the browser
    after = await browsers.settle(baseline, lambda: browsers.in_groups({leader}))
    FAULT_FIGURES.append(
        f"page that hangs at {step} ({service.engine}): browser processes before {baseline}, after {after}"
    )
    assert after <= baseline
    assert new_zombies() == []


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
    recycles = "screenshot_browser_recycles_total"
    # Counters are the process's, not the app's: the test counts what changes while it runs.
    before = Metrics(prometheus_client.generate_latest().decode()).value(recycles, reason=reason)
    async with (
        browsers.LeaderWatch() as watch,
        running_service({"dashboards_file": str(faults_dashboards), **env}) as service,
    ):
        statuses = []
        for wave in range(2):  # waves of concurrent renders, while browsers are replaced under them
            # Distinct requests (identical ones would share one render): three renders a wave.
            bodies = [{"dashboard": "box", "viewport": {"width": 600 + 10 * wave + i}} for i in range(3)]
            renders = [service.post("/v1/renders", json=body) for body in bodies]
            statuses += [r.status_code for r in await asyncio.gather(*renders)]
            if wave == 0:  # the second wave runs once the first browser has been replaced
                await watch.wait_for(2)
        recycled = (await Metrics.read(service)).value(recycles, reason=reason) - before
        running = browsers.in_groups(watch.seen)
    after = browsers.in_groups(watch.seen)
    FAULT_FIGURES.append(
        f"recycling ({reason}): {recycled:.0f} browsers replaced over {len(statuses)} renders, "
        f"{len(watch.seen)} browsers in all; their processes while running {running}, "
        f"after shutdown {after}"
    )
    assert statuses == [200] * len(statuses)
    assert recycled >= 1
    assert len(watch.seen) >= 2
    assert after == 0
    assert new_zombies() == []


@pytest.mark.parametrize("service", ["playwright"], indirect=True)  # pyppeteer: see the kill test
async def test_a_page_that_eats_memory_crashes_its_tab_not_the_browser(
    new_zombies: Callable[[], list[procs.Proc]], service: ServiceBrowser
) -> None:
    http = service.http
    leader, baseline = await service.warm()

    response = await http.post("/v1/renders", json={"dashboard": "hog"})

    problem = assert_problem(response, 502, "page-crashed")
    assert "memory" in str(problem["detail"])
    assert (await http.post("/v1/renders", json={"dashboard": "box"})).status_code == 200
    assert service.browser() == leader  # the browser lived on
    after = await browsers.settle(baseline, lambda: browsers.in_groups({leader}))
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

        before = await Metrics.read(service)  # counters are the process's, not the app's
        results = await asyncio.gather(*(one(400 + i) for i in range(50)))
        after = await Metrics.read(service)
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

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    full = delta("screenshot_render_refused_total", reason="queue-full")
    timed_out = delta("screenshot_render_refused_total", reason="queue-timeout")
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
