"""An HTTP endpoint that keeps what is posted to it, as an operator's chat webhook (Slack, Teams) would."""

from __future__ import annotations

import json
from typing import Any

import httpx

from .servers import read_body


class Inbox:
    """An ASGI app: ``POST`` anything records its JSON body; ``GET /_inbox`` lists the bodies."""

    def __init__(self) -> None:
        self.received: list[Any] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = await read_body(receive)
        if scope["method"] == "GET" and scope["path"] == "/_inbox":
            content = json.dumps({"received": self.received}).encode()
        else:
            self.received.append(json.loads(body) if body else None)
            content = b'{"ok":true}'
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content, "more_body": False})


async def received(http: httpx.AsyncClient, url: str) -> list[Any]:
    """What the inbox at ``url`` has been sent so far."""
    response = await http.get(f"{url}/_inbox")
    response.raise_for_status()
    items: list[Any] = response.json()["received"]
    return items
