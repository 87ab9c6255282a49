"""A reverse proxy in front of the real service, as a load balancer is: it passes every request on,
records it, and answers from a queue of canned answers first (a 503 while the browser restarts, a
proxy's HTML 502, a text 429), so n8n can be tested against what it meets in production.

Control API (no auth, tests only): ``POST /_proxy/answers`` queues answers, ``GET /_proxy/requests``
lists what came in, ``POST /_proxy/reset`` forgets both.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from .servers import Server, read_body

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host"}


@dataclass(frozen=True)
class CannedAnswer:
    """An answer given instead of the service's to the next request for ``path``."""

    path: str
    status: int
    body: str
    content_type: str = "text/plain"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    status: int
    canned: bool
    api_key: str | None
    """The key the caller sent, so a test can tell which n8n credential was used."""


class ServiceProxy:
    """The proxy as an ASGI app, forwarding to ``upstream``."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.answers: list[CannedAnswer] = []
        self.seen: list[Seen] = []
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        body = await read_body(receive)
        path: str = scope["path"]
        if path.startswith("/_proxy/"):
            await self._control(scope["method"], path, body, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        canned = next((a for a in self.answers if a.path == path), None)
        if canned is not None:
            self.answers.remove(canned)
            status = canned.status
            out_headers = {"content-type": canned.content_type, **canned.headers}
            content = canned.body.encode()
        else:
            assert self._client is not None
            query = scope.get("query_string", b"").decode()
            upstream = await self._client.request(
                scope["method"],
                f"{self.upstream}{path}{'?' + query if query else ''}",
                headers={k: v for k, v in headers.items() if k not in HOP_BY_HOP},
                content=body,
            )
            status, content = upstream.status_code, upstream.content
            out_headers = {
                k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP | {"content-length"}
            }
        self.seen.append(Seen(scope["method"], path, status, canned is not None, headers.get("x-api-key")))
        await _respond(send, status, content, out_headers)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._client = httpx.AsyncClient(timeout=180)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._client is not None:
                    await self._client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _control(self, method: str, path: str, body: bytes, send: Any) -> None:
        if method == "POST" and path == "/_proxy/answers":
            self.answers.extend(CannedAnswer(**a) for a in json.loads(body)["answers"])
            await _respond(send, 200, b"{}", {"content-type": "application/json"})
        elif method == "GET" and path == "/_proxy/requests":
            content = json.dumps({"requests": [asdict(s) for s in self.seen]}).encode()
            await _respond(send, 200, content, {"content-type": "application/json"})
        elif method == "POST" and path == "/_proxy/reset":
            self.answers.clear()
            self.seen.clear()
            await _respond(send, 204, b"", {})
        else:
            await _respond(send, 404, b"", {})


async def _respond(send: Any, status: int, content: bytes, headers: dict[str, str]) -> None:
    raw = [(k.encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"content-length", str(len(content)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": content, "more_body": False})


class ProxyControl:
    """The proxy's control API, as tests use it."""

    def __init__(self, server: Server, client: httpx.AsyncClient) -> None:
        self.url = server.url
        self.http = client

    async def answer(self, *answers: CannedAnswer) -> None:
        payload = {"answers": [asdict(a) for a in answers]}
        (await self.http.post(f"{self.url}/_proxy/answers", json=payload)).raise_for_status()

    async def requests(self) -> list[dict[str, Any]]:
        response = await self.http.get(f"{self.url}/_proxy/requests")
        response.raise_for_status()
        seen: list[dict[str, Any]] = response.json()["requests"]
        return seen

    async def reset(self) -> None:
        (await self.http.post(f"{self.url}/_proxy/reset")).raise_for_status()
