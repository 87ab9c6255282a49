"""The browser's network is closed by construction: a hostile page fires every kind of request it can
at a private listener, and the listener never sees a connection, not even a bare TCP connect.

The page (support/pages.py, HOSTILE_PAGE) makes navigations, redirects, subresources, iframes, forms,
media, workers, shared and service workers, WebSockets, EventSource, speculation rules, prefetch,
preload and preconnect links, beacons and keepalive fetches (also on unload), XHR, window.open and
meta refresh. It sends the kinds a render always makes to a canary on its own origin as well, and its
load event waits for the canary, so when the render answers, the page has made them all.

Rendered as a dashboard (its origin trusted) and as a raw URL, with both engines and a remote browser.
The listener is on 127.0.0.2, the pages on 127.0.0.1: the policy trusts (or allows) only the latter.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar

from screenshot_service.guard.netpolicy import Gate, NetPolicy

from .support.browsers import ExternalChromium
from .support.metrics import Metrics
from .support.pages import CANARY_KINDS, box_visits, create_pages_app, egress_state
from .support.servers import serve
from .support.service import running_service, wait_until_ready

PRIVATE_HOST = "127.0.0.2"


class Listener:
    """A TCP listener that accepts and records every connection, then closes it."""

    def __init__(self) -> None:
        self._socket = socket.create_server((PRIVATE_HOST, 0))
        self._socket.settimeout(0.2)
        self.url = f"http://{PRIVATE_HOST}:{self._socket.getsockname()[1]}"
        self.connections: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(0.5)
                try:
                    first = connection.recv(200)
                except OSError:
                    first = b""
                self.connections.append(first or b"(bare connect)")

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    private = Listener()
    try:
        yield private
    finally:
        private.close()


@pytest.fixture
def pages(listener: Listener) -> Iterator[tuple[Litestar, str]]:
    """A pages server of its own, its canary and redirect aimed at this test's listener."""
    app = create_pages_app()
    app.state.update(egress_state(listener.url))
    with serve(app) as server:
        yield app, server.url


def dashboards(tmp_path: Path, pages_url: str, listener: Listener) -> Path:
    path = tmp_path / "dashboards.toml"
    path.write_text(
        f"""
[dashboards.hostile]
url = "{pages_url}/egress/hostile?target={listener.url}"
wait = {{ selector = "body[data-ready='true']" }}
timeout_ms = 60000
""",
        encoding="utf-8",
    )
    return path


@contextlib.asynccontextmanager
async def browser_service(
    engine: str, env: dict[str, str], request: pytest.FixtureRequest
) -> AsyncIterator[Any]:
    if engine == "pyppeteer":
        pytest.importorskip("pyppeteer", reason="the [pyppeteer] extra is not installed")
    settings = {"engine": engine.removesuffix("-remote"), **env}
    if engine.endswith("-remote"):
        remote: ExternalChromium = request.getfixturevalue("remote_chromium")
        settings |= {"browser_ws_endpoint": remote.http_url, "chromium_path": "/nonexistent"}
    async with running_service(settings) as service:
        ready = await wait_until_ready(service)  # the browser launched or connected to, first
        assert ready.status_code == 200, ready.text
        yield service


ENGINES = [
    pytest.param("playwright", id="playwright"),
    pytest.param("pyppeteer", id="pyppeteer", marks=pytest.mark.pyppeteer),
    pytest.param("playwright-remote", id="remote-browser"),
    pytest.param("pyppeteer-remote", id="pyppeteer-remote-browser", marks=pytest.mark.pyppeteer),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("mode", ["dashboard", "raw-url"])
async def test_no_request_of_a_hostile_page_reaches_a_private_listener(  # noqa: PLR0917 (fixtures)
    engine: str,
    mode: str,
    listener: Listener,
    pages: tuple[Litestar, str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    app, pages_url = pages
    page_url = f"{pages_url}/egress/hostile?target={listener.url}"
    if mode == "dashboard":
        env = {"dashboards_file": str(dashboards(tmp_path, pages_url, listener))}
        body: dict[str, Any] = {"dashboard": "hostile"}
    else:
        # Raw URLs may go to the pages' address only: the listener's is loopback like any other.
        env = {"allow_raw_urls": "true", "url_allowlist": "127.0.0.1", "allowed_networks": "127.0.0.1/32"}
        body = {"url": page_url, "timeout_ms": 60_000}
    async with browser_service(engine, env, request) as service:
        before = (await Metrics.read(service)).value("screenshot_blocked_requests_total")
        response = await service.post("/v1/renders", json=body)
        assert response.status_code == 200, response.text
        blocked = (await Metrics.read(service)).value("screenshot_blocked_requests_total") - before

    assert app.state.canary >= CANARY_KINDS, "the page did not make every kind of request"
    assert listener.connections == [], f"reached the private listener: {listener.connections}"
    assert blocked > 0, "the refusals are counted"


@pytest.mark.parametrize(
    "engine",
    [
        pytest.param("playwright", id="playwright"),
        pytest.param("pyppeteer", id="pyppeteer", marks=pytest.mark.pyppeteer),
    ],
)
async def test_a_dashboards_headers_go_to_its_own_origin_only(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The page at the dashboard's origin loads /box from itself and from another origin: only the
    first request carries the dashboard's header."""
    own_app, other_app = create_pages_app(), create_pages_app()
    with serve(own_app) as own, serve(other_app) as other:
        path = tmp_path / "dashboards.toml"
        path.write_text(
            f"""
[dashboards.framed]
url = "{own.url}/egress/framed?other={other.url}"
wait = {{ selector = "body[data-ready='true']" }}
headers_env = {{ "X-Dashboard-Token" = "EGRESS_TEST_TOKEN" }}
""",
            encoding="utf-8",
        )
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("EGRESS_TEST_TOKEN", "dash-secret-token-42")
            env = {"dashboards_file": str(path), "allowed_networks": "127.0.0.1/32"}
            async with browser_service(engine, env, request) as service:
                response = await service.post("/v1/renders", json={"dashboard": "framed"})
    assert response.status_code == 200, response.text
    assert ("dash-secret-token-42", None) in box_visits(own_app)
    assert box_visits(other_app), "the page did load the other origin's /box"
    assert all(token is None for token, _ in box_visits(other_app))


class _Resolver:
    """DNS that rebinds: a public address for the first answer, loopback after."""

    def __init__(self) -> None:
        self.answers = ["93.184.215.14", "127.0.0.2"]
        self.asked = 0

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked += 1
        return [self.answers[min(self.asked - 1, 1)]]


async def test_dns_rebinding_gets_nowhere_the_proxy_connects_to_what_it_checked(
    listener: Listener,
) -> None:
    """The proxy resolves once and connects to that address: a name that rebinds to loopback after the
    check never reaches the loopback listener. Asked again, the rebound answer is refused."""
    from screenshot_service.guard.egress import EgressProxy  # noqa: PLC0415

    resolver = _Resolver()
    gate = Gate(NetPolicy(resolver=resolver), trusted_origin=None, allowlisted_navigation=False)
    proxy = EgressProxy()
    port = await proxy.open(gate)
    try:
        target = f"http://rebind.test:{listener.url.rsplit(':', 1)[1]}/"
        async with httpx.AsyncClient(proxy=port.url, timeout=15) as client:
            first = await client.get(target)  # checked public, connected to the public address
            second = await client.get(target)  # the name now says 127.0.0.2: refused
    finally:
        await proxy.close()
    assert first.status_code == 502  # the public address is not reachable from here
    assert second.status_code == 403
    assert resolver.asked == 2
    assert listener.connections == []


async def test_each_request_reaches_the_origin_in_origin_form() -> None:
    """The proxy rewrites a connection's first request only, so it asks the origin to close after it:
    a browser's next request then comes on a new connection, rewritten too, never in absolute form
    (which Tornado, under Streamlit and Panel, answers 404)."""
    from screenshot_service.guard.egress import EgressProxy  # noqa: PLC0415

    lines: list[bytes] = []

    async def origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines.append(head.split(b"\r\n", 1)[0])
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
                if b"\r\nconnection: close\r\n" in head.lower():
                    break
        writer.close()

    server = await asyncio.start_server(origin, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proxy = EgressProxy()
    gate = Gate(NetPolicy(), trusted_origin=f"http://127.0.0.1:{port}", allowlisted_navigation=False)
    proxied = await proxy.open(gate)
    try:
        async with httpx.AsyncClient(proxy=proxied.url, timeout=15) as client:  # keeps connections alive
            answers = [await client.get(f"http://127.0.0.1:{port}/static/{n}.js") for n in range(3)]
    finally:
        await proxy.close()
        server.close()
        await server.wait_closed()
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert lines == [f"GET /static/{n}.js HTTP/1.1".encode() for n in range(3)]
