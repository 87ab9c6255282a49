"""The private temp directory: 0700 and 0600, empty after every path, swept at start, refused if not ours."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from screenshot_service.errors import UpstreamError
from screenshot_service.settings import ConfigError, load_settings
from screenshot_service.whatsapp.graph import GraphClient
from screenshot_service.whatsapp.tempfiles import TempImages

from .support.emulator import Emulator, png_bytes


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class Boom(Exception):
    pass


async def test_directory_is_created_private(tmp_path: Path) -> None:
    temp = TempImages(tmp_path / "a" / "images")
    assert await temp.sweep() == 0
    assert mode(temp.directory) == 0o700


async def test_file_is_private_holds_the_data_and_is_gone_after(temp_images: TempImages) -> None:
    data = png_bytes()
    async with temp_images.image(data, ".png") as path:
        assert path.parent == temp_images.directory
        assert path.suffix == ".png"
        assert mode(path) == 0o600
        assert path.read_bytes() == data
    assert not path.exists()
    assert list(temp_images.directory.iterdir()) == []


async def test_file_is_deleted_when_the_block_fails(temp_images: TempImages) -> None:
    with pytest.raises(Boom):
        async with temp_images.image(png_bytes(), ".png"):
            raise Boom
    assert list(temp_images.directory.iterdir()) == []


async def test_file_is_deleted_when_the_task_is_cancelled(temp_images: TempImages) -> None:
    inside = asyncio.Event()

    async def hold() -> None:
        async with temp_images.image(png_bytes(), ".png"):
            inside.set()
            await asyncio.Event().wait()  # until cancelled, like a client disconnect

    task = asyncio.create_task(hold())
    await inside.wait()
    assert len(list(temp_images.directory.iterdir())) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list(temp_images.directory.iterdir()) == []


async def test_file_is_deleted_on_timeout(temp_images: TempImages) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05), temp_images.image(png_bytes(), ".png"):
            await asyncio.Event().wait()
    assert list(temp_images.directory.iterdir()) == []


async def test_directory_is_empty_after_a_meta_error(
    meta: GraphClient, emulator: Emulator, temp_images: TempImages
) -> None:
    await emulator.faults({"kind": "bad_param"})
    with pytest.raises(UpstreamError):
        async with temp_images.image(png_bytes(), ".png") as path:
            await meta.upload(path, "image/png")
    assert list(temp_images.directory.iterdir()) == []


async def test_directory_is_empty_after_an_upload_is_cancelled(
    meta: GraphClient, emulator: Emulator, temp_images: TempImages
) -> None:
    await emulator.faults({"kind": "slow", "delay_ms": 30_000})

    async def upload() -> None:
        async with temp_images.image(png_bytes(), ".png") as path:
            await meta.upload(path, "image/png")

    task = asyncio.create_task(upload())
    await emulator.wait_for_request()  # the upload has reached Meta and is held there
    with capture_logs() as logs:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert list(temp_images.directory.iterdir()) == []
    assert [entry["outcome"] for entry in logs if entry["event"] == "upload"] == ["cancelled"]


async def test_sweep_deletes_leftovers_and_leaves_directories(tmp_path: Path) -> None:
    directory = tmp_path / "images"
    directory.mkdir(mode=0o700)
    for name in ("img-1.png", "img-2.jpg", "stray"):
        (directory / name).write_bytes(b"x")
    (directory / "dangling").symlink_to(tmp_path / "nowhere")
    (directory / "subdir").mkdir()

    assert await TempImages(directory).sweep() == 4
    assert [p.name for p in directory.iterdir()] == ["subdir"]


async def test_loose_permissions_on_our_own_directory_are_tightened(tmp_path: Path) -> None:
    directory = tmp_path / "images"
    directory.mkdir()
    directory.chmod(0o777)

    await TempImages(directory).sweep()
    assert mode(directory) == 0o700


async def test_a_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "real")

    with pytest.raises(ConfigError, match=r"SCREENSHOT_TEMP_DIR: .* symlink"):
        await TempImages(tmp_path / "link").sweep()


async def test_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ConfigError, match="SCREENSHOT_TEMP_DIR"):
        await TempImages(tmp_path / "file").sweep()


@pytest.mark.skipif(os.getuid() != 0, reason="giving a directory to another user needs root")
async def test_a_directory_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "images"
    directory.mkdir(mode=0o700)
    os.chown(directory, 65534, 65534)

    with pytest.raises(ConfigError, match="owned by uid 65534"):
        await TempImages(directory).sweep()
    assert mode(directory) == 0o700  # refused, not "fixed"


def test_directory_comes_from_settings(tmp_path: Path) -> None:
    configured = load_settings({"SCREENSHOT_TEMP_DIR": str(tmp_path / "x")})
    assert TempImages.from_settings(configured).directory == tmp_path / "x"
    default = TempImages.from_settings(load_settings({})).directory
    assert default.name == f"screenshot-service-{os.getuid()}"


@pytest.mark.parametrize("suffix", ["png", "../x.png", ".PNG/..", ""])
async def test_odd_suffixes_are_refused(temp_images: TempImages, suffix: str) -> None:
    with pytest.raises(ValueError, match="suffix"):
        async with temp_images.image(b"x", suffix):
            pass
    assert list(temp_images.directory.iterdir()) == []
