"""Chromium's processes as Linux shows them in /proc: find them, measure them, kill whole groups, reap.

Chromium forks a zygote, renderers and utility processes, all in the main process's process group.
When the main process dies (a crash, ``kill -9``), those children are orphaned: the kernel hands them
to the nearest *subreaper*, else to PID 1, which in a container is often this service itself. So the
service makes itself a subreaper, kills a dead browser's whole group, and reaps the zombies of the
groups it launched (only those: other children belong to asyncio or ``subprocess``, which reap their own).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from pathlib import Path

import msgspec

_PR_SET_CHILD_SUBREAPER = 36
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class Proc(msgspec.Struct, frozen=True):
    """One line of the process table."""

    pid: int
    ppid: int
    pgid: int
    state: str
    comm: str


def process_table() -> list[Proc]:
    """Every process /proc shows right now (those that exit while it is read are left out); empty
    where there is no /proc (not Linux): supervision then relies on the engines alone."""
    table = []
    try:
        entries = list(os.scandir("/proc"))
    except OSError:
        return []
    for entry in entries:
        if entry.name.isdigit() and (proc := _read_stat(int(entry.name))) is not None:
            table.append(proc)
    return table


def _read_stat(pid: int) -> Proc | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # comm is in parentheses and may itself hold spaces or parentheses: split at the last ')'.
    close = text.rindex(")")
    fields = text[close + 2 :].split()
    return Proc(
        pid=pid,
        ppid=int(fields[1]),
        pgid=int(fields[2]),
        state=fields[0],
        comm=text[text.index("(") + 1 : close],
    )


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
    needle = marker.encode()
    for proc in descendants(below):
        if proc.pid != proc.pgid:
            continue
        try:
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline.split(b"\0"):
            return proc.pid
    return None


def group_rss_bytes(pgid: int, table: list[Proc] | None = None) -> int:
    """Resident memory of a process group, summed per process (shared pages count once per process)."""
    total = 0
    for proc in group(pgid, table):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(Path(f"/proc/{proc.pid}/statm").read_text().split()[1]) * _PAGE_SIZE
    return total


def kill_group(pgid: int) -> None:
    """SIGKILL every process of the group; nothing to do when it is gone already."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def crash_handlers() -> list[int]:
    """Chromium crash handlers that are our children (handed to us as their subreaper), zombies included."""
    me = os.getpid()
    return [p.pid for p in process_table() if p.ppid == me and p.comm.startswith("chrome_crashpad")]


def kill(pid: int) -> None:
    """SIGKILL one process; nothing to do when it is gone already."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def live_members(pgid: int) -> int:
    """Processes of the group that are not zombies."""
    return sum(1 for proc in group(pgid) if proc.state != "Z")


def reap_orphans(
    pgids: set[int], spare: frozenset[int] = frozenset(), table: list[Proc] | None = None
) -> int:
    """Reap our zombie children that are Chromium's orphans; returns how many were reaped.

    An orphan is a process of one of the groups in ``pgids``, or Chromium's crash handler (which
    leaves the group). ``spare`` are processes this one started itself (a browser launched without
    Playwright): asyncio waits for those, and reaping them here would rob it of their exit status.
    """
    me = os.getpid()
    reaped = 0
    for proc in process_table() if table is None else table:
        orphan = proc.pgid in pgids or proc.comm.startswith("chrome_crashpad")
        if proc.ppid == me and proc.state == "Z" and orphan and proc.pid not in spare:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(proc.pid, os.WNOHANG)
                reaped += 1
    return reaped


def parent_of(pid: int) -> int | None:
    """The parent of ``pid``; None when it is gone."""
    proc = _read_stat(pid)
    return None if proc is None else proc.ppid


def become_subreaper() -> bool:
    """Ask Linux to hand this process the orphans of its descendants; False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False
