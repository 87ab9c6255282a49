"""The fixed pages the benchmark renders: a static dashboard and a heavy page of canvas charts."""

from __future__ import annotations

from pathlib import Path

_PANEL = """<section class="panel"><h2>{title}</h2><div class="kpi">{value}</div>
<svg viewBox="0 0 300 80" class="spark"><polyline points="{points}"/></svg>
<table>{rows}</table></section>"""

_STATIC = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Static dashboard</title>
<style>
  body {{ margin: 0; font: 14px/1.4 "DejaVu Sans", sans-serif; background: #f4f5f7; color: #1d2330; }}
  header {{ background: #1d2330; color: #fff; padding: 14px 24px; font-size: 20px; }}
  main {{ display: grid; grid-template-columns: repeat(4, 1fr); gap: 16px; padding: 16px 24px; }}
  .panel {{ background: #fff; border-radius: 8px; padding: 12px 16px; box-shadow: 0 1px 3px #0002; }}
  .panel h2 {{ margin: 0 0 4px; font-size: 13px; color: #5a6275; text-transform: uppercase; }}
  .kpi {{ font-size: 28px; font-weight: bold; }}
  .spark polyline {{ fill: none; stroke: #2f6fde; stroke-width: 2; }}
  table {{ width: 100%; border-collapse: collapse; font-size: 12px; }}
  td {{ border-top: 1px solid #e3e5ea; padding: 2px 0; }} td:last-child {{ text-align: right; }}
</style></head><body><header>Sales overview &middot; Борлуулалт &middot; 销售</header>
<main>{panels}</main></body></html>"""

_HEAVY = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Heavy dashboard</title>
<style>
  body { margin: 0; background: #111722; font: 13px sans-serif; color: #cfd6e4; }
  main { display: grid; grid-template-columns: repeat(3, 1fr); gap: 8px; padding: 8px; }
  canvas { width: 100%; height: 380px; background: #182030; border-radius: 6px; }
</style></head><body><main id="charts"></main>
<script>
  // Six charts of 2,000 points each, drawn on load: the kind of page Grafana makes.
  let seed = 7;
  const rand = () => {
    seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; return (seed >>> 0) / 4294967296;
  };
  const colours = ["#2f6fde", "#e0a030", "#3cb371", "#d9534f", "#9b59b6", "#17a2b8"];
  for (let c = 0; c < 6; c++) {
    const canvas = document.createElement("canvas");
    canvas.width = 416; canvas.height = 380;
    document.getElementById("charts").appendChild(canvas);
    const ctx = canvas.getContext("2d");
    ctx.strokeStyle = "#2a3446";
    for (let y = 20; y < 380; y += 40) {
      ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(416, y); ctx.stroke();
    }
    for (let s = 0; s < 3; s++) {
      ctx.strokeStyle = colours[(c + s) % colours.length]; ctx.lineWidth = 1.5; ctx.beginPath();
      let v = 190;
      for (let i = 0; i < 2000; i++) {
        v = Math.min(370, Math.max(10, v + (rand() - 0.5) * 12));
        const x = i * 416 / 2000;
        i ? ctx.lineTo(x, v) : ctx.moveTo(x, v);
      }
      ctx.stroke();
    }
    ctx.fillStyle = "#cfd6e4"; ctx.font = "14px sans-serif"; ctx.fillText("Chart " + (c + 1), 10, 18);
  }
  document.body.dataset.ready = "true";
</script></body></html>"""


def static_dashboard() -> str:
    """Twelve panels of text, numbers, sparklines and tables; no script and no subresources."""
    panels = []
    for i in range(12):
        points = " ".join(f"{x * 15},{40 + ((x * 37 + i * 11) % 35)}" for x in range(21))
        rows = "".join(f"<tr><td>Item {i}-{r}</td><td>{(i + 1) * (r + 3) * 97:,}</td></tr>" for r in range(4))
        panels.append(
            _PANEL.format(title=f"Metric {i + 1}", value=f"{(i + 3) * 1234:,}", points=points, rows=rows)
        )
    return _STATIC.format(panels="".join(panels))


def write_pages(directory: Path) -> None:
    """Write ``static.html`` and ``heavy.html`` into ``directory`` (served by a plain file server)."""
    (directory / "static.html").write_text(static_dashboard(), encoding="utf-8")
    (directory / "heavy.html").write_text(_HEAVY, encoding="utf-8")
