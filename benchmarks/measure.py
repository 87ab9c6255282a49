"""Latency statistics, and a closed-loop load generator: N workers sending requests back to back."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Awaitable, Callable, Mapping

import httpx
import msgspec

from .procs import tree_rss_mb


class Stats(msgspec.Struct, kw_only=True):
    """One measured series: successful samples, failures, latency percentiles and throughput."""

    n: int
    errors: int
    p50_ms: float
    p95_ms: float
    mean_ms: float
    throughput_rps: float
    bytes_p50: int = 0


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(latencies_s: list[float], errors: int, wall_s: float, sizes: list[int]) -> Stats:
    ordered = sorted(latencies_s)
    sizes = sorted(sizes)
    return Stats(
        n=len(ordered),
        errors=errors,
        p50_ms=round(percentile(ordered, 0.5) * 1000, 1),
        p95_ms=round(percentile(ordered, 0.95) * 1000, 1),
        mean_ms=round(sum(ordered) / len(ordered) * 1000, 1) if ordered else math.nan,
        throughput_rps=round(len(ordered) / wall_s, 2) if wall_s > 0 else math.nan,
        bytes_p50=sizes[len(sizes) // 2] if sizes else 0,
    )


Sample = Callable[[], Awaitable[int | None]]
"""One request or capture: the size of what it made, or None when it failed."""


async def in_turns(series: Mapping[str, Sample], rounds: int) -> dict[str, Stats]:
    """Time ``rounds`` rounds that each call every one of ``series`` once, one after the other
    (with one series: ``rounds`` calls in a row).

    A machine's speed drifts (other jobs, CPU steal, thermal limits); taken in turns, the series share
    the drift, so their ratios and differences hold even when the absolute figures move. Each round
    starts one further along, so no series always follows the same one. Throughput is per series:
    samples over the time spent in its own calls.
    """
    names = list(series)
    latencies: dict[str, list[float]] = {name: [] for name in names}
    sizes: dict[str, list[int]] = {name: [] for name in names}
    errors = dict.fromkeys(names, 0)
    for i in range(rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            t0 = time.perf_counter()
            size = await series[name]()
            elapsed = time.perf_counter() - t0
            if size is None:
                errors[name] += 1
            else:
                latencies[name].append(elapsed)
                sizes[name].append(size)
    return {
        name: summarize(latencies[name], errors[name], sum(latencies[name]), sizes[name]) for name in names
    }


_SEQUENCE = itertools.count()
"""Each request's own ``n``: identical requests under way would share one render (single flight)."""


_REPORTED: set[tuple[str, str, str]] = set()
"""(service, path, dashboard) whose first failure was printed: the rest of its failures are counted."""


async def request(client: httpx.AsyncClient, path: str, dashboard: str) -> int | None:
    """One request to the service; the PNG's size, or None (the first failure of each is printed).

    It names ``dashboard`` with a parameter ``n`` of its own, so no two requests are alike and each
    is rendered (and uploaded) for itself: the figures measure the pool, not the sharing of renders.
    """
    body = {"dashboard": dashboard, "params": {"n": str(next(_SEQUENCE))}}
    response = await client.post(path, json=body)
    if response.status_code == httpx.codes.OK:
        return len(response.content) if path.endswith("renders") else int(response.json()["bytes"])
    if (seen := (str(client.base_url), path, dashboard)) not in _REPORTED:
        _REPORTED.add(seen)
        print(f"  ! {path} {dashboard}: HTTP {response.status_code} {response.text[:300]}")
    return None


async def load(client: httpx.AsyncClient, path: str, dashboard: str, total: int, concurrency: int) -> Stats:
    """Send ``total`` requests (see :func:`request`) from ``concurrency`` workers, each starting its
    next when one answers."""
    return await closed_loop(lambda: request(client, path, dashboard), total, concurrency)


async def closed_loop(sample: Sample, total: int, concurrency: int) -> Stats:
    """Call ``sample`` ``total`` times from ``concurrency`` workers, each starting its next call when its
    last one ends; throughput is samples over the wall time of the whole."""
    latencies: list[float] = []
    sizes: list[int] = []
    errors = 0
    left = total

    async def worker() -> None:
        nonlocal left, errors
        while left > 0:
            left -= 1
            t0 = time.perf_counter()
            size = await sample()
            if size is None:
                errors += 1
            else:
                latencies.append(time.perf_counter() - t0)
                sizes.append(size)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return summarize(latencies, errors, time.perf_counter() - started, sizes)


class PeakRss:
    """Samples the resident memory of a process tree every ``interval_s`` while in use; keeps the peak."""

    def __init__(self, pid: int, interval_s: float = 0.1) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.peak_mb = max(self.peak_mb, await asyncio.to_thread(tree_rss_mb, self.pid))
            await asyncio.sleep(self.interval_s)

    async def __aenter__(self) -> PeakRss:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self.peak_mb = max(self.peak_mb, await asyncio.to_thread(tree_rss_mb, self.pid))
