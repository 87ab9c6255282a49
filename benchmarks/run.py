"""``make bench``: render fixed pages through the service and straight through Chromium, print and save.

    python -m benchmarks [--quick] [--engines playwright,pyppeteer] [--skip-leak] [--skip-peers]
                         [--skip-idle] [--soak] [--json PATH]

Serves a static dashboard and a heavy canvas page from a file server on 127.0.0.1, uses the demo
dashboard the service serves itself, uploads to a local Meta emulator, and starts the service as a real
process (``screenshot-service serve``) once per engine, plus once more for the leak check and once for
the idle check. With the first engine, the peers (:mod:`benchmarks.peers`: browserless, shot-scraper) are
timed in turns with the service and the floor. ``--soak`` runs only the memory-over-time check, longer.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import math
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

from screenshot_service.settings import Settings

from . import peers, procs, readiness
from .direct import FLOORS, Capture, Target, measure_baseline
from .measure import PeakRss, Sample, Stats, in_turns, load, request, summarize
from .pages import write_pages

API_KEY = "bench-" + secrets.token_hex(16)
META_TOKEN = "bench-token-" + secrets.token_hex(8)
PHONE_NUMBER_ID = "100000000000001"
PRIMARY = "static"  # the page the targets are judged on


class Counts(msgspec.Struct, kw_only=True, frozen=True):
    service: int
    baseline: int
    warmup: int
    levels: tuple[int, ...]
    leak: tuple[int, ...]  # RSS is read after each of these many renders
    idle_warm: int  # warm renders timed before the idle period
    idle_release_s: int  # the service's idle release in the idle check
    idle_rounds: int  # idle periods, each followed by one timed first render


FULL = Counts(
    service=40,
    baseline=10,
    warmup=3,
    levels=(1, 2, 4, 8),
    leak=(100, 1000),
    idle_warm=10,
    idle_release_s=5,
    idle_rounds=5,
)
QUICK = Counts(
    service=2, baseline=1, warmup=1, levels=(1, 2), leak=(5, 10), idle_warm=2, idle_release_s=2, idle_rounds=1
)
SOAK = (100, 1000, 5000)
QUICK_SOAK = (5, 10, 20)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke test, not figures")
    parser.add_argument("--engines", default="playwright,pyppeteer", help="comma-separated engines")
    parser.add_argument("--skip-leak", action="store_true", help="skip RSS after 100 and 1000 renders")
    parser.add_argument("--skip-peers", action="store_true", help="skip browserless and shot-scraper")
    parser.add_argument("--peers", default=",".join(peers.NAMES), help="comma-separated peers to time")
    parser.add_argument("--skip-idle", action="store_true", help="skip idle memory and first render after it")
    parser.add_argument(
        "--soak", action="store_true", help="only RSS after 100, 1000 and 5000 renders (recycling on)"
    )
    parser.add_argument(
        "--recycle-after", type=int, default=1000, help="the service's SCREENSHOT_BROWSER_RECYCLE_AFTER"
    )
    parser.add_argument("--json", help="where to write the results (bench-results.json; bench-soak.json)")
    parser.add_argument("--requests", type=int, help="requests per service measurement")
    parser.add_argument("--concurrency", help="comma-separated concurrency levels (default 1,2,4,8)")
    parser.add_argument("--pages", default="static,demo,heavy", help="comma-separated pages to render")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    args = parser.parse_args(argv)
    counts = QUICK if args.quick else FULL
    if args.requests:
        counts = msgspec.structs.replace(counts, service=args.requests)
    if args.concurrency:
        counts = msgspec.structs.replace(counts, levels=tuple(int(c) for c in args.concurrency.split(",")))
    if args.soak:
        counts = msgspec.structs.replace(counts, leak=QUICK_SOAK if args.quick else SOAK)
    args.counts = counts
    args.json = args.json or ("bench-soak.json" if args.soak else "bench-results.json")
    args.peer_list = [] if args.skip_peers else [p.strip() for p in args.peers.split(",") if p.strip()]
    if unknown := set(args.peer_list) - set(peers.NAMES):
        parser.error(f"unknown peers {sorted(unknown)}; known: {', '.join(peers.NAMES)}")
    args.engine_list = [e.strip() for e in args.engines.split(",") if e.strip()]
    args.page_list = [p.strip() for p in args.pages.split(",") if p.strip()]
    if PRIMARY not in args.page_list:
        parser.error(f"--pages must include {PRIMARY!r}: the targets are judged on it")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # SIGTERM unwinds like Ctrl+C, so the service, the emulator and the file server are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # progress shows, even written to a file
    results = asyncio.run(run(args))
    print_report(results)
    results["readiness"] = readiness.bench(args.engine_list, args.chromium, quick=args.quick)
    save(results, args.json)
    print(f"\nJSON written to {args.json}")
    return 0


def save(results: dict[str, Any], path: str) -> None:
    Path(path).write_bytes(msgspec.json.format(msgspec.json.encode(results)) + b"\n")


def dashboards_toml(pages: str) -> str:
    # Every dashboard takes an `n` that its page ignores: the load sends each request its own, so
    # none is merged with another by single flight (see measure.load).
    n = '[dashboards.{name}.params.n]\ndefault = "0"\npattern = "[0-9]{{1,12}}"\n'
    return f"""
[dashboards.static]
url = "{pages}/static.html?n={{n}}"
viewport = {{ width = 1280, height = 800, scale = 1 }}
wait = {{ until = "load" }}  # as the floor waits (auto readiness's cost: benchmarks.readiness)
{n.format(name="static")}
[dashboards.heavy]
url = "{pages}/heavy.html?n={{n}}"
viewport = {{ width = 1280, height = 800, scale = 1 }}
wait = {{ selector = "body[data-ready='true']" }}
{n.format(name="heavy")}
[dashboards.demo]
url = "{{service}}/demo/sales?range={{range}}&n={{n}}"
viewport = {{ width = 1280, height = 800, scale = 1 }}
wait = {{ selector = "body[data-ready='true']" }}
timezone = "Asia/Ulaanbaatar"
locale = "mn-MN"
[dashboards.demo.params.range]
default = "7d"
pattern = "today|7d|30d|90d"
{n.format(name="demo")}"""


def targets(pages: str, service: str) -> list[Target]:
    """The same pages as :func:`dashboards_toml`, for driving Chromium directly."""
    ready = "body[data-ready='true']"
    return [
        Target(dashboard="static", url=f"{pages}/static.html"),
        Target(
            dashboard="demo",
            url=f"{service}/demo/sales?range=7d",
            selector=ready,
            timezone="Asia/Ulaanbaatar",
            locale="mn-MN",
        ),
        Target(dashboard="heavy", url=f"{pages}/heavy.html", selector=ready),
    ]


class Service:
    """``screenshot-service serve`` as a process, with this run's settings."""

    def __init__(
        self,
        args: argparse.Namespace,
        work: Path,
        engine: str,
        emulator: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.port = procs.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = work / f"service-{engine}.log"
        self.env = {
            **os.environ,
            "SCREENSHOT_API_KEYS": f"bench:{API_KEY}",
            "SCREENSHOT_HOST": "127.0.0.1",
            "SCREENSHOT_PORT": str(self.port),
            "SCREENSHOT_ENGINE": engine,
            "SCREENSHOT_CHROMIUM_PATH": args.chromium,
            "SCREENSHOT_DASHBOARDS_FILE": str(work / "dashboards.toml"),
            "SCREENSHOT_TEMP_DIR": str(work / f"images-{engine}"),
            "SCREENSHOT_RATE_LIMIT_PER_KEY": "off",
            "SCREENSHOT_RATE_LIMIT_PER_PHONE": "off",
            "SCREENSHOT_META_GRAPH_URL": emulator,
            "SCREENSHOT_META_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
            "SCREENSHOT_META_ACCESS_TOKEN": META_TOKEN,
            **(extra or {}),
        }

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base,
            headers={"X-API-Key": API_KEY},
            timeout=120,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
        )

    async def start(self) -> tuple[subprocess.Popen[bytes], float]:
        """Start the process; returns it and the milliseconds from its start to a first good render."""
        started = time.perf_counter()
        with self.log.open("ab") as out:
            proc = subprocess.Popen(  # noqa: ASYNC220  (started once; its start is what is timed)
                [sys.executable, "-m", "screenshot_service", "serve"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        async with self.client() as client:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the service exited with {proc.returncode}; see {self.log}")
                try:
                    response = await client.post("/v1/renders", json={"dashboard": PRIMARY})
                    if response.status_code == httpx.codes.OK:
                        return proc, round((time.perf_counter() - started) * 1000, 1)
                except httpx.TransportError:
                    pass
                if time.perf_counter() - started > 120:
                    procs.stop(proc)
                    raise RuntimeError(f"the service did not render within 120 s; see {self.log}")
                await asyncio.sleep(0.02)


async def bench_engine(
    args: argparse.Namespace, work: Path, engine: str, pages: str, emulator: str
) -> dict[str, Any]:
    counts: Counts = args.counts
    service = Service(args, work, engine, emulator)
    out: dict[str, Any] = {}
    print(f"\n== {engine}: starting the service (cold start)")
    proc, cold_ms = await service.start()
    out["cold_start_ms"] = [cold_ms]
    pages_targets = [t for t in targets(pages, service.base) if t.dashboard in args.page_list]
    primary = next(t for t in pages_targets if t.dashboard == PRIMARY)
    with_peers = args.peer_list if engine == args.engine_list[0] else []  # the peers need no second look
    try:
        async with peers.started(
            with_peers, work, args.chromium, service_slots(), cached_only=args.quick
        ) as running:
            if running:
                out["peers"] = {"c1": {}, "loadavg_at_start": os.getloadavg()}
            peak = await at_concurrency_one(
                args, engine, service, pid=proc.pid, pages_targets=pages_targets, running=running, out=out
            )
            async with service.client() as client:
                for path, key in (("/v1/renders", "renders"), ("/v1/media", "media")):
                    for level in (c for c in counts.levels if c > 1):
                        total = max(counts.service, 2 * level)
                        print(f"== {engine}: {path} {PRIMARY} x{total} at concurrency {level}")
                        async with PeakRss(proc.pid) as rss:
                            out[key][PRIMARY][str(level)] = await load(client, path, PRIMARY, total, level)
                        if level == max(counts.levels):
                            peak = max(peak, rss.peak_mb)
                out["memory"] = {
                    "peak_rss_mb_at_max_concurrency": peak,
                    "max_concurrency": max(counts.levels),
                }
                out["renders_shared"] = await renders_shared(client)
                if by_name := {p.name: p for p in running if p.pid is not None}:
                    out["peers"] |= await peers_at_concurrency(client, by_name, primary, counts)
    finally:
        procs.stop(proc)
    print(f"== {engine}: launch-per-request baseline")
    out["baseline"] = {PRIMARY: await measure_baseline(engine, args.chromium, primary, count=counts.baseline)}
    if not args.skip_leak:
        out["memory"] |= await leak_check(args, work, engine, emulator, out)
    if not args.skip_idle:
        out["idle"] = await idle_check(args, work, engine, emulator)
    out["targets"] = judge(out)
    return out


async def at_concurrency_one(
    args: argparse.Namespace,
    engine: str,
    service: Service,
    *,
    pid: int,
    pages_targets: list[Target],
    running: list[peers.Peer],
    out: dict[str, Any],
) -> float:
    """Per page, the floor, the service's two routes and the peers in turns; each peer's pictures
    checked against the floor's. Returns the service's peak RSS when 1 is the only level."""
    counts: Counts = args.counts
    peak = 0.0
    async with service.client() as client, FLOORS[engine](args.chromium) as floor:

        def series(target: Target) -> dict[str, Sample]:
            theirs = {p.name: p.sample(target) for p in running if p.supports(target)}
            return three_ways(client, floor, target) | theirs

        for target in pages_targets:  # contexts made, upload path warm, floor's browser warm
            await in_turns(series(target), counts.warmup)
        out["floor"], out["renders"], out["media"] = {}, {}, {}
        for target in pages_targets:
            page = target.dashboard
            print(f"== {engine}: {', '.join(series(target))} in turns, {page} x{counts.service}")
            async with PeakRss(pid) as rss:  # the service's processes; the floor is the bench's
                turns = await in_turns(series(target), counts.service)
            if page == PRIMARY and max(counts.levels) == 1:
                peak = rss.peak_mb
            out["floor"][page] = turns.pop("floor")
            out["renders"][page] = {"1": turns.pop("renders")}
            out["media"][page] = {"1": turns.pop("media")}
            if turns:
                out["peers"]["c1"][page] = turns
        if running:
            compared = [t for t in pages_targets if t.dashboard in out["peers"]["c1"]]
            pictures = await peers.floor_pictures(floor, compared)
            out["peers"]["pictures"] = {p.name: peers.check_pictures(p, pictures) for p in running}
    return peak


def service_slots() -> int:
    """The service's render slots (``SCREENSHOT_RENDER_CONCURRENCY``, as the bench leaves it)."""
    slots: int = Settings.__struct_defaults__[Settings.__struct_fields__.index("render_concurrency")]
    return int(os.environ.get("SCREENSHOT_RENDER_CONCURRENCY", slots))


async def peers_at_concurrency(
    client: httpx.AsyncClient, running: dict[str, peers.Peer], primary: Target, counts: Counts
) -> dict[str, Any]:
    """The service and each peer with a server of its own at the service's slots, in turns; then each
    peer's memory once idle."""
    slots = service_slots()
    total = max(counts.service, 2 * slots)
    print(f"== service and {', '.join(running)} in turns, {PRIMARY} x{total} at concurrency {slots}")
    series: dict[str, Sample] = {"service": lambda: request(client, "/v1/renders", PRIMARY)}
    series |= {name: peer.sample(primary) for name, peer in running.items()}
    out: dict[str, Any] = {"concurrency": slots, "cn": await peers.throughput_in_turns(series, total, slots)}
    out["idle"] = {}
    for name, peer in running.items():
        assert peer.pid is not None
        out["idle"][name] = await peers.idle_memory(peer.pid)
    out["loadavg_at_end"] = os.getloadavg()
    return out


def three_ways(client: httpx.AsyncClient, floor: Capture, target: Target) -> dict[str, Sample]:
    """The three ways to get one picture of ``target`` at concurrency 1: Chromium direct, the service's
    PNG, the service's upload."""

    async def direct() -> int:
        return len(await floor(target))

    return {
        "floor": direct,
        "renders": lambda: request(client, "/v1/renders", target.dashboard),
        "media": lambda: request(client, "/v1/media", target.dashboard),
    }


async def renders_shared(client: httpx.AsyncClient) -> float:
    """Requests the service answered with another's render: 0 when every measured render was its own."""
    metrics = (await client.get("/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("screenshot_renders_shared_total")
    )


async def leak_check(
    args: argparse.Namespace, work: Path, engine: str, emulator: str, out: dict[str, Any]
) -> dict[str, Any]:
    """A fresh service with recycling on: its tree's RSS and PSS after each count of renders in
    ``counts.leak`` (at concurrency 4)."""
    marks: tuple[int, ...] = args.counts.leak
    recycle = {"SCREENSHOT_BROWSER_RECYCLE_AFTER": str(args.recycle_after)}
    service = Service(args, work, engine, emulator, recycle)
    listed = ", ".join(str(m) for m in marks)
    print(f"== {engine}: memory over time, RSS after {listed} renders (fresh service, recycle after "
          f"{args.recycle_after})")  # fmt: skip
    proc, cold_ms = await service.start()
    out.setdefault("cold_start_ms", []).append(cold_ms)
    memory: dict[str, Any] = {"leak_renders": list(marks), "recycle_after": args.recycle_after}
    try:
        async with service.client() as client:
            done = 1  # the cold-start render
            for mark in marks:
                stats = await load(client, "/v1/renders", PRIMARY, mark - done, 4)
                done = mark
                if stats.errors:
                    memory["leak_errors"] = memory.get("leak_errors", 0) + stats.errors
                await asyncio.sleep(1)  # let the last pages' memory be returned
                # A browser recycled at the mark is read once it is closed, not while two are up.
                await procs.wait_until(lambda: procs.tree_browsers(proc.pid) <= 1, 30)
                tree = procs.tree_memory(proc.pid)
                memory[f"rss_mb_after_{mark}"] = tree.rss_mb
                memory[f"tree_after_{mark}"] = tree
                load_now = os.getloadavg()[0]
                print(f"   after {mark}: RSS {tree.rss_mb} MB, PSS {tree.pss_mb} MB, load {load_now:.1f}")
    finally:
        procs.stop(proc)
    memory["rss_first_mb"] = memory[f"rss_mb_after_{marks[0]}"]
    memory["rss_last_mb"] = memory[f"rss_mb_after_{marks[-1]}"]
    return memory


async def idle_check(args: argparse.Namespace, work: Path, engine: str, emulator: str) -> dict[str, Any]:
    """A fresh service with a short idle release: warm renders, then ``idle_rounds`` times the idle
    period until its Chromium is gone (an event, polled, bounded), the tree's memory then, and the
    first render after it (which launches a browser again)."""
    counts: Counts = args.counts
    release_s = counts.idle_release_s
    extra = {
        "SCREENSHOT_BROWSER_IDLE_RELEASE_S": str(release_s),
        "SCREENSHOT_CONTEXT_IDLE_S": str(release_s),
    }
    service = Service(args, work, engine, emulator, extra)
    print(f"== {engine}: idle memory (release after {release_s} s) and the first render after it")
    proc, _ = await service.start()
    out: dict[str, Any] = {"release_s": release_s}
    firsts: list[float] = []
    try:
        async with service.client() as client:

            def one() -> Sample:
                return lambda: request(client, "/v1/renders", PRIMARY)

            out["warm"] = (await in_turns({"warm": one()}, counts.idle_warm))["warm"]
            out["busy"] = procs.tree_memory(proc.pid)
            for _ in range(counts.idle_rounds):
                t0 = time.perf_counter()
                out["released"] = await procs.wait_until(
                    lambda: not procs.tree_has_chromium(proc.pid), release_s + 60
                )
                out["idle_after_s"] = round(time.perf_counter() - t0, 1)
                out["tree"] = procs.tree_memory(proc.pid)
                t0 = time.perf_counter()
                if await request(client, "/v1/renders", PRIMARY) is not None:
                    firsts.append(time.perf_counter() - t0)
            out["first_after"] = summarize(firsts, counts.idle_rounds - len(firsts), sum(firsts), [])
            out["warm_after"] = (await in_turns({"warm": one()}, counts.idle_warm))["warm"]
    finally:
        procs.stop(proc)
    return out


class Check(msgspec.Struct, kw_only=True):
    name: str
    value: float
    target: str
    ok: bool
    note: str = ""


def at_most(name: str, value: float, bound: float, note: str = "") -> Check:
    return Check(name=name, value=round(value, 3), target=f"<= {bound:g}", ok=value <= bound, note=note)


def at_least(name: str, value: float, bound: float, note: str = "") -> Check:
    return Check(name=name, value=round(value, 3), target=f">= {bound:g}", ok=value >= bound, note=note)


def judge(out: dict[str, Any]) -> list[Check]:
    """The issues' targets, on the static dashboard at 1280x800."""
    renders: dict[str, Stats] = out["renders"][PRIMARY]
    media: dict[str, Stats] = out["media"][PRIMARY]
    floor: Stats = out["floor"][PRIMARY]
    baseline: Stats = out["baseline"][PRIMARY]
    checks = [at_most("service p50 / floor p50, c=1", renders["1"].p50_ms / floor.p50_ms, 0.85)]
    if "4" in renders:
        checks.append(
            at_least("throughput c=4 / c=1", renders["4"].throughput_rps / renders["1"].throughput_rps, 1.8)
        )
    checks.append(at_least("launch-per-request p50 / service p50", baseline.p50_ms / renders["1"].p50_ms, 5))
    checks += judge_memory(out["memory"])
    checks.append(
        Check(
            name="/v1/media p50 - /v1/renders p50 (ms)",
            value=round(media["1"].p50_ms - renders["1"].p50_ms, 1),
            target="< 15",
            ok=media["1"].p50_ms - renders["1"].p50_ms < 15,
        )
    )
    checks += judge_peers(out)
    return checks


def judge_memory(memory: dict[str, Any]) -> list[Check]:
    if "rss_last_mb" not in memory:
        return []
    first, last = memory["leak_renders"][0], memory["leak_renders"][-1]
    growth = memory["rss_last_mb"] / memory["rss_first_mb"]
    return [at_most(f"RSS after {last} / after {first} renders", growth, 1.10)]


def judge_peers(out: dict[str, Any]) -> list[Check]:
    """Beside browserless: latency at concurrency 1, throughput at the service's slots, idle memory; and
    the service's first render after its idle release beside a warm one."""
    checks = []
    found = out.get("peers", {})
    pictures = found.get("pictures", {})
    refused = {name for name, pages in pictures.items() if PRIMARY in pages and not pages[PRIMARY].ok}
    browserless = found.get("c1", {}).get(PRIMARY, {}).get("browserless")
    if browserless is not None:
        check = at_most(
            "service p50 / browserless p50, c=1",
            out["renders"][PRIMARY]["1"].p50_ms / browserless.p50_ms,
            0.45,
        )
        if "browserless" in refused:
            check.ok, check.note = False, "REFUSED: browserless's picture is not the page"
        checks.append(check)
    if "browserless" in found.get("cn", {}):
        cn = found["cn"]
        checks.append(
            at_least(
                f"service req/s / browserless req/s, c={found['concurrency']}",
                cn["service"].throughput_rps / cn["browserless"].throughput_rps,
                4,
            )
        )
    idle = out.get("idle")
    if idle is not None and "browserless" in found.get("idle", {}):
        note = "" if idle["released"] else "the browser was not released within the wait"
        checks.append(
            at_most(
                "idle PSS, service tree / browserless tree",
                idle["tree"].pss_mb / found["idle"]["browserless"].pss_mb,
                1.2,
                note=note,
            )
        )
    if idle is not None:
        first, warm = idle["first_after"], idle["warm"]
        ratio = first.p50_ms / warm.p50_ms
        if idle["released"]:
            checks.append(at_most("first render after idle release / warm p50", ratio, 2))
        else:
            checks.append(
                Check(name="first render after idle release / warm p50", value=round(ratio, 3),
                      target="<= 2", ok=False, note="not measured: the browser was not released")
            )  # fmt: skip
    return checks


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="screenshot-bench-") as tmp:
        work = Path(tmp)
        site = work / "site"
        site.mkdir()
        write_pages(site)
        pages_port, emulator_port = procs.free_port(), procs.free_port()
        pages, emulator = f"http://127.0.0.1:{pages_port}", f"http://127.0.0.1:{emulator_port}"
        (work / "dashboards.toml").write_text(dashboards_toml(pages), encoding="utf-8")
        results: dict[str, Any] = {
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "quick": args.quick,
            "soak": args.soak,
            "counts": args.counts,
            "machine": {"cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()},
            "engines": {},
        }
        with (
            procs.file_server(site, pages_port, work / "pages.log") as files,
            procs.emulator(emulator_port, META_TOKEN, PHONE_NUMBER_ID, work / "emulator.log") as emu,
        ):
            procs.wait_http(f"{pages}/static.html", files)
            procs.wait_http(f"{emulator}/_emulator/uploads", emu)
            for engine in args.engine_list:
                try:
                    if args.soak:
                        memory = await leak_check(args, work, engine, emulator, {})
                        results["engines"][engine] = {"memory": memory, "targets": judge_memory(memory)}
                    else:
                        results["engines"][engine] = await bench_engine(args, work, engine, pages, emulator)
                    save(results, args.json)  # what is done so far, should a later engine fail
                except Exception:
                    for log in work.glob("*.log"):  # noqa: ASYNC240  (failing anyway)
                        print(
                            f"--- {log.name} (last lines)\n" + "\n".join(log.read_text().splitlines()[-20:])
                        )
                    raise
        results["machine"]["loadavg_at_end"] = os.getloadavg()
        return results


def _fmt(value: float) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:g}"


def print_report(results: dict[str, Any]) -> None:
    plain = msgspec.to_builtins(results)
    print(
        f"\nScreenshot service benchmark  {plain['started']}  cpus={plain['machine']['cpus']}  "
        f"load {plain['machine']['loadavg_at_start'][0]:.1f} -> {plain['machine']['loadavg_at_end'][0]:.1f}"
        + ("  (QUICK: not figures)" if plain["quick"] else "")
        + ("  SOAK" if plain.get("soak") else "")
    )
    for engine, out in plain["engines"].items():
        if "renders" in out:
            print_latencies(engine, out)
        print_memory(out)
        print_peers(out)
        print()
        for check in out["targets"]:
            verdict = "PASS" if check["ok"] else "MISS"
            note = f"  {check['note']}" if check["note"] else ""
            value = _fmt(check["value"])
            print(f"  {verdict}  {check['name']:<46} {value:>8}  (target {check['target']}){note}")


def _row(engine: str, what: str, page: str, conc: str, s: dict[str, Any]) -> str:
    return (
        f"{engine:<11}{what:<27}{page:<8}{conc:>5}{s['n']:>6}{s['errors']:>5}{_fmt(s['p50_ms']):>9}"
        f"{_fmt(s['p95_ms']):>9}{_fmt(s['throughput_rps']):>8}{s['bytes_p50'] // 1024:>7}"
    )


HEADER = (
    f"{'engine':<11}{'what':<27}{'page':<8}{'conc':>5}{'n':>6}{'err':>5}"
    f"{'p50 ms':>9}{'p95 ms':>9}{'req/s':>8}{'KB':>7}"
)


def print_latencies(engine: str, out: dict[str, Any]) -> None:
    print("\n" + HEADER + "\n" + "-" * len(HEADER))
    rows: list[tuple[str, str, str, dict[str, Any]]] = []
    rows += [("floor (direct)", page, "1", s) for page, s in out["floor"].items()]
    for key in ("renders", "media"):
        rows += [(f"service /v1/{key}", page, c, s) for page, per in out[key].items() for c, s in per.items()]
    rows += [("launch per request", page, "1", s) for page, s in out["baseline"].items()]
    for page, per in out.get("peers", {}).get("c1", {}).items():
        rows += [(f"peer {name}", page, "1", s) for name, s in per.items()]
    cn = out.get("peers", {}).get("cn", {})
    level = str(out.get("peers", {}).get("concurrency", ""))
    rows += [
        (f"{'service' if n == 'service' else 'peer ' + n} (turns)", PRIMARY, level, s) for n, s in cn.items()
    ]
    for what, page, conc, s in rows:
        print(_row(engine, what, page, conc, s))
    cold = ", ".join(f"{v:g} ms" for v in out["cold_start_ms"])
    print(f"\ncold start (process start to first render): {cold}")
    print(f"requests answered by another's render (single flight): {out['renders_shared']:g}")
    memory = out["memory"]
    peak, level = memory["peak_rss_mb_at_max_concurrency"], memory["max_concurrency"]
    print(f"peak RSS, service + Chromium, concurrency {level}: {peak} MB")


def _tree(tree: dict[str, Any]) -> str:
    return (
        f"RSS {tree['rss_mb']:g} MB (PSS {tree['pss_mb']:g} MB), {tree['processes']} processes, "
        f"root alone {tree['root_rss_mb']:g} MB"
    )


def print_memory(out: dict[str, Any]) -> None:
    memory = out["memory"]
    if "leak_renders" in memory:
        print(f"memory over time (fresh service, recycle after {memory['recycle_after']}):")
        for mark in memory["leak_renders"]:
            print(f"  after {mark:>5} renders: {_tree(memory[f'tree_after_{mark}'])}")
    if idle := out.get("idle"):
        state = "browser released" if idle["released"] else "browser still up (no release)"
        print(
            f"idle: after {idle['idle_after_s']:g} s without renders ({state}): {_tree(idle['tree'])}\n"
            f"  busy, just after {idle['warm']['n']} warm renders: {_tree(idle['busy'])}\n"
            f"  first render after the idle period {_fmt(idle['first_after']['p50_ms'])} ms; warm p50 "
            f"{_fmt(idle['warm']['p50_ms'])} ms before it, {_fmt(idle['warm_after']['p50_ms'])} ms after"
        )


def print_peers(out: dict[str, Any]) -> None:
    found = out.get("peers")
    if not found:
        return
    start, end = found["loadavg_at_start"][0], found.get("loadavg_at_end", found["loadavg_at_start"])[0]
    print(f"peers (load {start:.1f} -> {end:.1f}):")
    service = out["renders"][PRIMARY]["1"]["p50_ms"]
    for name, pages in found.get("pictures", {}).items():
        shown = ", ".join(
            f"{page} {'the page' if v['ok'] else 'NOT THE PAGE'} ({v['differing']:.2%} of pixels differ"
            + (f"; {v['detail']}" if v["detail"] else "")
            + ")"
            for page, v in pages.items()
        )
        theirs = found["c1"].get(PRIMARY, {}).get(name)
        ratio = f"; service p50 / {name} p50 {service / theirs['p50_ms']:.2f}" if theirs else ""
        print(f"  {name}: {shown}{ratio}")
    for name, tree in found.get("idle", {}).items():
        print(f"  {name} idle: {_tree(tree)}")
