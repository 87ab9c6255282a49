"""Pages that misbehave on purpose, for the fault tests: one eats memory until its tab crashes."""

from __future__ import annotations

from litestar import Litestar, MediaType, get

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


@get("/fine", media_type=MediaType.HTML)
async def fine() -> str:
    return "<!doctype html><html><body><h1>fine</h1></body></html>"


def create_fault_pages_app() -> Litestar:
    return Litestar([hog, fine])
