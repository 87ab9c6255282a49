"""Fixed pages for the tests, served on 127.0.0.1: known sizes, pages that never get ready, errors, a
page that eats memory, and the demo dashboard (as `screenshot-service demo` serves it)."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Litestar, MediaType, Request, get
from litestar.datastructures import State

from screenshot_service.dev.demo import DEMO_ROUTES

BOX_PAGE = """<!doctype html><html><body style="margin:0;background:#fff">
<div id="box" style="position:absolute;left:40px;top:30px;width:300px;height:150px;background:#c00"></div>
<p id="who">%s</p></body></html>"""


Visit = tuple[str | None, str | None]
"""(X-Dashboard-Token header, session cookie) of a /box request."""


@get("/box", media_type=MediaType.HTML)
async def box(request: Request[Any, Any, State]) -> str:
    seen = (request.headers.get("x-dashboard-token"), request.cookies.get("session"))
    request.app.state.box_visits.append(seen)
    return BOX_PAGE % (seen,)


@get("/never-ready", media_type=MediaType.HTML)
async def never_ready() -> str:
    return "<!doctype html><html><body><p>waiting for a selector that never comes</p></body></html>"


@get("/hang", media_type=MediaType.HTML)
async def hang() -> str:
    await asyncio.sleep(60)
    return "too late"


@get("/broken", media_type=MediaType.HTML, status_code=500)
async def broken() -> str:
    return "<h1>Internal Server Error</h1>"


NOISE_PAGE = """<!doctype html><html><body style="margin:0">
<canvas id="noise" width="%(w)d" height="%(h)d"></canvas>
<script>
  // Random pixels do not compress: a PNG of this page is ~3 bytes a pixel, over WhatsApp's 5 MB.
  const canvas = document.getElementById("noise");
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(canvas.width, canvas.height);
  let seed = 42;  // xorshift32
  for (let i = 0; i < image.data.length; i++) {
    seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
    image.data[i] = i %% 4 === 3 ? 255 : seed & 255;
  }
  ctx.putImageData(image, 0, 0);
  document.body.dataset.ready = "true";
</script></body></html>"""


@get("/noise", media_type=MediaType.HTML)
async def noise() -> str:
    return NOISE_PAGE % {"w": 1600, "h": 1200}


HOG_PAGE = """<!doctype html><html><body><p>eating memory</p><script>
  const hoard = [];
  (function grow() {
    for (let i = 0; i < 20; i++) hoard.push(new Array(1 << 20).fill(i));
    setTimeout(grow, 0);
  })();
</script></body></html>"""


@get("/hog", media_type=MediaType.HTML)
async def hog() -> str:
    return HOG_PAGE


def create_pages_app() -> Litestar:
    """The pages; ``app.state.box_visits`` records every /box request (a list per app)."""
    return Litestar(
        [box, never_ready, hang, broken, noise, hog, *DEMO_ROUTES], state=State({"box_visits": []})
    )


def box_visits(app: Litestar) -> list[Visit]:
    """The /box requests a pages app has served so far."""
    visits: list[Visit] = app.state.box_visits
    return visits
