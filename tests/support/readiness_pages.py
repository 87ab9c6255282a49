"""Pages whose readiness the tests judge: panels that arrive late (timers and late data), a page that
never stops moving, and a still page with an endless spinner."""

from __future__ import annotations

import asyncio

from litestar import MediaType, get
from litestar.params import FromQuery

PANEL_COLOURS = [(200, 30, 30), (30, 150, 30), (30, 30, 200), (200, 150, 0), (150, 0, 150), (0, 150, 150)]
"""The solid colour of each of the late page's six panels, left to right, top to bottom."""
PANEL_SIZE, PANEL_GAP = 180, 20

LATE_PAGE = """<!doctype html><html><head><style>
  body { margin: 0; background: #fff; font: 14px sans-serif; }
  .panel { position: absolute; width: %(size)dpx; height: %(size)dpx; background: #eee; }
</style></head><body>
%(slots)s
<script>
  // Drawn after load: three panels by timers, three from data the server sends late (one a canvas).
  const colours = %(colours)s;
  const paint = (i) => {
    const [r, g, b] = colours[i], slot = document.getElementById("p" + i);
    if (i === 5) {
      const canvas = document.createElement("canvas");
      canvas.width = canvas.height = %(size)d;
      const ctx = canvas.getContext("2d");
      ctx.fillStyle = `rgb(${r},${g},${b})`;
      ctx.fillRect(0, 0, %(size)d, %(size)d);
      slot.appendChild(canvas);
    } else {
      slot.style.background = `rgb(${r},${g},${b})`;
    }
  };
  addEventListener("load", () => {
    [0, 1, 2].forEach((i) => setTimeout(() => paint(i), 150 + 200 * i));
    [3, 4, 5].forEach((i) => fetch(`/readiness/late-data?delay_ms=${400 * (i - 1)}`)
      .then((r) => r.json()).then(() => paint(i)));
  });
</script></body></html>"""


def panel_centre(i: int) -> tuple[int, int]:
    """The centre pixel of panel ``i`` (three a row) on the late page."""
    step = PANEL_SIZE + PANEL_GAP
    return PANEL_GAP + (i % 3) * step + PANEL_SIZE // 2, PANEL_GAP + (i // 3) * step + PANEL_SIZE // 2


@get("/readiness/late", media_type=MediaType.HTML)
async def late() -> str:
    step = PANEL_SIZE + PANEL_GAP
    slots = "\n".join(
        f'<div class="panel" id="p{i}" style="left:{PANEL_GAP + (i % 3) * step}px;'
        f'top:{PANEL_GAP + (i // 3) * step}px"></div>'
        for i in range(len(PANEL_COLOURS))
    )
    return LATE_PAGE % {"size": PANEL_SIZE, "slots": slots, "colours": [list(c) for c in PANEL_COLOURS]}


@get("/readiness/late-data", media_type=MediaType.JSON)
async def late_data(delay_ms: FromQuery[int]) -> dict[str, int]:
    await asyncio.sleep(delay_ms / 1000)  # the data source is slow: the page's behaviour under test
    return {"value": delay_ms}


@get("/readiness/never-still", media_type=MediaType.HTML)
async def never_still() -> str:
    return """<!doctype html><html><body style="margin:0">
<p>a live chart, redrawn every frame</p><canvas id="live" width="400" height="200"></canvas>
<script>
  const ctx = document.getElementById("live").getContext("2d");
  let n = 0;
  const frame = () => { ctx.fillStyle = `hsl(${n++ % 360},80%,50%)`; ctx.fillRect(0, 0, 400, 200);
    requestAnimationFrame(frame); };
  requestAnimationFrame(frame);
</script></body></html>"""


@get("/readiness/spinner", media_type=MediaType.HTML)
async def spinner() -> str:
    return """<!doctype html><html><head><style>
  @keyframes turn { to { transform: rotate(360deg); } }
  #spinner { position: absolute; right: 10px; top: 10px; width: 20px; height: 20px;
    border: 3px solid #ccc; border-top-color: #333; border-radius: 50%; animation: turn 1s linear infinite; }
</style></head><body><h1>All panels loaded</h1><div id="spinner"></div></body></html>"""


READINESS_ROUTES = [late, late_data, never_still, spinner]
