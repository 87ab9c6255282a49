"""The service under test, started one way: ``running_service(env)`` (the real app, served by uvicorn in a
thread of its own) or, where a test needs a real process (signals, start-up, replicas),
``service_processes(env)`` (``python -m screenshot_service serve``). Both take the same settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import IO, Any

import httpx
from litestar import Litestar

from screenshot_service.app import create_app
from screenshot_service.browser.supervisor import Supervisor
from screenshot_service.settings import Settings, load_settings

from .servers import Server, closed_port, free_socket, serve, wait_until_up

API_KEY = "tests-7Kq2xV9pL4mZ8wR3bT6y"
OTHER_KEY = "other-Jd5nB1cY6tH0gF2sQ8u"

BASE_ENV = {
    "SCREENSHOT_API_KEYS": f"tests:{API_KEY},other:{OTHER_KEY}",
    "SCREENSHOT_RENDER_CONCURRENCY": "2",
    # A test's service serves many requests: limits are tested on services of their own.
    "SCREENSHOT_RATE_LIMIT_PER_KEY": "off",
    "SCREENSHOT_RATE_LIMIT_PER_PHONE": "off",
}


def service_env(**settings: str) -> dict[str, str]:
    """``SCREENSHOT_*`` variables of a test service: the base ones, then ``settings`` (setting names)."""
    env = dict(BASE_ENV)
    if chromium := os.environ.get("CHROMIUM"):
        env["SCREENSHOT_CHROMIUM_PATH"] = chromium
    return env | {f"SCREENSHOT_{name.upper()}": value for name, value in settings.items()}


def service_settings(port: int, **settings: str) -> Settings:
    return load_settings(service_env(host="127.0.0.1", port=str(port), **settings))


class ServiceClient(httpx.AsyncClient):
    """A client of a running service that sends the test API key, and sees into the service's app."""

    def __init__(self, server: Server, **kwargs: Any) -> None:
        super().__init__(base_url=server.url, headers={"X-API-Key": API_KEY}, timeout=60, **kwargs)
        self.server = server

    @property
    def app(self) -> Litestar:
        app: Litestar = self.server.app
        return app

    async def open_targets(self) -> tuple[int, int]:
        """(contexts, pages) open in this service's browser, read in the service's own loop."""
        supervisor: Supervisor = self.app.state.supervisor

        async def read() -> tuple[int, int]:
            return supervisor.open_targets()

        return self.server.call(read)

    async def idle_targets(self, timeout_s: float = 15) -> tuple[int, int, int]:
        """(contexts, pages, warm pages) once no render holds a page and the pools are full: every page
        open is a warm one, ``pool_size`` per shared context (a page or a fresh context left open
        breaks the rule); or as they are when ``timeout_s`` passed."""
        supervisor: Supervisor = self.app.state.supervisor

        async def read() -> tuple[int, int, int]:
            return (*supervisor.open_targets(), supervisor.warm_pages())

        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while True:
            contexts, pages, warm = self.server.call(read)
            if pages == warm == contexts * supervisor.pool_size or loop.time() >= end:
                return contexts, pages, warm
            await asyncio.sleep(0.05)

    async def targets_once(
        self, settled: Callable[[tuple[int, int]], bool], timeout_s: float = 15
    ) -> tuple[int, int]:
        """(contexts, pages) once ``settled`` holds for them, or as they are when ``timeout_s`` passed:
        closes that follow an answer or a cancellation take their moment."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while True:
            targets = await self.open_targets()
            if settled(targets) or loop.time() >= end:
                return targets
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_service(env: Mapping[str, str] | None = None) -> AsyncIterator[ServiceClient]:
    """The real service on a free port, in a thread of its own, with a client for it.

    Its temp directory is its own (``temp_dir``) unless ``env`` (setting names) names one.
    """
    with tempfile.TemporaryDirectory(prefix="screenshot-test-") as temp_root:
        sock = free_socket()
        try:
            settings = {"temp_dir": f"{temp_root}/images", **(env or {})}
            app = create_app(service_settings(sock.getsockname()[1], **settings))
        except BaseException:
            sock.close()
            raise
        with serve(app, sock) as server:
            async with ServiceClient(server) as client:
                yield client


async def wait_until_ready(client: httpx.AsyncClient, timeout_s: float = 120) -> httpx.Response:
    """``/readyz`` asked until it answers 200, as a kubelet keeps probing: a browser that is starting,
    or a machine that is busy, may fail the first checks. The last answer, for the failure message."""
    deadline = time.monotonic() + timeout_s
    while True:
        ready = await client.get("/readyz")
        if ready.status_code == 200 or time.monotonic() > deadline:
            return ready
        await asyncio.sleep(0.5)  # the next probe, as a kubelet's period


@dataclasses.dataclass
class ServiceProcess:
    """One `screenshot-service serve` process: its base URL, and all it printed once it has stopped."""

    base: str
    process: subprocess.Popen[str] | None = None
    log: str = ""


@contextlib.contextmanager
def service_processes(
    env: Mapping[str, str], count: int = 1, *, check_exit: bool = True
) -> Iterator[list[ServiceProcess]]:
    """``count`` processes of `python -m screenshot_service serve`, started together, with ``env``
    (``SCREENSHOT_*`` and other variables) over this environment.

    Stopped with SIGTERM (as a container platform does), each required to exit 0 unless ``check_exit``
    is false; then each ``ServiceProcess.log`` holds the process's output.
    """
    services = [ServiceProcess(f"http://127.0.0.1:{closed_port()}") for _ in range(count)]
    with contextlib.ExitStack() as stack:
        for service in services:
            output = stack.enter_context(tempfile.TemporaryFile("w+"))
            port = service.base.rpartition(":")[2]
            full_env = {**os.environ, "SCREENSHOT_HOST": "127.0.0.1", "SCREENSHOT_PORT": port, **env}
            service.process = subprocess.Popen(
                [sys.executable, "-m", "screenshot_service", "serve"],
                env=full_env,
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
            )
            stack.callback(_stop, service, output, check_exit)
        for service in services:
            wait_until_up(service.base)
        yield services


def _stop(service: ServiceProcess, output: IO[str], check_exit: bool) -> None:
    process = service.process
    assert process is not None
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            process.wait()
        output.seek(0)
        service.log = output.read()
    if check_exit:
        assert process.returncode == 0, service.log[-3000:]
