"""Warm pages and light-when-idle, on both engines: a render on a warm context starts at navigation on
a page opened ahead of need and never used before; the pool is refilled after it and closed with its
browser; a dashboard context not used lately is closed, and an idle browser released and relaunched by
the next render (not by readiness probes)."""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from screenshot_service.browser.supervisor import Supervisor

from .support.images import decode
from .support.metrics import Metrics
from .support.pages import FRESH_COLOUR
from .support.service import ServiceClient, running_service

ENGINES = [
    pytest.param("playwright"),
    pytest.param(
        "pyppeteer",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("pyppeteer") is None, reason="the [pyppeteer] extra is not installed"
        ),
    ),
]


def supervisor_of(client: ServiceClient) -> Supervisor:
    supervisor: Supervisor = client.app.state.supervisor
    return supervisor


def browser_up(supervisor: Supervisor) -> bool:
    """Whether the service has a browser connected (read anew: mypy would narrow the property)."""
    return supervisor.connected


def browser_pid(supervisor: Supervisor) -> int:
    pid = supervisor.browser_pid
    assert pid is not None, "no browser is up"
    return pid


async def render_fresh(client: ServiceClient) -> tuple[int, int, int]:
    """Render the page that shows whether its tab rendered before; its top-left pixel."""
    response = await client.post("/v1/renders", json={"dashboard": "fresh"})
    assert response.status_code == 200, response.text
    pixel = decode(response.content).convert("RGB").getpixel((5, 5))
    assert isinstance(pixel, tuple)
    return (pixel[0], pixel[1], pixel[2])


async def pool_counts(client: ServiceClient) -> tuple[float, float, float]:
    """(pages opened by a render's own open-page step, pool hits, pool misses) so far."""
    scrape = await Metrics.read(client)
    return (
        scrape.value("screenshot_render_step_seconds_count", step="open-page"),
        scrape.value("screenshot_page_pool_total", result="hit"),
        scrape.value("screenshot_page_pool_total", result="miss"),
    )


async def until(condition: Callable[[], bool | Awaitable[bool]], timeout_s: float = 60) -> bool:
    """Whether ``condition`` came true within ``timeout_s`` (asked every 0.1 s): the wait for an event
    the service has no hook for, bounded."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while True:
        answer = condition()
        if await answer if inspect.isawaitable(answer) else answer:
            return True
        if loop.time() >= end:
            return False
        await asyncio.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("engine", ENGINES)
async def test_renders_take_warm_pages_each_used_once_and_the_pool_refills(
    dashboards_file: Path, engine: str
) -> None:
    env = {"engine": engine, "dashboards_file": str(dashboards_file), "page_pool_size": "2"}
    async with running_service(env) as client:
        # The first render of a dashboard opens its context and its own page; the pool fills after it.
        assert await render_fresh(client) == FRESH_COLOUR
        assert await client.idle_targets() == (1, 2, 2)
        for _ in range(3):
            opened, hits, misses = await pool_counts(client)
            # A page that rendered before would show red: every render gets a page of its own.
            assert await render_fresh(client) == FRESH_COLOUR
            assert await pool_counts(client) == (opened, hits + 1, misses)  # no page opened in the render
            assert await client.idle_targets() == (1, 2, 2)  # refilled: the one taken is replaced


@pytest.mark.parametrize("engine", ENGINES)
async def test_pools_close_with_their_browser_on_recycle_crash_and_shutdown(
    dashboards_file: Path, engine: str
) -> None:
    env = {"engine": engine, "dashboards_file": str(dashboards_file), "browser_recycle_after": "2"}
    browsers: set[int] = set()
    async with running_service(env) as client:
        supervisor = supervisor_of(client)
        pool = supervisor.pool_size
        assert pool > 0
        for _ in range(2):  # the second is a pool hit; then the browser is recycled, its pool with it
            browsers.add(browser_pid(supervisor))
            assert await render_fresh(client) == FRESH_COLOUR
        assert await until(lambda: supervisor.generation == 2)
        assert await until(lambda: not any(alive(pid) for pid in browsers))
        assert await render_fresh(client) == FRESH_COLOUR
        assert await client.idle_targets() == (1, pool, pool)
        # Killed with its warm pages open: the next render gets a new browser and a new pool.
        pid = browser_pid(supervisor)
        browsers.add(pid)
        os.killpg(pid, signal.SIGKILL)
        assert await until(lambda: supervisor.generation == 3)
        assert await render_fresh(client) == FRESH_COLOUR
        assert await client.idle_targets() == (1, pool, pool)
        browsers.add(browser_pid(supervisor))
    assert not any(alive(pid) for pid in browsers)  # shut down with its pool: nothing left running


@pytest.mark.parametrize("engine", ENGINES)
async def test_idle_contexts_are_closed_and_an_idle_browser_released_until_the_next_render(
    dashboards_file: Path, engine: str
) -> None:
    env = {
        "engine": engine,
        "dashboards_file": str(dashboards_file),
        "context_idle_s": "1",
        "browser_idle_release_s": "3",
        "ready_cache_s": "0",  # every probe below is a real check
    }
    async with running_service(env) as client:
        supervisor = supervisor_of(client)
        before = await Metrics.read(client)
        assert await render_fresh(client) == FRESH_COLOUR
        pid = browser_pid(supervisor)

        # The dashboard's context (and its warm pages) is closed a second after its render.
        async def trimmed() -> bool:
            scrape = await Metrics.read(client)
            return scrape.value("screenshot_contexts_trimmed_total") > before.value(
                "screenshot_contexts_trimmed_total"
            )

        assert await until(trimmed)

        # Probing readiness all along neither keeps the browser up nor relaunches it once released.
        async def released() -> bool:
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            return supervisor.released

        assert await until(released)
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["browser"].startswith("released")
        assert supervisor.generation == 1
        assert supervisor.browser_pid is None
        assert await client.open_targets() == (0, 0)
        assert await until(lambda: not alive(pid))  # Chromium is gone, not just idle
        # What screenshot_browser_up and _released read (those gauges are the process's: any service).
        assert not browser_up(supervisor)
        scrape = await Metrics.read(client)  # counters are the process's too: other services count
        assert scrape.value("screenshot_browser_idle_releases_total") > before.value(
            "screenshot_browser_idle_releases_total"
        )
        restarts = scrape.value("screenshot_browser_restarts_total")

        # The next render launches a browser again and succeeds.
        assert await render_fresh(client) == FRESH_COLOUR
        assert supervisor.generation == 2
        assert browser_up(supervisor)
        assert not supervisor.released
        scrape = await Metrics.read(client)
        assert scrape.value("screenshot_browser_restarts_total") == restarts  # a release is no crash
