"""``make bench``: render fixed pages through the service and straight through Chromium, print and save.

    python -m benchmarks [--quick] [--engines playwright,pyppeteer] [--skip-leak] [--json PATH]

Serves a static dashboard and a heavy canvas page from a file server on 127.0.0.1, uses the demo
dashboard the service serves itself, uploads to a local Meta emulator, and starts the service as a real
process (``screenshot-service serve``) once per engine, plus once more for the leak check.
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

from . import procs, readiness
from .direct import FLOORS, Capture, Target, measure_baseline
from .measure import PeakRss, Sample, Stats, in_turns, load, request
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
    leak: tuple[int, int]


FULL = Counts(service=40, baseline=10, warmup=3, levels=(1, 2, 4, 8), leak=(100, 1000))
QUICK = Counts(service=2, baseline=1, warmup=1, levels=(1, 2), leak=(5, 10))


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke test, not figures")
    parser.add_argument("--engines", default="playwright,pyppeteer", help="comma-separated engines")
    parser.add_argument("--skip-leak", action="store_true", help="skip RSS after 100 and 1000 renders")
    parser.add_argument("--json", default="bench-results.json", help="where to write the results")
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
    args.counts = counts
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

    def __init__(self, args: argparse.Namespace, work: Path, engine: str, emulator: str) -> None:
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
    peak = 0.0  # the service's memory at the highest concurrency measured
    try:
        async with service.client() as client, FLOORS[engine](args.chromium) as floor:
            for target in pages_targets:  # contexts made, upload path warm, floor's browser warm
                await in_turns(three_ways(client, floor, target), counts.warmup)
            out["floor"], out["renders"], out["media"] = {}, {}, {}
            for target in pages_targets:
                page = target.dashboard
                print(f"== {engine}: floor, /v1/renders and /v1/media in turns, {page} x{counts.service}")
                async with PeakRss(proc.pid) as rss:  # the service's processes; the floor is the bench's
                    turns = await in_turns(three_ways(client, floor, target), counts.service)
                if page == PRIMARY and max(counts.levels) == 1:
                    peak = rss.peak_mb
                out["floor"][page] = turns["floor"]
                out["renders"][page] = {"1": turns["renders"]}
                out["media"][page] = {"1": turns["media"]}
        async with service.client() as client:
            for path, key in (("/v1/renders", "renders"), ("/v1/media", "media")):
                for level in (c for c in counts.levels if c > 1):
                    total = max(counts.service, 2 * level)
                    print(f"== {engine}: {path} {PRIMARY} x{total} at concurrency {level}")
                    async with PeakRss(proc.pid) as rss:
                        out[key][PRIMARY][str(level)] = await load(client, path, PRIMARY, total, level)
                    if level == max(counts.levels):
                        peak = max(peak, rss.peak_mb)
            out["memory"] = {"peak_rss_mb_at_max_concurrency": peak, "max_concurrency": max(counts.levels)}
            out["renders_shared"] = await renders_shared(client)
    finally:
        procs.stop(proc)
    print(f"== {engine}: launch-per-request baseline")
    primary = next(t for t in pages_targets if t.dashboard == PRIMARY)
    out["baseline"] = {PRIMARY: await measure_baseline(engine, args.chromium, primary, count=counts.baseline)}
    if not args.skip_leak:
        out["memory"] |= await leak_check(args, work, engine, emulator, out)
    out["targets"] = judge(out)
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
    """A fresh service: RSS of it and its Chromium after the first N1 and the first N2 renders."""
    first, second = args.counts.leak
    service = Service(args, work, engine, emulator)
    print(f"== {engine}: leak check, RSS after {first} and {second} renders (fresh service)")
    proc, cold_ms = await service.start()
    out["cold_start_ms"].append(cold_ms)
    memory: dict[str, Any] = {"leak_renders": [first, second]}
    try:
        async with service.client() as client:
            done = 1  # the cold-start render
            for mark in (first, second):
                stats = await load(client, "/v1/renders", PRIMARY, mark - done, 4)
                done = mark
                if stats.errors:
                    memory["leak_errors"] = memory.get("leak_errors", 0) + stats.errors
                await asyncio.sleep(1)  # let the last pages' memory be returned
                memory[f"rss_mb_after_{mark}"] = procs.tree_rss_mb(proc.pid)
    finally:
        procs.stop(proc)
    memory["rss_first_mb"] = memory[f"rss_mb_after_{first}"]
    memory["rss_second_mb"] = memory[f"rss_mb_after_{second}"]
    return memory


class Check(msgspec.Struct, kw_only=True):
    name: str
    value: float
    target: str
    ok: bool


def judge(out: dict[str, Any]) -> list[Check]:
    """The issue's targets, on the static dashboard at 1280x800."""
    checks = []
    renders: dict[str, Stats] = out["renders"][PRIMARY]
    media: dict[str, Stats] = out["media"][PRIMARY]
    floor: Stats = out["floor"][PRIMARY]
    baseline: Stats = out["baseline"][PRIMARY]
    ratio = renders["1"].p50_ms / floor.p50_ms
    checks.append(
        Check(name="service p50 / floor p50, c=1", value=round(ratio, 2), target="<= 1.10", ok=ratio <= 1.10)
    )
    if "4" in renders:
        scale = renders["4"].throughput_rps / renders["1"].throughput_rps
        checks.append(
            Check(name="throughput c=4 / c=1", value=round(scale, 2), target=">= 1.8", ok=scale >= 1.8)
        )
    naive = baseline.p50_ms / renders["1"].p50_ms
    checks.append(
        Check(
            name="launch-per-request p50 / service p50", value=round(naive, 2), target=">= 5", ok=naive >= 5
        )
    )
    memory = out["memory"]
    if "rss_second_mb" in memory:
        growth = memory["rss_second_mb"] / memory["rss_first_mb"]
        first, second = memory["leak_renders"]
        checks.append(
            Check(
                name=f"RSS after {second} / after {first} renders",
                value=round(growth, 3),
                target="<= 1.10",
                ok=growth <= 1.10,
            )
        )
    extra = media["1"].p50_ms - renders["1"].p50_ms
    checks.append(
        Check(
            name="/v1/media p50 - /v1/renders p50 (ms)", value=round(extra, 1), target="< 15", ok=extra < 15
        )
    )
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
    )
    header = (
        f"{'engine':<11}{'what':<22}{'page':<8}{'conc':>5}{'n':>6}{'err':>5}"
        f"{'p50 ms':>9}{'p95 ms':>9}{'req/s':>8}{'KB':>7}"
    )
    for engine, out in plain["engines"].items():
        print("\n" + header + "\n" + "-" * len(header))
        rows: list[tuple[str, str, str, dict[str, Any]]] = []
        rows += [("floor (direct)", page, "1", s) for page, s in out["floor"].items()]
        for key in ("renders", "media"):
            rows += [
                (f"service /v1/{key}", page, c, s) for page, per in out[key].items() for c, s in per.items()
            ]
        rows += [("launch per request", page, "1", s) for page, s in out["baseline"].items()]
        for what, page, conc, s in rows:
            print(
                f"{engine:<11}{what:<22}{page:<8}{conc:>5}{s['n']:>6}{s['errors']:>5}{_fmt(s['p50_ms']):>9}"
                f"{_fmt(s['p95_ms']):>9}{_fmt(s['throughput_rps']):>8}{s['bytes_p50'] // 1024:>7}"
            )
        memory = out["memory"]
        cold = ", ".join(f"{v:g} ms" for v in out["cold_start_ms"])
        print(f"\ncold start (process start to first render): {cold}")
        print(f"requests answered by another's render (single flight): {out['renders_shared']:g}")
        peak, level = memory["peak_rss_mb_at_max_concurrency"], memory["max_concurrency"]
        print(f"peak RSS, service + Chromium, concurrency {level}: {peak} MB")
        if "rss_first_mb" in memory:
            first, second = memory["leak_renders"]
            after = f"{memory['rss_first_mb']} MB; after {second}: {memory['rss_second_mb']} MB"
            print(f"RSS after {first} renders: {after}")
        print()
        for check in out["targets"]:
            verdict = "PASS" if check["ok"] else "MISS"
            print(f"  {verdict}  {check['name']:<42} {check['value']:>8g}  (target {check['target']})")
