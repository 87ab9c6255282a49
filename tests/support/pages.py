"""Fixed pages for the tests, served on 127.0.0.1: known sizes, pages that never get ready, errors, a
page that eats memory, and the demo dashboard (as `screenshot-service demo` serves it)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from litestar import Litestar, MediaType, Request, Response, get, route
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from screenshot_service.dev.demo import DEMO_ROUTES

from .readiness_pages import READINESS_ROUTES

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


FRESH_PAGE = """<!doctype html><html><body style="margin:0">
<script>
  // A tab that rendered before remembers it (window.name and sessionStorage live as long as the tab):
  // green for a fresh page, red for a reused one.
  const reused = window.name === "rendered" || sessionStorage.getItem("rendered") !== null;
  window.name = "rendered";
  sessionStorage.setItem("rendered", "1");
  document.body.style.background = reused ? "#f00" : "#0f0";
</script></body></html>"""
FRESH_COLOUR = (0, 255, 0)
"""The colour of /fresh in a page that rendered nothing before."""


@get("/fresh", media_type=MediaType.HTML)
async def fresh() -> str:
    return FRESH_PAGE


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


HOSTILE_PAGE = """<!doctype html><html><head>
<link rel="prefetch" href="%(t)s/prefetch"><link rel="preload" as="image" href="%(t)s/preload">
<link rel="preconnect" href="%(t)s"><link rel="dns-prefetch" href="%(t)s">
<link rel="stylesheet" href="%(t)s/style.css">
<script type="speculationrules">
{"prefetch": [{"source": "list", "urls": ["%(t)s/speculation-prefetch"]}],
 "prerender": [{"source": "list", "urls": ["%(t)s/speculation-prerender", "%(c)s/redirect"]}]}
</script>
</head><body>
<img src="%(t)s/img"><img src="%(c)s/redirect">
<iframe src="%(t)s/iframe"></iframe><iframe name="sink"></iframe>
<form id="form" method="post" action="%(t)s/form" target="sink"><input name="a" value="b"></form>
<video src="%(t)s/video"></video><audio src="%(t)s/audio"></audio>
<script>
  const T = "%(t)s", C = "%(c)s", WS = T.replace("http", "ws");
  // Every kind of request a page can make, at the private listener (T) and, for those a render may
  // make, at the canary on the page's own origin (C): the test waits for the canary, then counts T.
  const job = (kind) => `
    fetch("${T}/${kind}").catch(() => {});
    try { new WebSocket("${WS}/${kind}-ws"); } catch (e) {}
    try { new EventSource("${T}/${kind}-sse"); } catch (e) {}
    fetch("${C}/${kind}");`;
  const script = (kind) => URL.createObjectURL(new Blob([job(kind)], {type: "text/javascript"}));
  fetch(T + "/fetch").catch(() => {}); fetch(C + "/fetch");
  fetch(T + "/keepalive", {method: "POST", body: "x", keepalive: true}).catch(() => {});
  new Worker(script("worker"));
  try { new SharedWorker(script("shared-worker")); } catch (e) {}
  if (navigator.serviceWorker)
    navigator.serviceWorker.register("/egress/sw.js?t=" + encodeURIComponent(T)).catch(() => {});
  try { new WebSocket(WS + "/ws"); } catch (e) {}
  new EventSource(T + "/sse"); new EventSource(C + "/sse");
  navigator.sendBeacon(T + "/beacon", "x"); navigator.sendBeacon(C + "/beacon", "x");
  const x = new XMLHttpRequest(); x.open("GET", T + "/xhr"); x.send();
  window.addEventListener("pagehide", () => {
    navigator.sendBeacon(T + "/unload-beacon", "x");
    fetch(T + "/unload-keepalive", {method: "POST", body: "x", keepalive: true});
  });
  window.addEventListener("unload", () => navigator.sendBeacon(T + "/unload", "x"));
  window.open(T + "/window-open");
  const popup = window.open("about:blank"); if (popup) popup.location = T + "/popup-location";
  document.getElementById("form").submit();
  const meta = document.createElement("iframe");
  meta.srcdoc = `<meta http-equiv="refresh" content="0;url=${T}/meta-refresh">`;
  document.body.appendChild(meta);
  setTimeout(() => { document.body.dataset.ready = "true"; }, 300);
</script>
<img src="%(c)s/hold"><!-- holds the load event until the canary has seen every kind -->
</body></html>"""

HOLD_TIMEOUT_S = 40
"""How long the hostile page's load may wait for its canary (a loaded machine starts workers slowly);
the test renders it with a longer timeout."""
CANARY_KINDS = frozenset({"fetch", "worker", "shared-worker", "sse", "beacon"})
"""What the hostile page sends to its own origin in every render, whatever the engine."""

SERVICE_WORKER = """fetch(new URL(location).searchParams.get("t") + "/service-worker").catch(() => {});"""


@get("/egress/hostile", media_type=MediaType.HTML)
async def hostile(request: Request[Any, Any, State], target: FromQuery[str]) -> str:
    canary = f"{str(request.base_url).rstrip('/')}/egress/canary"
    return HOSTILE_PAGE % {"t": target.rstrip("/"), "c": canary}


FRAMED_PAGE = """<!doctype html><html><body><img src="/box"><img src="%s/box"><script>
  window.addEventListener("load", () => { document.body.dataset.ready = "true"; });
</script></body></html>"""


@get("/egress/framed", media_type=MediaType.HTML)
async def framed(other: FromQuery[str]) -> str:
    """Loads /box from its own origin and from ``other``, for the header-scoping test."""
    return FRAMED_PAGE % other.rstrip("/")


@get("/egress/sw.js", media_type="text/javascript")
async def service_worker() -> str:
    return SERVICE_WORKER


@route("/egress/canary/{kind:str}", http_method=["GET", "POST"], media_type=MediaType.TEXT)
async def canary(request: Request[Any, Any, State], kind: FromPath[str]) -> Response[str]:
    if kind == "redirect":  # a redirect to the private listener, through the page's own origin
        return Redirect(f"{request.app.state.egress_target}/redirected")
    state = request.app.state
    if kind == "hold":
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.canary_complete.wait(), HOLD_TIMEOUT_S)
        return Response("held")
    state.canary.add(kind)
    if state.canary >= CANARY_KINDS:
        state.canary_complete.set()
    if kind == "sse":
        return Response("data: hello\n\n", media_type="text/event-stream")
    return Response("ok")


def create_pages_app() -> Litestar:
    """The pages; ``app.state.box_visits`` records every /box request (a list per app), and
    ``app.state.canary`` the kinds of request the hostile page made to its own origin."""
    return Litestar(
        [
            box,
            fresh,
            never_ready,
            hang,
            broken,
            noise,
            hog,
            hostile,
            framed,
            service_worker,
            canary,
            *DEMO_ROUTES,
            *READINESS_ROUTES,
        ],
        state=State({"box_visits": []} | egress_state("http://127.0.0.2:9")),
    )


def egress_state(target: str) -> dict[str, Any]:
    """A fresh canary for one hostile render whose private listener is at ``target``."""
    return {"canary": set(), "canary_complete": asyncio.Event(), "egress_target": target}


def box_visits(app: Litestar) -> list[Visit]:
    """The /box requests a pages app has served so far."""
    visits: list[Visit] = app.state.box_visits
    return visits
