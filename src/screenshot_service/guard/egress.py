"""The browser's only way out: an HTTP proxy of our own that checks every connection it is asked for.

Interception on DevTools targets cannot see every request Chromium makes (speculation rules, shared and
service workers, beacons fired as a page closes, bare connects before a navigation is refused). So each
browser context is given a proxy port of its own (``--proxy-server`` semantics, loopback included), and
Chromium never connects anywhere but to it. For each request the proxy:

1. reads the request head: ``CONNECT host:port`` (HTTPS, WSS: the TLS inside is not touched) or an
   absolute-form ``http://`` request (plain HTTP and WebSocket upgrades); anything else is refused;
2. resolves the host itself and checks every address with the context's :class:`~.netpolicy.Gate`;
3. connects to an address it checked (DNS pinning: nothing resolves the name again, so rebinding is
   closed), then relays bytes both ways.

A refusal is a ``403`` to Chromium (the page sees a network error), counted in
``screenshot_blocked_requests_total{reason}`` and logged with the host and reason, never the path.
The port identifies the context: no credential travels, and a port dies with its context.

A small asyncio proxy rather than a library: what is needed is the two request forms above, pinning
and a per-port policy, about 200 lines; proxy.py and mitmproxy bring their own event loops, TLS
interception and plugin APIs for much more.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit

import structlog

from .. import metrics
from .netpolicy import DEFAULT_PORTS, Gate

log = structlog.get_logger(__name__)

HEAD_LIMIT: Final = 64 * 1024
HEAD_TIMEOUT_S: Final = 30.0
CONNECT_TIMEOUT_S: Final = 10.0
CLOSE_TIMEOUT_S: Final = 5.0
_HOP_BY_HOP: Final = frozenset({b"proxy-connection", b"proxy-authorization", b"keep-alive"})


class EgressProxy:
    """One listening port per browser context, each applying that context's gate."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        self._ports: set[EgressPort] = set()

    async def open(self, gate: Gate | None) -> EgressPort:
        """A port whose connections ``gate`` checks; ``None`` refuses every connection (the browser's
        default route, for anything made outside a context of ours)."""
        relays: set[asyncio.Task[None]] = set()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            relays.add(task)
            try:
                await _serve(reader, writer, gate)
            finally:
                relays.discard(task)

        server = await asyncio.start_server(serve, self._host, 0)
        host, port = server.sockets[0].getsockname()[:2]
        opened = EgressPort(server, relays, f"http://{host}:{port}", self._ports.discard)
        self._ports.add(opened)
        return opened

    async def close(self) -> None:
        """Stop every port and every relay in flight."""
        await asyncio.gather(*(port.close() for port in list(self._ports)))


class EgressPort:
    """A context's proxy: its URL for Chromium, closed with the context (relays in flight included: a
    page that is gone has no business with the network)."""

    def __init__(
        self,
        server: asyncio.Server,
        relays: set[asyncio.Task[None]],
        url: str,
        on_close: Callable[[EgressPort], None],
    ) -> None:
        self._server = server
        self._relays = relays
        self._on_close = on_close
        self.url = url

    async def close(self) -> None:
        self._on_close(self)
        self._server.close()
        for task in list(self._relays):
            task.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._server.wait_closed()  # every connection of the port detached


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gate: Gate | None) -> None:
    try:
        try:
            async with asyncio.timeout(HEAD_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            return
        request = _parse(head)
        if request is None:
            await _answer(writer, 400, "Bad Request")
            return
        method, host, port = request
        if gate is None:
            _refused(host, "no-context")
            await _answer(writer, 403, "Forbidden", "screenshot-service; error=destination_ip_prohibited")
            return
        address, reason = await gate.destination(host, port)
        if address is None:
            _refused(host, reason or "refused")
            await _answer(writer, 403, "Forbidden", "screenshot-service; error=destination_ip_prohibited")
            return
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                upstream_reader, upstream_writer = await asyncio.open_connection(str(address), port)
        except (OSError, TimeoutError) as exc:
            error = "connection_timeout" if isinstance(exc, TimeoutError) else "connection_refused"
            await _answer(writer, 502, "Bad Gateway", f"screenshot-service; error={error}")
            return
        try:
            if method == b"CONNECT":
                writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                await writer.drain()
            else:
                upstream_writer.write(_origin_form(head))
            await _relay(reader, writer, upstream_reader, upstream_writer)
        finally:
            upstream_writer.close()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


def _parse(head: bytes) -> tuple[bytes, str, int] | None:
    """(method, host, port) of a proxy request, or None when it is not one we relay."""
    line = head.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        return None
    method, target = parts[0], parts[1].decode("latin-1")
    if method == b"CONNECT":
        host, sep, port_text = target.rpartition(":")
        if not sep or not port_text.isdigit():
            return None
        return method, host.strip("[]").lower(), int(port_text)
    try:
        url = urlsplit(target)
        port = url.port or DEFAULT_PORTS.get(url.scheme)
    except ValueError:
        return None
    if url.scheme != "http" or not url.hostname or port is None:
        return None  # origin-form requests are not proxy requests; https goes through CONNECT
    return method, url.hostname, port


def _origin_form(head: bytes) -> bytes:
    """The request as the origin server expects it: path-only target, no proxy headers.

    Only the first request of a connection is rewritten (bytes are relayed after it), so the upstream
    connection is closed after its answer (``Connection: close``): a browser's next request on the
    same proxy connection would reach the server in absolute form, which some servers (Tornado's static
    files: Streamlit, Panel) answer 404. A WebSocket upgrade keeps its ``Connection: Upgrade``.
    """
    line, _, rest = head.partition(b"\r\n")
    method, target, version = line.split(b" ")
    url = urlsplit(target.decode("latin-1"))
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    headers = [h for h in rest.split(b"\r\n") if h and h.split(b":", 1)[0].strip().lower() not in _HOP_BY_HOP]
    if not any(h.split(b":", 1)[0].strip().lower() == b"upgrade" for h in headers):
        headers = [h for h in headers if h.split(b":", 1)[0].strip().lower() != b"connection"]
        headers.append(b"Connection: close")
    return b"\r\n".join([b" ".join([method, path.encode("latin-1"), version]), *headers]) + b"\r\n\r\n"


async def _relay(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    upstream_reader: asyncio.StreamReader,
    upstream_writer: asyncio.StreamWriter,
) -> None:
    """Copy bytes both ways until either side closes. Later requests on a kept-alive connection go to
    the same checked address, whatever their Host header says."""

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        with contextlib.suppress(ConnectionError, OSError):
            if sink.can_write_eof():
                sink.write_eof()

    await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))


async def _answer(writer: asyncio.StreamWriter, status: int, phrase: str, proxy_status: str = "") -> None:
    """An answer of the proxy's own; ``proxy_status`` is an RFC 9209 Proxy-Status value."""
    extra = f"Proxy-Status: {proxy_status}\r\n" if proxy_status else ""
    writer.write(
        f"HTTP/1.1 {status} {phrase}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
    )
    with contextlib.suppress(ConnectionError, OSError):
        await writer.drain()


def _refused(host: str, reason: str) -> None:
    metrics.BLOCKED_REQUESTS.labels(reason).inc()
    # Chromium's own background traffic (update and sign-in hosts) at every start is expected: debug.
    (log.debug if reason == "no-context" else log.warning)("egress refused", host=host, reason=reason)
