"""The real command: `screenshot-service serve` as a process, its JSON log lines, and a clean SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import httpx
import pytest

from screenshot_service.cli import main

from .support.servers import closed_port, wait_until_up
from .support.service import API_KEY, service_processes


def test_serve_logs_one_json_line_per_render_and_stops_on_sigterm() -> None:
    with service_processes({"SCREENSHOT_API_KEYS": f"n8n:{API_KEY}"}) as (service,):
        response = httpx.post(
            f"{service.base}/v1/renders",
            json={"dashboard": "sales", "params": {"range": "7d"}},
            headers={"X-API-Key": API_KEY, "X-Request-ID": "exec-77"},
            timeout=30,
        )
        assert response.status_code == 200
        assert response.content.startswith(b"\x89PNG")
    # Leaving the block sent SIGTERM and required exit status 0.
    lines = [json.loads(line) for line in service.log.splitlines() if line.startswith("{")]
    renders = [line for line in lines if line.get("event") == "render"]
    assert len(renders) == 1
    assert renders[0]["request_id"] == "exec-77"
    assert renders[0]["key"] == "n8n"
    assert renders[0]["dashboard"] == "sales"
    assert renders[0]["outcome"] == "ok"
    assert isinstance(renders[0]["render_ms"], int)
    assert API_KEY not in service.log


def test_bad_setting_stops_start_up_with_the_variable_named() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "screenshot_service", "serve"],
        env={**os.environ, "SCREENSHOT_API_KEYS": f"n8n:{API_KEY}", "SCREENSHOT_PORT": "eighty"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "SCREENSHOT_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_hides_secrets() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "screenshot_service", "check-config"],
        env={
            **os.environ,
            "SCREENSHOT_API_KEYS": f"n8n:{API_KEY}",
            "SCREENSHOT_META_ACCESS_TOKEN": "EAAG-secret",
        },
        capture_output=True,
        text=True,
        check=True,
    )
    shown = json.loads(result.stdout)
    assert shown["settings"]["api_keys"] == {"n8n": "**********"}
    assert API_KEY not in result.stdout
    assert "EAAG-secret" not in result.stdout


def test_demo_prints_curls_that_work_from_render_to_fetching_the_upload_back() -> None:
    """What a new user does after `make run`: the printed commands, run as printed."""
    port, graph_port = closed_port(), closed_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCREENSHOT_")}
    env["SCREENSHOT_PORT"] = str(port)
    process = subprocess.Popen(
        [sys.executable, "-m", "screenshot_service", "demo", "--emulator-port", str(graph_port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("The dashboard itself"):
                break
        banner = "".join(lines)
        key = re.search(r"Your API key: (\S+)", banner)
        token = re.search(r"Bearer (\S+)'", banner)
        assert key, banner
        assert token, banner
        media_curl = next(line for line in lines if line.strip().endswith("/v1/media"))
        assert f"X-API-Key: {key[1]}" in media_curl
        wait_until_up(f"http://127.0.0.1:{port}")

        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/media",
            json={"dashboard": "sales", "params": {"range": "7d"}},
            headers={"X-API-Key": key[1]},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        media_id = response.json()["media_id"]
        auth = {"Authorization": f"Bearer {token[1]}"}
        info = httpx.get(f"http://127.0.0.1:{graph_port}/v21.0/{media_id}", headers=auth).json()
        assert f"http://127.0.0.1:{graph_port}/whatsapp_business/attachments/?mid=MEDIA_ID" in banner
        image = httpx.get(info["url"], headers=auth)
        assert image.content.startswith(b"\x89PNG")
        assert len(image.content) == response.json()["bytes"]
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    # Both servers run in one process; the emulator's lines say they are its own.
    started = [line for line in rest.splitlines() if "Started server process" in line]
    assert len(started) == 2, rest
    assert ["meta-emulator" in line for line in started].count(True) == 1, started


@pytest.mark.parametrize("command", ["demo", "meta-emulator"])
def test_development_commands_refuse_cleanly_where_the_tools_are_left_out(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As in the production image, whose wheel has no `screenshot_service.dev`."""
    monkeypatch.setitem(sys.modules, "screenshot_service.dev", None)

    assert main([command]) == 2
    assert "development command" in capsys.readouterr().err
