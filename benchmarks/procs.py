"""Processes the benchmark starts (file server, Meta emulator, the service) and their memory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import httpx
import msgspec


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.contextmanager
def process(
    argv: list[str], log: Path, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` with its output in ``log``; SIGTERM (then SIGKILL) and reaped on exit."""
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=dict(env or os.environ))
    try:
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    """Block until ``url`` answers at all (any status); fail early if ``proc`` died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(httpx.TransportError):
            httpx.get(url, timeout=2)
            return
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s")


def file_server(
    directory: Path, port: int, log: Path
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """Python's own static file server: a separate process, so it never competes with our event loop."""
    argv = [
        sys.executable,
        "-m",
        "http.server",
        str(port),
        "--bind",
        "127.0.0.1",
        "--directory",
        str(directory),
    ]
    return process(argv, log)


def emulator(
    port: int, token: str, phone_number_id: str, log: Path
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """The local WhatsApp Graph API emulator that ``/v1/media`` uploads to."""
    argv = [
        sys.executable, "-m", "screenshot_service", "meta-emulator",
        "--port", str(port), "--token", token, "--phone-number-id", phone_number_id,
    ]  # fmt: skip
    return process(argv, log)


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants, from ``/proc`` (Chromium's helpers are grandchildren)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_rss_mb(root: int) -> float:
    """Resident memory of ``root`` and its descendants, summed (shared pages count once per process)."""
    return round(sum(_kb(Path(f"/proc/{pid}/status"), "VmRSS:") for pid in tree_pids(root)) / 1024, 1)


class TreeMemory(msgspec.Struct, kw_only=True, frozen=True):
    """Memory of a process tree: summed RSS (shared pages once per process), PSS (shared pages split
    between their sharers, so the sum is what the tree really holds) and how many processes."""

    rss_mb: float
    pss_mb: float
    processes: int
    root_rss_mb: float  # the root process alone (the service's Python, or browserless's Node)


def _kb(path: Path, field: str) -> int:
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    return 0  # gone meanwhile


def tree_memory(root: int) -> TreeMemory:
    """RSS and PSS of ``root`` and its descendants, from ``/proc/<pid>/smaps_rollup``."""
    pids = tree_pids(root)
    rss = sum(_kb(Path(f"/proc/{pid}/status"), "VmRSS:") for pid in pids)
    pss = sum(_kb(Path(f"/proc/{pid}/smaps_rollup"), "Pss:") for pid in pids)
    root = _kb(Path(f"/proc/{root}/status"), "VmRSS:")
    return TreeMemory(
        rss_mb=round(rss / 1024, 1),
        pss_mb=round(pss / 1024, 1),
        processes=len(pids),
        root_rss_mb=round(root / 1024, 1),
    )


def _chromium(pid: int) -> str | None:
    """The command line of ``pid`` if it is a Chromium process (its helpers carry the name too; they
    rewrite their arguments into one string)."""
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/comm").read_text().startswith(("chrom", "headless_shell")):
            return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ")
    return None


def tree_has_chromium(root: int) -> bool:
    """Whether a Chromium process runs under ``root``."""
    return any(_chromium(pid) is not None for pid in tree_pids(root)[1:])


def tree_browsers(root: int) -> int:
    """How many Chromium browsers (not their renderers and helpers) run under ``root``: two while a
    recycled one is being closed."""
    lines = (_chromium(pid) for pid in tree_pids(root)[1:])
    helper = (" --type=", "crashpad_handler")  # renderers, GPU, utilities, zygotes; crash reporters
    return sum(1 for line in lines if line is not None and not any(h in line for h in helper))


async def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout_s`` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval_s)
    return True
