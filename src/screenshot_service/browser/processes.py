"""Chromium's processes: found, measured and killed by process group, and their orphans reaped.

Chromium forks a zygote, renderers and utility processes, all in the main process's process group.
When the main process dies (a crash, ``kill -9``), those children are orphaned: the kernel hands them
to the nearest *subreaper*, else to PID 1, which in a container is this service itself. So the
:class:`Reaper` makes the service a subreaper, kills a gone browser's whole group, and reaps the
zombies of the groups it launched (only those: other children belong to asyncio or ``subprocess``,
which reap their own). The process table is read through psutil.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import threading
import time

import msgspec
import psutil
import structlog

log = structlog.get_logger(__name__)

_PR_SET_CHILD_SUBREAPER = 36
CRASH_HANDLER = "chrome_crashpad"
"""Name prefix of Chromium's crash handlers, which leave the browser's process group."""


class Proc(msgspec.Struct, frozen=True):
    """One process, as the table shows it."""

    pid: int
    ppid: int
    pgid: int
    zombie: bool
    name: str


_TABLE_LOCK = threading.Lock()
"""psutil's ``process_iter`` keeps its Process objects in a module-wide cache that two threads must not
walk at once (the watcher reads the table in a worker thread; tests and benchmarks read it too)."""


def process_table() -> list[Proc]:
    """Every process right now (those that exit while it is read are left out)."""
    with _TABLE_LOCK:
        return _read_table()


def _read_table() -> list[Proc]:
    table = []
    for process in psutil.process_iter(["ppid", "status", "name"]):
        try:
            pgid = os.getpgid(process.pid)
        except OSError:  # gone meanwhile, or not ours to see
            continue
        info = process.info
        table.append(
            Proc(
                pid=process.pid,
                ppid=info["ppid"] or 0,
                pgid=pgid,
                zombie=info["status"] == psutil.STATUS_ZOMBIE,
                name=info["name"] or "",
            )
        )
    return table


def descendants(root: int, table: list[Proc] | None = None) -> list[Proc]:
    """The processes below ``root`` (children, their children...), zombies included."""
    children: dict[int, list[Proc]] = {}
    for proc in process_table() if table is None else table:
        children.setdefault(proc.ppid, []).append(proc)
    found: list[Proc] = []
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child.pid)
    return found


def group(pgid: int, table: list[Proc] | None = None) -> list[Proc]:
    """The processes of process group ``pgid``, zombies included."""
    return [proc for proc in (process_table() if table is None else table) if proc.pgid == pgid]


def find_group_leader(marker: str, below: int) -> int | None:
    """The pid of the process-group leader below ``below`` whose command line holds ``marker``."""
    for proc in descendants(below):
        if proc.pid != proc.pgid:
            continue
        with contextlib.suppress(psutil.Error):
            if marker in psutil.Process(proc.pid).cmdline():
                return proc.pid
    return None


def group_rss_bytes(pgid: int, table: list[Proc] | None = None) -> int:
    """Resident memory of a process group: each process's proportional share (PSS), so the pages its
    processes share (Chromium's code, mapped by every renderer) count once, not once per process.

    Summed RSS would count a blank renderer as ~290 MB where it adds ~70 MB: a few warm pages would
    pass the recycle limit. RSS stands in for a process whose ``smaps_rollup`` cannot be read.
    """
    total = 0
    for proc in group(pgid, table):
        try:
            total += _pss_bytes(proc.pid)
        except OSError:
            with contextlib.suppress(psutil.Error):
                total += psutil.Process(proc.pid).memory_info().rss
    return total


def _pss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:  # noqa: PTH123
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no Pss in /proc/{pid}/smaps_rollup")


def kill_group(pgid: int) -> None:
    """SIGKILL every process of the group; nothing to do when it is gone already."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def crash_handlers(table: list[Proc] | None = None) -> set[int]:
    """Chromium crash handlers that are our children (handed to us as their subreaper), zombies included."""
    me = os.getpid()
    return {
        p.pid
        for p in (process_table() if table is None else table)
        if p.ppid == me and p.name.startswith(CRASH_HANDLER)
    }


def become_subreaper() -> bool:
    """Ask Linux to hand this process the orphans of its descendants; False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


class Reaper:
    """The process groups of every browser the service launched, until none of their processes is left.

    ``adopt`` a browser when it starts, ``release`` it when it goes (its group killed and reaped),
    ``sweep`` now and then (orphans reaped), ``close`` at shutdown.
    """

    def __init__(self) -> None:
        self._groups: set[int] = set()
        self._own: set[int] = set()
        """Browser processes that are our own children (not Playwright's): asyncio reaps those."""
        self._helpers: set[int] = set()
        """Crash handlers of the browsers we know, adopted with them."""

    def start(self) -> None:
        """Become the subreaper of Chromium's orphans."""
        become_subreaper()

    @property
    def busy(self) -> bool:
        """Whether any group is still to be watched."""
        return bool(self._groups)

    def adopt(self, pgid: int | None) -> set[int]:
        """Watch a browser's process group; the crash handlers that appeared with it (not in its group)."""
        helpers = crash_handlers() - self._helpers
        self._helpers |= helpers
        if pgid is not None:
            self._groups.add(pgid)
            with contextlib.suppress(psutil.Error):
                if psutil.Process(pgid).ppid() == os.getpid():
                    self._own.add(pgid)
        return helpers

    async def release(self, pgid: int | None, helpers: set[int]) -> None:
        """A browser is gone or closed: kill what is left of its group and its helpers, and reap them."""
        if pgid is not None:
            kill_group(pgid)
            await self._reap_group(pgid)
        await self._reap_helpers(helpers)
        self._helpers -= helpers

    def sweep(self, table: list[Proc] | None = None) -> int:
        """Reap our zombie children that are Chromium's orphans; returns how many were reaped.

        An orphan is a process of one of our groups, or Chromium's crash handler (which leaves the
        group). Browsers we started ourselves are spared: asyncio waits for those, and reaping them
        here would rob it of their exit status.
        """
        me = os.getpid()
        reaped = 0
        for proc in process_table() if table is None else table:
            orphan = proc.pgid in self._groups or proc.name.startswith(CRASH_HANDLER)
            if proc.ppid == me and proc.zombie and orphan and proc.pid not in self._own:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(proc.pid, os.WNOHANG)
                    reaped += 1
        return reaped

    async def close(self) -> None:
        """Kill and reap every group left; crash handlers of browsers that died earlier exit in their own
        time, so they are reaped a last time, for a second at most."""
        for pgid in list(self._groups):
            kill_group(pgid)
            await self._reap_group(pgid)
        end = time.monotonic() + 1.0
        while crash_handlers() and time.monotonic() < end:
            self.sweep()
            await asyncio.sleep(0.1)
        self.sweep()

    async def _reap_group(self, pgid: int, timeout_s: float = 5.0) -> None:
        """Reap the group's orphans until none of its processes is left (or the time is up)."""
        end = time.monotonic() + timeout_s
        while True:
            self.sweep()
            if not group(pgid):
                self._groups.discard(pgid)
                self._own.discard(pgid)
                return
            if time.monotonic() >= end:
                log.warning("browser processes linger", pgid=pgid, left=len(group(pgid)))
                return
            await asyncio.sleep(0.05)

    async def _reap_helpers(self, pids: set[int], timeout_s: float = 2.0) -> None:
        """Give a closed browser's crash handlers a moment to exit, then kill them; reap them."""
        end = time.monotonic() + timeout_s
        while pids & crash_handlers():
            if time.monotonic() >= end:
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
            self.sweep()
            if time.monotonic() >= end + 1:
                return
            await asyncio.sleep(0.05)
        self.sweep()
