"""Real processes for the tests: the service as `screenshot-service serve`, and a Redis server."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from typing import IO

import pytest
import redis

from .servers import closed_port, wait_until_up


@dataclasses.dataclass
class Service:
    """One `screenshot-service serve` process: its base URL, and all it printed once it has stopped."""

    base: str
    log: str = ""


@contextlib.contextmanager
def service_processes(env: Mapping[str, str], count: int = 1) -> Iterator[list[Service]]:
    """``count`` processes of `python -m screenshot_service serve`, started together, with ``env``
    added to this environment.

    Stopped with SIGTERM (as a container platform does), each required to exit cleanly; then each
    ``Service.log`` holds the process's output.
    """
    services = [Service(f"http://127.0.0.1:{closed_port()}") for _ in range(count)]
    with contextlib.ExitStack() as stack:
        for service in services:
            output = stack.enter_context(tempfile.TemporaryFile("w+"))
            port = service.base.rpartition(":")[2]
            full_env = {**os.environ, "SCREENSHOT_HOST": "127.0.0.1", "SCREENSHOT_PORT": port, **env}
            process = subprocess.Popen(
                [sys.executable, "-m", "screenshot_service", "serve"],
                env=full_env,
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
            )
            stack.callback(_stop, process, output, service)
        for service in services:
            wait_until_up(service.base)
        yield services


def _stop(process: subprocess.Popen[str], output: IO[str], service: Service) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            process.wait()
        output.seek(0)
        service.log = output.read()
    assert process.returncode == 0, service.log[-3000:]


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A private Redis on 127.0.0.1 with a password, no persistence; yields its ``redis://`` URL.

    Skips the test when Debian's ``redis-server`` is not installed, unless ``REQUIRE_REDIS=1`` (CI).
    """
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("REQUIRE_REDIS") == "1":
            pytest.fail("redis-server is not installed and REQUIRE_REDIS=1 (apt-get install redis-server)")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = closed_port()
    password = secrets.token_hex(12)
    with tempfile.TemporaryDirectory(prefix="redis-test-") as workdir:
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--requirepass",
                password,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                workdir,
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"redis://:{password}@127.0.0.1:{port}/0"
        try:
            _wait_for_redis(url, process)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_redis(url: str, process: subprocess.Popen[bytes], timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    with redis.Redis.from_url(url, socket_timeout=1) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"redis-server exited with {process.returncode}")
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
    raise AssertionError(f"redis-server did not answer within {timeout_s} s")
