"""The bench's peers: their pictures are checked against the floor's, and (when cached) they really render
the page on Debian's Chromium."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from benchmarks import peers, procs
from benchmarks.direct import Target, playwright_floor
from benchmarks.pages import write_pages
from PIL import Image, ImageDraw

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def png(size: tuple[int, int] = (320, 200), *, panel: bool = True) -> bytes:
    image = Image.new("RGB", size, "#f4f5f7")
    if panel:
        ImageDraw.Draw(image).rectangle((20, 20, 200, 120), fill="#1d2330")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


class Fixed(peers.Peer):
    name = "fixed"

    def __init__(self, pictures: dict[str, bytes]) -> None:
        super().__init__()
        self.first = pictures


@pytest.mark.parametrize(
    ("theirs", "ok"),
    [
        pytest.param(png(), True, id="the-page"),
        pytest.param(png(panel=False), False, id="another-picture"),
        pytest.param(png((321, 200)), False, id="another-size"),
    ],
)
def test_a_peer_picture_counts_only_when_it_is_the_page(theirs: bytes, ok: bool) -> None:
    verdict = peers.check_pictures(Fixed({"static": theirs}), {"static": png()})["static"]
    assert verdict.ok is ok
    assert (verdict.differing == 0) is ok


def test_a_peer_with_no_picture_is_refused_with_its_failure() -> None:
    peer = Fixed({})
    peer.failures["static"] = "browserless: HTTP 401"
    verdict = peers.check_pictures(peer, {"static": png()})["static"]
    assert not verdict.ok
    assert verdict.detail == "browserless: HTTP 401"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "site").mkdir()
    write_pages(tmp_path / "site")
    port = procs.free_port()
    with procs.file_server(tmp_path / "site", port, tmp_path / "pages.log") as server:
        procs.wait_http(f"http://127.0.0.1:{port}/static.html", server)
        yield f"http://127.0.0.1:{port}"


@pytest.mark.bench
@pytest.mark.slow
def test_cached_peers_render_the_page_on_debian_chromium(site: str, tmp_path: Path) -> None:
    if (
        peers.install_browserless(cached_only=True) is None
        or peers.install_shot_scraper(cached_only=True) is None
    ):
        pytest.skip("the peers are not cached: `make bench` installs them")
    static = Target(dashboard="static", url=f"{site}/static.html")
    heavy = Target(dashboard="heavy", url=f"{site}/heavy.html", selector="body[data-ready='true']")

    async def scenario() -> None:
        async with (
            playwright_floor(CHROMIUM) as floor,
            peers.started(list(peers.NAMES), tmp_path, CHROMIUM, 2, cached_only=True) as running,
        ):
            reference = await peers.floor_pictures(floor, [static])
            assert [p.name for p in running] == list(peers.NAMES)
            for peer in running:
                assert await peer.sample(static)() is not None, peer.failures
                verdicts = peers.check_pictures(peer, reference)
                assert verdicts["static"].ok, (peer.name, verdicts)
                # The heavy page is not the static one: a peer answering it would be refused.
                wrong = Fixed({"static": await peer.capture(heavy)})
                assert not peers.check_pictures(wrong, reference)["static"].ok
            browserless = next(p for p in running if p.pid is not None)
            assert browserless.pid is not None
            idle = await peers.idle_memory(browserless.pid, timeout_s=60)
            assert not procs.tree_has_chromium(browserless.pid)
            assert 0 < idle.pss_mb <= idle.rss_mb

    asyncio.run(scenario())
