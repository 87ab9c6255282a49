"""Automatic readiness: a page is ready when its network is idle and it has been visually still for a
quiet window; presets add what a dashboard app says about its own "still working" state.

How it is decided (the rules ``wait = { auto = true }`` and the presets follow):

- **Network**: no request of the page in flight (counted by the engine from its request events; an
  ``EventSource`` stream, which never ends, is not counted, nor are WebSockets).
- **Visually still**, seen by one script in the page (:data:`STILL_SCRIPT`), event-driven: a
  ``MutationObserver`` on the whole document (a change counts when its element is rendered and, for a
  viewport capture, intersects the viewport); canvas drawing calls (2D and WebGL) on a connected
  canvas; and, once per animation frame, web fonts still loading, painted images not yet complete, and
  running animations that will end (finite ones) or that move layout (``width``, ``top``, ``margin``...).
  An infinite animation of ``transform``/``opacity``/colours, a spinner turning in a corner, does
  not change the layout and is not waited for: otherwise a page with one would never be ready.
- **Quiet window** (``quiet_ms``, 500 ms by default, 100..5000): both of the above must hold for it
  at once, counted from the last network event or change, so time a page spent still during ``load``
  counts. 500 ms is the network-idle window Playwright and Puppeteer use, and long enough for a chart
  library's first animation frame after its data.
- **Bound**: the render's deadline, less a reserve for the capture (:func:`settle_budget_ms`), or
  ``max_ms`` when smaller. Past it the capture is taken as it is and reported ``partial`` with what
  still moved, unless ``refuse_partial`` makes it a 504.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

import msgspec

from ..errors import RenderError

Preset = Literal["auto", "streamlit", "dash", "panel"]

QUIET_MS = 500
"""Default quiet window (see the module's docstring)."""
CAPTURE_RESERVE_MS = 1500
"""Left of the deadline for the capture itself when the page never settles: a partial capture needs it."""
MOVING_MAX = 6
"""How many moving things a report names at most."""

# Each preset's "still working" signal: a JavaScript expression evaluated once per frame in the page,
# answering what is busy (a short name) or "" when the app says it is done. Kept to what each app's
# own client renders into the DOM, which tests/test_presets.py checks against the real apps.
PRESET_BUSY: dict[str, str] = {
    "auto": '""',
    # Streamlit's app root carries the script's run state (initial, running, notRunning); while it
    # runs the status widget says "Running...", and skeletons stand where elements are to arrive.
    "streamlit": """(() => {
      const app = document.querySelector('[data-testid="stApp"]');
      const state = app && app.getAttribute("data-test-script-state");
      if (state !== "notRunning") return "streamlit:" + (state || "app");
      if (document.querySelector('[data-testid="stSkeleton"]')) return "streamlit:skeleton";
      return "";
    })()""",
    # Dash renders "Loading..." until its layout arrives, and marks components whose callbacks run
    # with data-dash-is-loading (the state dcc.Loading spinners show).
    "dash": """(() => {
      const root = document.getElementById("react-entry-point");
      if (!root || !root.firstElementChild || root.querySelector("._dash-loading")) return "dash:layout";
      if (document.querySelector('[data-dash-is-loading="true"]')) return "dash:callback";
      return "";
    })()""",
    # Panel (on Bokeh) has rendered once a Bokeh document is in the page; components still loading
    # (defer_load, pn.state.onload, loading=True) carry the pn-loading class, inside shadow roots.
    "panel": """(() => {
      const docs = window.Bokeh && window.Bokeh.documents;
      if (!docs || docs.length === 0) return "panel:document";
      const roots = [document];
      for (let i = 0; i < roots.length; i++)
        for (const el of roots[i].querySelectorAll("*")) if (el.shadowRoot) roots.push(el.shadowRoot);
      for (const root of roots) if (root.querySelector(".pn-loading")) return "panel:loading";
      return "";
    })()""",
}

# One function, installed once per page: the observers keep the time of the last change and what
# changed; each call waits (animation frames, with a timer in case frames stop) until the page has
# been still for the quiet window, or the budget is spent, and answers {still, moving}.
_STILL_FUNCTION = """async (quietMs, budgetMs, networkQuietMs, full, busy) => {
  const w = window;
  const name = (el) => !el || !el.tagName ? "node" : el.tagName.toLowerCase() +
    (el.id ? "#" + el.id : el.classList && el.classList.length ? "." + el.classList[0] : "");
  const painted = (node) => {
    const el = node && (node.nodeType === 1 ? node : node.parentElement);
    if (!el || !el.isConnected) return false;
    if (el.getClientRects().length === 0) return false;
    if (full) return true;
    const r = el.getBoundingClientRect();
    return r.bottom > 0 && r.right > 0 && r.top < innerHeight && r.left < innerWidth;
  };
  let s = w.__screenshotStill;
  if (!s) {
    s = w.__screenshotStill = {last: performance.now(), seen: new Map()};
    s.mark = (what) => { const t = performance.now(); s.last = t; s.seen.set(what, t); };
    const observer = new MutationObserver((records) => {
      let target = null;
      for (const r of records) {
        if (r.target === target) continue;
        target = r.target;
        if (painted(target)) s.mark("dom:" + name(target.nodeType === 1 ? target : target.parentElement));
      }
    });
    // Shadow roots (web components: Panel, Lit...) are observed too: those there now, and new ones.
    const observe = (root) => observer.observe(root,
      {subtree: true, childList: true, attributes: true, characterData: true});
    const roots = [document];
    for (let i = 0; i < roots.length; i++) {
      observe(roots[i]);
      for (const el of roots[i].querySelectorAll("*")) if (el.shadowRoot) roots.push(el.shadowRoot);
    }
    const attachShadow = Element.prototype.attachShadow;
    Element.prototype.attachShadow = function (...args) {
      const root = attachShadow.apply(this, args);
      observe(root);
      return root;
    };
    const patch = (proto, methods) => {
      if (!proto) return;
      for (const method of methods) {
        const original = proto[method];
        if (typeof original !== "function") continue;
        proto[method] = function (...args) {
          const canvas = this.canvas;
          if (canvas && canvas.isConnected) s.mark("canvas:" + name(canvas));
          return original.apply(this, args);
        };
      }
    };
    patch(w.CanvasRenderingContext2D && CanvasRenderingContext2D.prototype, ["clearRect", "fillRect",
      "strokeRect", "fill", "stroke", "fillText", "strokeText", "drawImage", "putImageData"]);
    for (const gl of [w.WebGLRenderingContext, w.WebGL2RenderingContext])
      patch(gl && gl.prototype, ["clear", "drawArrays", "drawElements", "drawArraysInstanced",
        "drawElementsInstanced"]);
    const layout = /^(width|height|top|left|right|bottom|inset|margin|padding|font-size|flex|grid|display)/;
    s.check = (busy) => {
      if (document.fonts && document.fonts.status === "loading") s.mark("fonts");
      for (const img of document.images) {
        if (!img.complete && painted(img)) { s.mark("image:" + name(img)); break; }
      }
      for (const a of document.getAnimations()) {
        if (a.playState !== "running" || !a.effect) continue;
        const finite = Number.isFinite(a.effect.getComputedTiming().endTime);
        const moves = finite || a.effect.getKeyframes().some((frame) => Object.keys(frame).some(
          (p) => layout.test(p.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase()))));
        if (moves && painted(a.effect.target))
          s.mark("animation:" + (a.animationName || a.transitionProperty || name(a.effect.target)));
      }
      const b = busy();
      if (b) s.mark(String(b));
    };
  }
  const start = performance.now();
  s.last = Math.max(s.last, start - networkQuietMs);
  return await new Promise((resolve) => {
    const tick = () => {
      s.check(busy);
      const now = performance.now();
      const still = now - s.last >= quietMs;
      if (still || now - start >= budgetMs) {
        const moving = [...s.seen].filter(([, t]) => t > now - quietMs).sort((a, b) => b[1] - a[1]);
        resolve({still, moving: moving.map(([what]) => what)});
        return;
      }
      let fired = false;
      const go = () => { if (!fired) { fired = true; tick(); } };
      requestAnimationFrame(go);
      setTimeout(go, Math.min(100, quietMs));
    };
    tick();
  });
}"""


def still_script(quiet_ms: int, budget_ms: float, network_quiet_ms: float, full: bool, preset: str) -> str:
    """The expression one evaluate runs: the still-wait with its arguments and the preset's signal."""
    args = json.dumps([quiet_ms, round(budget_ms), round(network_quiet_ms), full])[1:-1]
    return f"({_STILL_FUNCTION})({args}, () => {PRESET_BUSY[preset]})"


class NetworkWatch:
    """Requests of one page in flight, fed by the engine's request events; waited on by events."""

    def __init__(self) -> None:
        self.inflight = 0
        self.started = 0
        self._last = time.monotonic()
        self._idle = asyncio.Event()
        self._idle.set()

    @classmethod
    def of(cls, page: Any, resource_type: Callable[[Any], str]) -> NetworkWatch:
        """A watch fed by ``page``'s request events, which Playwright and pyppeteer name alike;
        ``resource_type`` reads a request's type in the engine's spelling. An EventSource stream never
        ends, so it is not counted as in flight."""
        watch = cls()

        def counted(change: Callable[[], None]) -> Callable[[Any], None]:
            return lambda request: None if resource_type(request) == "eventsource" else change()

        page.on("request", counted(watch.request_started))
        page.on("requestfinished", counted(watch.request_ended))
        page.on("requestfailed", counted(watch.request_ended))
        return watch

    def request_started(self) -> None:
        self.inflight += 1
        self.started += 1
        self._last = time.monotonic()
        self._idle.clear()

    def request_ended(self) -> None:
        self.inflight = max(0, self.inflight - 1)
        self._last = time.monotonic()
        if self.inflight == 0:
            self._idle.set()

    def quiet_ms(self) -> float:
        """Time since the last request started or ended."""
        return (time.monotonic() - self._last) * 1000

    async def idle(self, timeout_ms: float) -> bool:
        """Wait until no request is in flight; False if some still are after ``timeout_ms``."""
        try:
            async with asyncio.timeout(max(0.0, timeout_ms) / 1000):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


class StillPage(Protocol):
    """What settling needs of an engine's page."""

    network: NetworkWatch

    async def evaluate(self, expression: str, timeout_ms: float) -> Any:
        """Evaluate ``expression`` in the main frame, awaiting a promise; answers its JSON value, or None
        when the page navigated away meanwhile (its document, and the evaluation, are gone)."""
        ...


class Settled(msgspec.Struct, kw_only=True, frozen=True):
    still: bool
    moving: tuple[str, ...] = ()


async def settle(page: StillPage, *, quiet_ms: int, budget_ms: float, full: bool, preset: str) -> Settled:
    """Wait until the network is idle and the page still for ``quiet_ms``, at once, within ``budget_ms``.

    A request that starts while the page looks still may bring data that changes it, so the window
    is waited for again after it (the page's own clock is pushed to the last network event).
    """
    end = time.monotonic() + budget_ms / 1000
    while True:
        left = (end - time.monotonic()) * 1000
        if left <= 0 or not await page.network.idle(left):
            return Settled(still=False, moving=("network",))
        started = page.network.started
        left = (end - time.monotonic()) * 1000
        script = still_script(quiet_ms, left, page.network.quiet_ms(), full, preset)
        report = await page.evaluate(script, left + 1000)
        if report is None:  # the page navigated meanwhile: settle the new document
            continue
        moving = _names(report.get("moving", []) if isinstance(report, dict) else [])
        network = ("network",) if page.network.inflight else ()
        if not (isinstance(report, dict) and report.get("still")):
            return Settled(still=False, moving=(*network, *moving)[:MOVING_MAX])
        if page.network.started == started and not page.network.inflight:
            return Settled(still=True)
        # a request began during the window: wait for it and for a quiet window after it


def settle_budget_ms(remaining_ms: float, max_ms: int | None) -> float:
    """How long settling may take of what the deadline leaves: a reserve is kept for the capture."""
    budget = remaining_ms - min(CAPTURE_RESERVE_MS, remaining_ms / 3)
    return budget if max_ms is None else min(budget, max_ms)


def evaluated(answer: dict[str, Any]) -> Any:
    """The value of a CDP ``Runtime.evaluate`` answer; a script that threw is a :class:`RenderError`."""
    if answer.get("exceptionDetails"):
        raise RenderError("The readiness script failed in the page.", step="auto")
    return answer.get("result", {}).get("value")


_NAME_RE = re.compile(r"[^A-Za-z0-9_#.:-]")


def _names(raw: Any) -> tuple[str, ...]:
    """What the page named as moving, made header-safe (ASCII, short, few)."""
    names: list[str] = []
    for item in raw if isinstance(raw, list) else []:
        name = _NAME_RE.sub("", str(item))[:48]
        if name and name not in names:
            names.append(name)
    return tuple(names[:MOVING_MAX])
