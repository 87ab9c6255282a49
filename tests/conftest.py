"""Fixtures: real servers on 127.0.0.1 (test pages, the Meta emulator, the service) and their clients.

What the fixtures stand on is in ``tests/support``; tests import from there, never from each other.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import stamina
from litestar import Litestar

from screenshot_service.dev.meta_emulator import create_emulator_app
from screenshot_service.whatsapp.graph import GraphClient
from screenshot_service.whatsapp.tempfiles import TempImages

from .support.browsers import ExternalChromium
from .support.emulator import APP_ID, APP_SECRET, EMULATOR_TOKEN, PHONE_NUMBER_ID, Emulator, meta_settings
from .support.figures import FAULT_FIGURES
from .support.pages import create_pages_app
from .support.servers import closed_port, serve
from .support.service import ServiceClient, running_service


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FAULT_FIGURES:
        terminalreporter.write_sep("-", "fault figures")
        for line in FAULT_FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def pages_app() -> Litestar:
    return create_pages_app()


@pytest.fixture(scope="session")
def pages_url(pages_app: Litestar) -> Iterator[str]:
    """The test pages (support/pages.py) and the demo dashboard, served for the session."""
    with serve(pages_app) as server:
        yield server.url


@pytest.fixture(scope="session")
def dashboards_file(tmp_path_factory: pytest.TempPathFactory, pages_url: str) -> Path:
    """Test dashboards on the pages server, the demo's among them."""
    path = tmp_path_factory.mktemp("config") / "dashboards.toml"
    path.write_text(
        f"""
default = "sales"

[dashboards.sales]
title = "Sales"
url = "{pages_url}/demo/sales?range={{range}}"
wait = {{ selector = "body[data-ready='true']" }}
[dashboards.sales.params.range]
default = "today"
values = ["today", "7d", "30d", "90d"]

[dashboards.sales-unwaited]
title = "Sales, captured without waiting for its data"
url = "{pages_url}/demo/sales?range=7d"
wait = {{ until = "load" }}

[dashboards.sales-auto]
title = "Sales, with no wait configured: ready when still"
url = "{pages_url}/demo/sales?range=7d"

[dashboards.late]
url = "{pages_url}/readiness/late"
viewport = {{ width = 640, height = 420 }}

[dashboards.late-at-load]
url = "{pages_url}/readiness/late"
viewport = {{ width = 640, height = 420 }}
wait = {{ until = "load" }}

[dashboards.never-still]
url = "{pages_url}/readiness/never-still"
timeout_ms = 4000

[dashboards.never-still-refused]
url = "{pages_url}/readiness/never-still"
wait = {{ refuse_partial = true }}
timeout_ms = 4000

[dashboards.spinner]
url = "{pages_url}/readiness/spinner"

[dashboards.box]
url = "{pages_url}/box"
headers_env = {{ "X-Dashboard-Token" = "TEST_DASHBOARD_TOKEN" }}
cookies = [{{ name = "session", value_env = "TEST_DASHBOARD_COOKIE" }}]

[dashboards.fresh]
url = "{pages_url}/fresh"
viewport = {{ width = 320, height = 200 }}

[dashboards.box-clip]
url = "{pages_url}/box"
selector = "#box"
viewport = {{ width = 800, height = 600, scale = 2 }}

[dashboards.noise]
url = "{pages_url}/noise"
viewport = {{ width = 1600, height = 1200 }}
wait = {{ selector = "body[data-ready='true']" }}

[dashboards.never-ready]
url = "{pages_url}/never-ready"
wait = {{ selector = "#never" }}
timeout_ms = 4000  # long enough that even a loaded machine gets past navigation

[dashboards.hang]
url = "{pages_url}/hang"
timeout_ms = 1500

[dashboards.broken]
url = "{pages_url}/broken"

[dashboards.unreachable]
url = "http://127.0.0.1:{closed_port()}/"
""",
        encoding="utf-8",
    )
    os.environ.setdefault("TEST_DASHBOARD_TOKEN", "dash-secret-token-42")
    os.environ.setdefault("TEST_DASHBOARD_COOKIE", "cookie-secret-77")
    return path


@pytest.fixture(scope="session")
async def service(dashboards_file: Path) -> AsyncIterator[ServiceClient]:
    """One service for the session, rendering the test dashboards with Playwright."""
    async with running_service({"dashboards_file": str(dashboards_file)}) as client:
        yield client


@pytest.fixture(scope="session")
def meta_emulator_url() -> Iterator[str]:
    """One emulator for the session; it accepts only ``EMULATOR_TOKEN`` and ``PHONE_NUMBER_ID``."""
    app = create_emulator_app(
        EMULATOR_TOKEN, phone_number_id=PHONE_NUMBER_ID, app_id=APP_ID, app_secret=APP_SECRET
    )
    with serve(app) as server:
        yield server.url


@pytest.fixture
async def emulator(meta_emulator_url: str) -> AsyncIterator[Emulator]:
    """The session's emulator, reset: no faults queued, nothing received."""
    async with httpx.AsyncClient(base_url=meta_emulator_url, timeout=30) as client:
        control = Emulator(meta_emulator_url, client)
        await control.reset()
        yield control


@pytest.fixture
def no_backoff() -> Iterator[None]:
    """Retries without sleeping; our own attempt limit still applies (``cap=True``)."""
    with stamina.set_testing(True, attempts=10, cap=True):
        yield


@pytest.fixture
async def meta(emulator: Emulator, tmp_path: Path, no_backoff: None) -> AsyncIterator[GraphClient]:
    """A started Graph API client talking to the emulator."""
    async with GraphClient(meta_settings(emulator.url, tmp_path=tmp_path)) as client:
        yield client


@pytest.fixture
async def temp_images(tmp_path: Path) -> TempImages:
    temp = TempImages(tmp_path / "images")
    await temp.sweep()
    return temp


@pytest.fixture
def remote_chromium() -> Iterator[ExternalChromium]:
    """A Chromium the service did not launch, DevTools on 127.0.0.1, as another team's would run."""
    with tempfile.TemporaryDirectory(prefix="external-chromium-") as profile:
        browser = ExternalChromium(closed_port(), profile)
        browser.start()
        try:
            yield browser
        finally:
            browser.stop()
