"""The private temp directory: images live there between render and upload, and never longer."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import stat
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import structlog

from ..settings import ConfigError, Settings

log = structlog.get_logger(__name__)

PREFIX = "img-"
_SUFFIX_RE = re.compile(r"\.[a-z0-9]{1,8}")


class TempImages:
    """Owns one private directory (0700, files 0600) and deletes every file it writes there.

    ``temp = TempImages.from_settings(settings); await temp.sweep()`` at start-up, then per request
    ``async with temp.image(data, ".png") as path: ...``.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def from_settings(cls, settings: Settings) -> TempImages:
        """The directory named by ``SCREENSHOT_TEMP_DIR``, or a per-user one in the system temp dir."""
        if settings.temp_dir:
            return cls(Path(settings.temp_dir))
        return cls(Path(tempfile.gettempdir()) / f"screenshot-service-{os.getuid()}")

    def ensure(self) -> None:
        """Create the directory 0700 if missing; tighten it if it is ours; refuse it if it is not.

        Raises :class:`ConfigError` naming ``SCREENSHOT_TEMP_DIR`` when the directory cannot be trusted.
        """
        where = f"SCREENSHOT_TEMP_DIR: {self.directory}"
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = self.directory.lstat()
        except OSError as exc:
            raise ConfigError(f"{where}: cannot create it: {exc.strerror}") from None
        if not stat.S_ISDIR(info.st_mode):
            # A symlink too: someone else could point it anywhere.
            raise ConfigError(f"{where}: is not a directory (or is a symlink)")
        if info.st_uid != os.getuid():
            raise ConfigError(
                f"{where}: is owned by uid {info.st_uid}, not by this process (uid {os.getuid()}); "
                "another user could read or swap the images. Use a directory of our own."
            )
        if stat.S_IMODE(info.st_mode) != 0o700:
            log.warning(
                "temp dir permissions tightened",
                directory=str(self.directory),
                mode=oct(stat.S_IMODE(info.st_mode)),
            )
            self.directory.chmod(0o700)

    async def sweep(self) -> int:
        """Check the directory (see :meth:`ensure`) and delete what a crash left in it; returns the count."""
        return await asyncio.to_thread(self._sweep)

    def _sweep(self) -> int:
        self.ensure()
        removed = 0
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    continue  # never ours: we only write files
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)  # noqa: PTH108  (a DirEntry's path; no Path round trip needed)
                    removed += 1
        if removed:
            log.info("temp dir swept", directory=str(self.directory), removed=removed)
        return removed

    @contextlib.asynccontextmanager
    async def image(self, data: bytes, suffix: str) -> AsyncIterator[Path]:
        """Write ``data`` to a new 0600 file and yield its path; the file is gone when the block exits,
        whatever happens in it (error, timeout, cancellation)."""
        if not _SUFFIX_RE.fullmatch(suffix):
            raise ValueError(f"bad suffix {suffix!r}")
        # Created here, before the first await, so that from this line on the finally below owns it;
        # mkstemp opens it O_EXCL (a planted file is refused) and O_NOFOLLOW, mode 0600, with a fresh name.
        fd, name = tempfile.mkstemp(suffix=suffix, prefix=PREFIX, dir=self.directory)
        path = Path(name)
        try:
            # One hop to a worker thread, which writes through this descriptor and closes it: were the
            # block cancelled meanwhile, the thread finishes into an unlinked file and creates nothing.
            await asyncio.to_thread(_write_all, fd, memoryview(data))
            yield path
        finally:
            # Synchronous on purpose: an await here could itself be cancelled and leave the file.
            path.unlink(missing_ok=True)  # noqa: ASYNC240


def _write_all(fd: int, data: memoryview) -> None:
    """Write all of ``data`` to ``fd`` and close it, whatever happens."""
    try:
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)
