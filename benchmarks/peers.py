"""The peers the service is timed beside: browserless (npm), shot-scraper (PyPI), on Debian's Chromium.

Each is installed by the bench itself into a cache kept between runs, pinned, with every browser download
switched off (npm scripts skipped, Playwright and Puppeteer told not to fetch, never ``playwright
install``): both find their browser through Playwright's registry, so a ``PLAYWRIGHT_BROWSERS_PATH`` of
the run's own holds a link from the place Playwright looks to ``/usr/bin/chromium``.

- **browserless** ``2.42.0`` (its Node.js 24 from the npm registry's ``node`` package), started on
  127.0.0.1 with ``TOKEN``, ``CONCURRENT`` matched to the service's render slots, ``PORT`` and ``HOST``,
  its Chromium routes only; each capture is ``POST /chromium/screenshot?token=...``.
- **shot-scraper** ``1.12`` in a venv of its own (with the Playwright the bench uses), one CLI process
  per shot, as it is used: ``shot-scraper shot URL -o - -w 1280 -h 800``.

Every peer's first picture of a page is compared with the floor's picture of it: a peer whose answer is
not the page has its figures refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
from PIL import Image, ImageChops

from . import procs
from .direct import Capture, Target
from .measure import Sample, Stats, closed_loop, summarize

BROWSERLESS_VERSION = "2.42.0"
NODE_VERSION = "24.21.0"  # browserless 2.x wants Node >= 24
SHOT_SCRAPER_VERSION = "1.12"
NAMES = ("browserless", "shot-scraper")

CACHE = Path(
    os.environ.get("SCREENSHOT_PEERS_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "screenshot-service"
)
NO_DOWNLOADS = {
    "PUPPETEER_SKIP_DOWNLOAD": "1",
    "PUPPETEER_SKIP_CHROMIUM_DOWNLOAD": "1",
    "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1",
}
PIXEL_TOLERANCE = 0.01
"""Share of pixels that may differ (by more than 16 in a channel) between a peer's picture and the floor's:
the same Chromium draws the same page, so only anti-aliasing may move."""


class PeerError(RuntimeError):
    """A peer could not be installed or started."""


def _npm(argv: list[str], env: dict[str, str]) -> None:
    quiet = ["--no-save", "--no-audit", "--no-fund", "--loglevel=error"]
    done = subprocess.run(
        ["npm", "install", *quiet, *argv], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise PeerError(f"npm install {' '.join(argv)} failed:\n{done.stderr[-2000:]}")


def browserless_home() -> Path:
    return CACHE / "browserless" / f"browserless-{BROWSERLESS_VERSION}-node-{NODE_VERSION}"


def install_browserless(*, cached_only: bool = False) -> Path | None:
    """browserless and its Node.js in the cache (installed once, whole or not at all); None when
    ``cached_only`` and it is not there."""
    home = browserless_home()
    if (home / "app" / "node_modules" / "@browserless.io" / "browserless" / "package.json").exists():
        return home
    if cached_only:
        return None
    if shutil.which("npm") is None:
        raise PeerError("browserless is installed with npm, which is not on PATH")
    home.parent.mkdir(parents=True, exist_ok=True)
    print(f"  installing browserless {BROWSERLESS_VERSION} and node {NODE_VERSION} into {home} (once)")
    work = Path(tempfile.mkdtemp(prefix=".install.", dir=home.parent))
    try:
        env = {**os.environ, **NO_DOWNLOADS}
        # The `node` package's own install script fetches its platform package from the npm registry.
        _npm(["--prefix", str(work / "node"), f"node@{NODE_VERSION}"], env)
        env["PATH"] = f"{work / 'node' / 'node_modules' / 'node' / 'bin'}{os.pathsep}{env['PATH']}"
        _npm(
            ["--omit=dev", "--ignore-scripts", "--prefix", str(work / "app"),
             f"@browserless.io/browserless@{BROWSERLESS_VERSION}"],
            env,
        )  # fmt: skip
        work.rename(home)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return home


def shot_scraper_home() -> Path:
    return CACHE / "shot-scraper" / f"shot-scraper-{SHOT_SCRAPER_VERSION}-playwright-{_playwright_version()}"


def _playwright_version() -> str:
    return importlib.metadata.version("playwright")


def install_shot_scraper(*, cached_only: bool = False) -> Path | None:
    """shot-scraper in a venv of its own in the cache, with the bench's Playwright version."""
    home = shot_scraper_home()
    done = home / ".complete"  # a venv names its own path, so it is built in place, marked when whole
    if done.exists():
        return home
    if cached_only:
        return None
    shutil.rmtree(home, ignore_errors=True)
    print(f"  installing shot-scraper {SHOT_SCRAPER_VERSION} into {home} (once)")
    subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
    pins = [f"shot-scraper=={SHOT_SCRAPER_VERSION}", f"playwright=={_playwright_version()}"]
    pip = subprocess.run(
        [str(home / "bin" / "pip"), "install", "--quiet", *pins],
        env={**os.environ, **NO_DOWNLOADS},
        capture_output=True,
        check=False,
        text=True,
    )
    if pip.returncode:
        shutil.rmtree(home, ignore_errors=True)
        raise PeerError(f"pip install {' '.join(pins)} failed:\n{pip.stderr[-2000:]}")
    done.touch()
    return home


def link_chromium(browsers: Path, executables: list[str], chromium: str) -> None:
    """Make ``chromium`` appear at each of Playwright's ``executables`` (paths relative to ``browsers``)."""
    for relative in executables:
        link = browsers / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(chromium)


def _registry(browsers_json: Path) -> dict[str, str]:
    """Playwright's browser revisions, by name, from its ``browsers.json``."""
    listed = json.loads(browsers_json.read_text())["browsers"]
    return {entry["name"]: entry["revision"] for entry in listed}


class Answer(msgspec.Struct, kw_only=True):
    """What one peer gave for a page: its picture, kept to compare with the floor's."""

    image: bytes = b""
    failure: str = ""


def differing_fraction(a: bytes, b: bytes) -> float:
    """Share of pixels that differ by more than 16 in a channel (1.0 when the sizes differ)."""
    first, second = Image.open(io.BytesIO(a)).convert("RGB"), Image.open(io.BytesIO(b)).convert("RGB")
    if first.size != second.size:
        return 1.0
    diff = ImageChops.difference(first, second).convert("L").point(lambda v: 255 if v > 16 else 0)
    return diff.histogram()[255] / (first.width * first.height)


class Peer:
    """A running peer: captures a :class:`Target`, keeping the first picture of each page."""

    name: str
    pid: int | None = None  # the process whose tree is the peer's memory (None: a process per shot)

    def __init__(self) -> None:
        self.first: dict[str, bytes] = {}
        self.failures: dict[str, str] = {}

    async def capture(self, target: Target) -> bytes:
        raise NotImplementedError

    def sample(self, target: Target) -> Sample:
        async def one() -> int | None:
            try:
                image = await self.capture(target)
            except (PeerError, httpx.HTTPError) as exc:
                self.failures.setdefault(target.dashboard, str(exc)[:300])
                return None
            self.first.setdefault(target.dashboard, image)
            return len(image)

        return one

    def supports(self, target: Target) -> bool:
        """Pages the peer can be asked for as the service is (time zone and locale are not emulated)."""
        return target.timezone is None and target.locale is None


class Browserless(Peer):
    name = "browserless"

    def __init__(self, base: str, token: str, client: httpx.AsyncClient, pid: int) -> None:
        super().__init__()
        self.base, self.token, self.client, self.pid = base, token, client, pid

    async def capture(self, target: Target) -> bytes:
        body: dict[str, object] = {
            "url": target.url,
            "viewport": {"width": target.width, "height": target.height, "deviceScaleFactor": 1},
            "gotoOptions": {"waitUntil": "load"},
            "options": {"type": "png"},
        }
        if target.selector:
            body["waitForSelector"] = {"selector": target.selector, "visible": True}
        response = await self.client.post(
            f"{self.base}/chromium/screenshot", params={"token": self.token}, json=body
        )
        if response.status_code != httpx.codes.OK:
            raise PeerError(f"browserless: HTTP {response.status_code} {response.text[:200]}")
        return response.content


class ShotScraper(Peer):
    name = "shot-scraper"

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        super().__init__()
        self.home, self.env = home, env

    async def capture(self, target: Target) -> bytes:
        argv = [str(self.home / "bin" / "shot-scraper"), "shot", target.url, "-o", "-", "--silent",
                "-w", str(target.width), "-h", str(target.height)]  # fmt: skip
        if target.selector:
            argv += ["--wait-for", f"document.querySelector({json.dumps(target.selector)})"]
        proc = await asyncio.create_subprocess_exec(
            *argv, env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await proc.communicate()
        if proc.returncode or not out.startswith(b"\x89PNG"):
            raise PeerError(f"shot-scraper exited with {proc.returncode}: {err.decode()[-300:]}")
        return out


@contextlib.asynccontextmanager
async def browserless(home: Path, work: Path, chromium: str, concurrent: int) -> AsyncIterator[Browserless]:
    """browserless started from the cache on a free port of 127.0.0.1; stopped on exit."""
    app = home / "app" / "node_modules" / "@browserless.io" / "browserless"
    core = home / "app" / "node_modules" / "playwright-core"
    browsers, routes = work / "browserless-browsers", work / "browserless-routes"
    revision = _registry(core / "browsers.json")["chromium"]
    link_chromium(browsers, [f"chromium-{revision}/chrome-linux64/chrome"], chromium)
    routes.mkdir(exist_ok=True)
    # Only its Chromium routes: the others want browsers (Chrome, Edge, Firefox, WebKit) not installed.
    with contextlib.suppress(FileExistsError):
        (routes / "chromium").symlink_to(app / "build" / "routes" / "chromium")
    port, token = procs.free_port(), "bench-peer-token"
    node_bin = home / "node" / "node_modules" / "node" / "bin"
    env = {
        "PATH": f"{node_bin}{os.pathsep}{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", str(work)),
        "TOKEN": token,
        "CONCURRENT": str(concurrent),
        "QUEUED": "64",
        "TIMEOUT": "120000",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "ROUTES": str(routes),
        "PLAYWRIGHT_BROWSERS_PATH": str(browsers),
        "DEBUG": "browserless*:info",
        **NO_DOWNLOADS,
    }
    base = f"http://127.0.0.1:{port}"
    log = work / "browserless.log"
    with log.open("ab") as out:
        # Started in its own folder: it reads its package.json from the working directory.
        proc = subprocess.Popen(  # noqa: ASYNC220  (started once, before anything is timed)
            [str(node_bin / "node"), "build/index.js"], cwd=app, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        await asyncio.to_thread(procs.wait_http, f"{base}/json/version?token={token}", proc)
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:
            yield Browserless(base, token, client, proc.pid)
    finally:
        procs.stop(proc)


def shot_scraper(home: Path, work: Path, chromium: str) -> ShotScraper:
    """shot-scraper from the cache, its Playwright pointed at ``chromium``."""
    browsers = work / "shot-scraper-browsers"
    package = next((home / "lib").glob("python3*/site-packages/playwright/driver/package"))
    revisions = _registry(package / "browsers.json")
    # Headless launches take Playwright's headless shell; a headed or channel launch takes Chromium.
    link_chromium(
        browsers,
        [
            f"chromium_headless_shell-{revisions['chromium-headless-shell']}"
            "/chrome-headless-shell-linux64/chrome-headless-shell",
            f"chromium-{revisions['chromium']}/chrome-linux64/chrome",
        ],
        chromium,
    )
    return ShotScraper(home, {**os.environ, "PLAYWRIGHT_BROWSERS_PATH": str(browsers), **NO_DOWNLOADS})


@contextlib.asynccontextmanager
async def started(
    names: list[str], work: Path, chromium: str, concurrent: int, *, cached_only: bool
) -> AsyncIterator[list[Peer]]:
    """The peers of ``names`` that are (or, unless ``cached_only``, can be) installed, running. A peer
    that cannot be installed or started is left out, loudly: the service's own figures still count."""
    async with contextlib.AsyncExitStack() as stack:
        peers: list[Peer] = []
        for name in (n for n in NAMES if n in names):
            install = install_browserless if name == "browserless" else install_shot_scraper
            try:
                home = await asyncio.to_thread(install, cached_only=cached_only)
                if home is None:
                    print(f"  {name} is not cached: skipped (a full run installs it)")
                elif name == "browserless":
                    peers.append(
                        await stack.enter_async_context(browserless(home, work, chromium, concurrent))
                    )
                else:
                    peers.append(shot_scraper(home, work, chromium))
            except (PeerError, RuntimeError, OSError, subprocess.CalledProcessError) as exc:
                print(f"  ! {name} skipped: {exc}")
        yield peers


class Verdict(msgspec.Struct, kw_only=True):
    """Whether a peer's picture of a page is the page: the share of pixels unlike the floor's."""

    differing: float
    ok: bool
    detail: str = ""


def check_pictures(peer: Peer, floor_images: dict[str, bytes]) -> dict[str, Verdict]:
    """Each page's first picture from ``peer`` against the floor's picture of the page."""
    verdicts = {}
    for page, reference in floor_images.items():
        image = peer.first.get(page)
        if image is None:
            detail = peer.failures.get(page, "no picture")
            verdicts[page] = Verdict(differing=1.0, ok=False, detail=detail)
            continue
        share = differing_fraction(image, reference)
        verdicts[page] = Verdict(differing=round(share, 4), ok=share <= PIXEL_TOLERANCE)
    return verdicts


async def floor_pictures(floor: Capture, targets: list[Target]) -> dict[str, bytes]:
    return {t.dashboard: await floor(t) for t in targets}


async def idle_memory(pid: int, timeout_s: float = 60) -> procs.TreeMemory:
    """The tree's memory once no Chromium runs under it (browserless closes its browser after a
    session), or after ``timeout_s`` if one stays."""
    await procs.wait_until(lambda: not procs.tree_has_chromium(pid), timeout_s)
    return procs.tree_memory(pid)


async def throughput_in_turns(series: dict[str, Sample], total: int, concurrency: int) -> dict[str, Stats]:
    """``total`` calls of each of ``series`` from ``concurrency`` workers, in two halves taken in turns
    (A B, then B A) so drift falls alike on each; throughput is calls over the series' own wall time."""
    names = list(series)
    latencies: dict[str, list[float]] = {name: [] for name in names}
    sizes: dict[str, list[int]] = {name: [] for name in names}
    errors = dict.fromkeys(names, 0)
    wall = dict.fromkeys(names, 0.0)

    def timed(name: str) -> Sample:
        async def one() -> int | None:
            t0 = time.perf_counter()
            size = await series[name]()
            if size is None:
                errors[name] += 1
            else:
                latencies[name].append(time.perf_counter() - t0)
                sizes[name].append(size)
            return size

        return one

    for order in (names, names[::-1]):
        for name in order:
            t0 = time.perf_counter()
            await closed_loop(timed(name), max(total // 2, concurrency), concurrency)
            wall[name] += time.perf_counter() - t0
    return {name: summarize(latencies[name], errors[name], wall[name], sizes[name]) for name in names}
