"""The optional pyppeteer engine renders through the same interface, and cleans up after itself."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from pathlib import Path

import pytest

from .support.images import decode
from .support.problems import assert_problem
from .support.service import running_service, service_settings

pytest.importorskip("pyppeteer", reason="the [pyppeteer] extra is not installed")


def chromium_processes() -> int:
    """Chromium processes started by the pyppeteer engine (its profile directories are ours)."""
    found = subprocess.run(
        ["pgrep", "-f", "screenshot-chromium-"], capture_output=True, text=True, check=False
    )
    return len(found.stdout.split())


async def test_renders_and_cleans_up(dashboards_file: Path) -> None:
    before = chromium_processes()
    async with running_service({"engine": "pyppeteer", "dashboards_file": str(dashboards_file)}) as client:
        assert chromium_processes() > before
        sales = await client.post("/v1/renders", json={"dashboard": "sales", "params": {"range": "30d"}})
        assert sales.status_code == 200, sales.text
        assert decode(sales.content).size == (1280, 800)
        clip = await client.post("/v1/renders", json={"dashboard": "box-clip"})
        assert decode(clip.content).size == (600, 300)
        missing = {"dashboard": "box", "selector": "#no-such-element"}
        assert_problem(await client.post("/v1/renders", json=missing), 422, "invalid-request")
        assert_problem(
            await client.post("/v1/renders", json={"dashboard": "never-ready"}), 504, "render-timeout"
        )
        assert_problem(await client.post("/v1/renders", json={"dashboard": "hang"}), 504, "render-timeout")
        # The browser is still usable after timed-out (cancelled) calls, and no page is left open.
        again = await client.post("/v1/renders", json={"dashboard": "box"})
        assert again.status_code == 200, again.text
        contexts, pages, warm = await client.idle_targets()
        assert pages == warm == contexts * client.app.state.supervisor.pool_size  # closed; pools full
    assert chromium_processes() == before  # terminated and reaped: no orphan, no zombie


async def test_a_start_cancelled_while_chromium_launches_closes_what_it_opened(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from screenshot_service.browser import pyppeteer as engine_module  # noqa: PLC0415  (optional extra)

    spawned = asyncio.Event()
    read_endpoint = engine_module._read_endpoint

    async def read_endpoint_seen(stream: asyncio.StreamReader) -> str:
        spawned.set()  # Chromium is spawned; its DevTools address is not read yet
        return await read_endpoint(stream)

    monkeypatch.setattr(engine_module, "_read_endpoint", read_endpoint_seen)
    engine = engine_module.PyppeteerEngine(service_settings(0, engine="pyppeteer"), lambda: None)
    starting = asyncio.ensure_future(engine.start())
    await asyncio.wait_for(spawned.wait(), 30)
    pid = engine.pid
    assert pid is not None
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    try:
        # Chromium is stopped and reaped (its helpers are killed with its process group), and the
        # egress port closed: left open, its socket's ResourceWarning fails a later test.
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert not engine._egress._ports
    finally:
        await engine.close()  # (nothing left to close when the start cleaned up)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
