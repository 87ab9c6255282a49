"""Shared fixtures: real HTTP servers on 127.0.0.1 (the service, test pages) and a real Chromium."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import httpx
import pytest

from screenshot_service.app import create_app
from screenshot_service.settings import Settings, load_settings

from .figures import FAULT_FIGURES
from .pages import create_pages_app
from .servers import closed_port, free_socket, serve

pytest_plugins = ["tests.emulator_fixtures"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FAULT_FIGURES:
        terminalreporter.write_sep("-", "fault figures")
        for line in FAULT_FIGURES:
            terminalreporter.write_line(line)


API_KEY = "test-key-0123456789abcdef"
OTHER_KEY = "other-key-0123456789abcdef"


def service_settings(sock: socket.socket, **env: str) -> Settings:
    host, port = sock.getsockname()
    base: dict[str, str] = {
        "SCREENSHOT_API_KEYS": f"tests:{API_KEY},other:{OTHER_KEY}",
        "SCREENSHOT_HOST": host,
        "SCREENSHOT_PORT": str(port),
        "SCREENSHOT_RENDER_CONCURRENCY": "2",
        # The session's service serves every test: limits are tested on services of their own.
        "SCREENSHOT_RATE_LIMIT_PER_KEY": "off",
        "SCREENSHOT_RATE_LIMIT_PER_PHONE": "off",
    }
    if chromium := os.environ.get("CHROMIUM"):
        base["SCREENSHOT_CHROMIUM_PATH"] = chromium
    return load_settings({**base, **{f"SCREENSHOT_{k.upper()}": v for k, v in env.items()}})


@contextlib.asynccontextmanager
async def running_service(env: Mapping[str, str] | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """The real service on a free port, with a client that sends the test API key.

    Its temp directory is its own (``SCREENSHOT_TEMP_DIR``) unless ``env`` names one.
    """
    sock = free_socket()
    temp_root = tempfile.TemporaryDirectory(prefix="screenshot-test-")
    app = create_app(service_settings(sock, **{"temp_dir": f"{temp_root.name}/images", **(env or {})}))
    async with (
        serve(app, sock) as url,
        httpx.AsyncClient(base_url=url, headers={"X-API-Key": API_KEY}, timeout=60) as client,
    ):
        client.app = app  # type: ignore[attr-defined]
        try:
            yield client
        finally:
            temp_root.cleanup()


@pytest.fixture(scope="session")
async def pages_url() -> AsyncIterator[str]:
    async with serve(create_pages_app(), free_socket()) as url:
        yield url


@pytest.fixture(scope="session")
def dashboards_file(tmp_path_factory: pytest.TempPathFactory, pages_url: str) -> Path:
    """Test dashboards on the pages server, next to copies of the demo's."""
    path = tmp_path_factory.mktemp("config") / "dashboards.toml"
    path.write_text(
        f"""
default = "sales"

[dashboards.sales]
title = "Sales"
url = "{{service}}/demo/sales?range={{range}}"
wait = {{ selector = "body[data-ready='true']" }}
[dashboards.sales.params.range]
default = "today"
pattern = "today|7d|30d|90d"

[dashboards.sales-unwaited]
title = "Sales, captured without waiting for its data"
url = "{{service}}/demo/sales?range=7d"

[dashboards.box]
url = "{pages_url}/box"
headers_env = {{ "X-Dashboard-Token" = "TEST_DASHBOARD_TOKEN" }}
cookies = [{{ name = "session", value_env = "TEST_DASHBOARD_COOKIE" }}]

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
async def service(dashboards_file: Path) -> AsyncIterator[httpx.AsyncClient]:
    """One service for the session, rendering the test dashboards with Playwright."""
    async with running_service({"dashboards_file": str(dashboards_file)}) as client:
        yield client
