"""Readiness presets against the real dashboard apps (Streamlit, Plotly Dash, HoloViz Panel) from
PyPI, started here on 127.0.0.1 with data that arrives late: the preset's capture shows the late
panel, a capture at ``load`` does not. The apps live in their own cached virtualenv
(tests/apps/install-apps.sh); with REQUIRE_APPS=1 (CI) a missing one fails instead of skipping."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from .support.images import colour_share
from .support.servers import closed_port, wait_until_up
from .support.service import ServiceClient, running_service

pytestmark = pytest.mark.slow

APPS = Path(__file__).parent / "apps"
LATE_RED = (200, 0, 0)
"""The colour of each app's late panel (600 x 300 CSS pixels)."""


def apps_python() -> Path:
    found = subprocess.run(
        ["bash", str(APPS / "install-apps.sh"), "--cached"], capture_output=True, text=True, check=False
    )
    if found.returncode != 0:
        message = (
            "the dashboard apps are not installed: run tests/apps/install-apps.sh (or set REQUIRE_APPS=1)"
        )
        if os.environ.get("REQUIRE_APPS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return Path(found.stdout.strip())


def app_command(python: Path, app: str, port: int) -> tuple[list[str], str, str]:
    """How to start ``app`` on ``port``: its command line, its page's path, and a path that answers
    200 once it is up."""
    address = ["--address", "127.0.0.1", "--port", str(port)]
    if app == "streamlit":
        flags = ["--server.headless", "true", "--browser.gatherUsageStats", "false"]
        flags += ["--server.address", "127.0.0.1", "--server.port", str(port)]
        return [str(python), "-m", "streamlit", "run", "streamlit_app.py", *flags], "/", "/_stcore/health"
    if app == "dash":
        return [str(python), "dash_app.py", str(port)], "/", "/"
    origin = ["--allow-websocket-origin", f"127.0.0.1:{port}"]
    return (
        [str(python), "-m", "panel", "serve", "panel_app.py", *address, *origin],
        "/panel_app",
        "/panel_app",
    )


@pytest.fixture(scope="module")
def app_urls() -> Iterator[dict[str, str]]:
    """The three apps, started for the module; their page URLs by name."""
    python = apps_python()
    started: list[subprocess.Popen[bytes]] = []
    urls = {}
    try:
        for app in ("streamlit", "dash", "panel"):
            port = closed_port()
            command, page, health = app_command(python, app, port)
            env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_PROXY": "127.0.0.1"}
            started.append(
                subprocess.Popen(command, cwd=APPS, env=env, stdout=subprocess.DEVNULL, stderr=sys.stderr)
            )
            urls[app] = f"http://127.0.0.1:{port}{page}"
            wait_until_up(f"http://127.0.0.1:{port}", health)
        yield urls
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
async def apps_service(
    tmp_path_factory: pytest.TempPathFactory, app_urls: dict[str, str]
) -> AsyncIterator[ServiceClient]:
    path = tmp_path_factory.mktemp("apps") / "dashboards.toml"
    path.write_text(
        "".join(
            f'[dashboards.{app}]\nurl = "{url}"\nviewport = {{ width = 1000, height = 700 }}\n'
            f'wait = {{ preset = "{app}" }}\ntimeout_ms = 30000\n\n'
            f'[dashboards.{app}-at-load]\nurl = "{url}"\nviewport = {{ width = 1000, height = 700 }}\n'
            'wait = { until = "load" }\n\n'
            for app, url in app_urls.items()
        ),
        encoding="utf-8",
    )
    async with running_service({"dashboards_file": str(path)}) as client:
        yield client


def late_share(png: bytes) -> float:
    """Share of the image in the late panel's red."""
    return colour_share(png, LATE_RED)


@pytest.mark.parametrize("app", ["streamlit", "dash", "panel"])
async def test_the_preset_waits_for_the_apps_late_data(apps_service: ServiceClient, app: str) -> None:
    at_load = await apps_service.post("/v1/renders", json={"dashboard": f"{app}-at-load"})
    preset = await apps_service.post("/v1/renders", json={"dashboard": app})

    assert at_load.status_code == 200, at_load.text
    assert late_share(at_load.content) < 0.01  # at `load` the data has not come: the test can fail
    assert preset.status_code == 200, preset.text
    assert late_share(preset.content) > 0.2, preset.headers["x-render-readiness"]  # 600x300 of 1000x700
    header = preset.headers["x-render-readiness"]
    assert header.startswith(f"ready; condition=load+preset:{app};"), header
