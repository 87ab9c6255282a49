"""Real HTTP servers on 127.0.0.1 for the tests: uvicorn in the test's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator

import httpx
import uvicorn
from litestar import Litestar


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


@contextlib.asynccontextmanager
async def serve(app: Litestar, sock: socket.socket) -> AsyncIterator[str]:
    """Run ``app`` with uvicorn on ``sock`` in this event loop; yields its base URL."""
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        ws="none",
        lifespan="on",
        timeout_graceful_shutdown=1,
        # uvicorn closes idle connections after 5 s; a test client that reuses one just then (a slow
        # render on a busy machine between two calls) would see "Server disconnected".
        timeout_keep_alive=120,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    host, port = sock.getsockname()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def wait_until_up(base: str, path: str = "/healthz", timeout_s: float = 90) -> None:
    """Block until ``base + path`` answers 200 (a server started as a process; a loaded CI machine
    can take long to start one)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}{path}").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{base} did not start within {timeout_s} s")
