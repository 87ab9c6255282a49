"""The fast viewport capture gives the pixels Playwright's own screenshot gives: animations settled,
device scale honoured, pages with frames handed to Playwright."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from litestar import Litestar, MediaType, get

from .support.images import decode
from .support.servers import serve
from .support.service import running_service

# A finite animation would end blue; an infinite one, cancelled, leaves the box its own white.
ANIMATED = """<!doctype html><html><head><style>
  body { margin: 0; background: #fff; font: 16px sans-serif; }
  @keyframes to-blue { from { background: #f00; } to { background: #00f; } }
  @keyframes pulse { from { background: #0f0; } to { background: #0a0; } }
  #finite { position: absolute; left: 0; top: 0; width: 100px; height: 100px;
            animation: to-blue 600s linear forwards; }
  #endless { position: absolute; left: 120px; top: 0; width: 100px; height: 100px; background: #fff;
             animation: pulse 1s infinite alternate; }
</style></head><body><div id="finite"></div><div id="endless"></div>
<p style="position:absolute;top:120px">Борлуулалт 销售 %s</p></body></html>"""

FRAMED = """<!doctype html><html><body style="margin:0">
<iframe style="border:0;width:200px;height:150px" srcdoc="%s"></iframe></body></html>""" % (
    ANIMATED.replace('"', "&quot;") % "framed"
)


@get("/animated", media_type=MediaType.HTML)
async def animated() -> str:
    return ANIMATED % "animated"


@get("/framed", media_type=MediaType.HTML)
async def framed() -> str:
    return FRAMED


@pytest.fixture(scope="module")
async def fidelity(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    with serve(Litestar([animated, framed])) as server:
        pages = server.url
        path = Path(tmp_path_factory.mktemp("fidelity")) / "dashboards.toml"
        path.write_text(
            f"""
[dashboards.animated]
url = "{pages}/animated"
viewport = {{ width = 400, height = 300 }}

[dashboards.framed]
url = "{pages}/framed"
viewport = {{ width = 400, height = 300 }}
""",
            encoding="utf-8",
        )
        async with running_service({"dashboards_file": str(path)}) as client:
            yield client


@pytest.mark.parametrize(
    ("dashboard", "scale"),
    [
        pytest.param("animated", 1, id="animated"),
        pytest.param("animated", 2, id="animated-at-scale-2"),
        pytest.param("framed", 1, id="animation-in-a-frame"),
    ],
)
async def test_viewport_capture_settles_animations_at_scale(
    fidelity: httpx.AsyncClient, dashboard: str, scale: int
) -> None:
    response = await fidelity.post(
        "/v1/renders",
        json={"dashboard": dashboard, "viewport": {"width": 400, "height": 300, "scale": scale}},
    )
    assert response.status_code == 200, response.text
    image = decode(response.content).convert("RGB")
    assert image.size == (400 * scale, 300 * scale)
    assert image.getpixel((50 * scale, 50 * scale)) == (0, 0, 255)  # finished: blue, not red
    assert image.getpixel((170 * scale, 50 * scale)) == (255, 255, 255)  # cancelled: its own white


@pytest.mark.parametrize("dashboard", ["animated", "framed"])
async def test_viewport_capture_has_the_pixels_of_playwrights_screenshot(
    fidelity: httpx.AsyncClient, dashboard: str
) -> None:
    # A page that fits its viewport: full_page goes through Playwright's own screenshot, same size.
    fast = await fidelity.post("/v1/renders", json={"dashboard": dashboard})
    playwright = await fidelity.post("/v1/renders", json={"dashboard": dashboard, "full_page": True})
    assert fast.status_code == playwright.status_code == 200
    first, second = decode(fast.content).convert("RGB"), decode(playwright.content).convert("RGB")
    assert first.size == second.size
    assert first.tobytes() == second.tobytes()
