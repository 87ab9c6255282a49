"""Real HTTP servers on 127.0.0.1 for the tests, each in a thread of its own with its own event loop.

A server under test never shares the test's loop: a test that blocks (a sync test, a slow assertion)
cannot stall it, and its renders cannot stall the test's client. ``with serve(app) as server:`` starts
uvicorn, waits until it listens, and stops it on the way out.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import uvicorn

T = TypeVar("T")

START_TIMEOUT_S = 90.0
"""A loaded CI machine can take long to launch a service's Chromium in its lifespan."""


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with free_socket() as sock:
        port: int = sock.getsockname()[1]
    return port


class Server:
    """A uvicorn server running ``app`` in its own thread and event loop."""

    def __init__(self, app: Any, sock: socket.socket) -> None:
        self.app = app
        self._sock = sock
        host, port = sock.getsockname()
        self.url = f"http://{host}:{port}"
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_config=None,
                access_log=False,
                ws="none",
                lifespan="on",
                timeout_graceful_shutdown=1,
                # uvicorn closes idle connections after 5 s; a test client that reuses one just then (a
                # slow render on a busy machine between two calls) would see "Server disconnected".
                timeout_keep_alive=120,
            )
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name=f"server {self.url}", daemon=True)
        self._failed: BaseException | None = None

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            await self._server.serve(sockets=[self._sock])

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by start() or stop()
            self._failed = exc

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive():
                raise AssertionError(f"{self.url} did not start") from self._failed
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.url} did not start within {START_TIMEOUT_S} s")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(60)
        self._sock.close()
        if self._thread.is_alive():
            raise AssertionError(f"{self.url} did not stop within 60 s")

    def call(self, function: Callable[[], Awaitable[T]], timeout_s: float = 30) -> T:
        """Run ``function()`` in the server's own loop (where its objects live) and return its result."""
        assert self._loop is not None
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(
            _awaited(function), self._loop
        )
        return future.result(timeout_s)


async def _awaited(function: Callable[[], Awaitable[T]]) -> T:
    return await function()


@contextlib.contextmanager
def serve(app: Any, sock: socket.socket | None = None) -> Iterator[Server]:
    """Run ``app`` with uvicorn on ``sock`` (a free port by default) in a thread; yields the server."""
    server = Server(app, sock or free_socket())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def wait_until_up(base: str, path: str = "/healthz", timeout_s: float = START_TIMEOUT_S) -> None:
    """Block until ``base + path`` answers 200 (a server started as a process)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}{path}").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{base} did not start within {timeout_s} s")


async def read_body(receive: Any) -> bytes:
    """The whole body of an ASGI HTTP request, for the raw ASGI apps the tests run."""
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body", False):
            return body
