"""A valid upload: the exact multipart Meta receives, what the client returns, logs and counts."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from PIL import Image
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from screenshot_service.errors import ImageTooLarge, MetaNotConfigured
from screenshot_service.whatsapp.graph import GraphClient
from screenshot_service.whatsapp.imaging import MAX_IMAGE_BYTES
from screenshot_service.whatsapp.tempfiles import TempImages

from .support.emulator import (
    API_VERSION,
    EMULATOR_TOKEN,
    PHONE_NUMBER_ID,
    Emulator,
    meta_settings,
    png_bytes,
)


def _jpeg_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), "orange").save(out, "JPEG", quality=80)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "mime_type"),
    [
        pytest.param(png_bytes(), "image/png", id="png"),
        pytest.param(_jpeg_bytes(), "image/jpeg", id="jpeg"),
    ],
)
async def test_upload_sends_the_multipart_meta_expects(
    meta: GraphClient, emulator: Emulator, temp_images: TempImages, data: bytes, mime_type: str
) -> None:
    async with temp_images.image(data, ".png" if mime_type == "image/png" else ".jpg") as path:
        uploaded = await meta.upload(path, mime_type)

    assert uploaded.media_id.isdigit()
    assert uploaded.attempts == 1
    assert uploaded.upload_ms >= 0
    [received] = await emulator.uploads()
    assert received == {
        "status": 200,
        "media_id": uploaded.media_id,
        "error_code": None,
        "version": API_VERSION,
        "phone_number_id": PHONE_NUMBER_ID,
        "fields": {"messaging_product": "whatsapp", "type": mime_type},
        "filename": path.name,
        "content_type": mime_type,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


async def test_uploaded_media_can_be_read_back(
    meta: GraphClient, emulator: Emulator, temp_images: TempImages
) -> None:
    data = png_bytes(100, 80)
    async with temp_images.image(data, ".png") as path:
        uploaded = await meta.upload(path, "image/png")

    auth = {"Authorization": f"Bearer {EMULATOR_TOKEN}"}
    info = (await emulator.http.get(f"/{API_VERSION}/{uploaded.media_id}", headers=auth)).json()
    assert info["id"] == uploaded.media_id
    assert info["mime_type"] == "image/png"
    assert info["file_size"] == len(data)
    assert info["sha256"] == hashlib.sha256(data).hexdigest()
    assert info["messaging_product"] == "whatsapp"
    downloaded = await emulator.http.get(info["url"], headers=auth)
    assert downloaded.content == data


async def test_one_log_line_per_upload_without_the_token(
    meta: GraphClient, emulator: Emulator, temp_images: TempImages
) -> None:
    async with temp_images.image(png_bytes(), ".png") as path:
        with capture_logs() as logs:
            uploaded = await meta.upload(path, "image/png")

    [line] = [entry for entry in logs if entry["event"] == "upload"]
    assert line["media_id"] == uploaded.media_id
    assert line["outcome"] == "ok"
    assert line["upload_ms"] == uploaded.upload_ms
    assert line["attempts"] == 1
    assert EMULATOR_TOKEN not in repr(logs)


async def test_success_is_counted(meta: GraphClient, emulator: Emulator, temp_images: TempImages) -> None:
    def ok_count() -> float:
        return REGISTRY.get_sample_value("screenshot_meta_uploads_total", {"outcome": "ok"}) or 0.0

    before = ok_count()
    async with temp_images.image(png_bytes(), ".png") as path:
        await meta.upload(path, "image/png")
    assert ok_count() == before + 1


@pytest.mark.parametrize(
    ("phone_number_id", "token", "missing"),
    [
        pytest.param("", "t" * 20, ["SCREENSHOT_META_PHONE_NUMBER_ID"], id="no-phone-number-id"),
        pytest.param("123", "", ["SCREENSHOT_META_ACCESS_TOKEN"], id="no-token"),
        pytest.param(
            "", "", ["SCREENSHOT_META_PHONE_NUMBER_ID", "SCREENSHOT_META_ACCESS_TOKEN"], id="neither"
        ),
    ],
)
async def test_unconfigured_client_says_what_to_set(
    emulator: Emulator, tmp_path: Path, phone_number_id: str, token: str, missing: list[str]
) -> None:
    image = tmp_path / "image.png"
    image.write_bytes(png_bytes())
    async with GraphClient(
        meta_settings(emulator.url, meta_phone_number_id=phone_number_id, meta_access_token=token)
    ) as client:
        assert not client.configured
        with pytest.raises(MetaNotConfigured) as caught:
            await client.upload(image, "image/png")

    assert caught.value.status == 503
    assert caught.value.missing == missing
    assert all(name in caught.value.detail for name in missing)
    assert await emulator.requests() == []


async def test_an_image_over_the_limit_is_never_sent(
    meta: GraphClient, emulator: Emulator, tmp_path: Path
) -> None:
    image = tmp_path / "huge.png"
    image.write_bytes(png_bytes()[:16] + bytes(MAX_IMAGE_BYTES))

    with pytest.raises(ImageTooLarge) as caught:
        await meta.upload(image, "image/png")

    assert caught.value.status == 422
    assert caught.value.field == "image"
    assert await emulator.requests() == []


async def test_only_images_whatsapp_takes_are_sent(
    meta: GraphClient, emulator: Emulator, tmp_path: Path
) -> None:
    image = tmp_path / "image.webp"
    image.write_bytes(b"RIFF0000WEBP")

    with pytest.raises(ValueError, match="image/png or image/jpeg"):
        await meta.upload(image, "image/webp")
    assert await emulator.requests() == []


async def test_client_must_be_started(emulator: Emulator, tmp_path: Path) -> None:
    image = tmp_path / "image.png"
    image.write_bytes(png_bytes())
    client = GraphClient(meta_settings(emulator.url))

    with pytest.raises(RuntimeError, match="not started"):
        await client.upload(image, "image/png")


async def test_client_can_be_closed_and_reopened(
    meta: GraphClient, emulator: Emulator, temp_images: TempImages
) -> None:
    await meta.start()  # already started: a no-op
    await meta.aclose()
    await meta.aclose()  # idempotent
    await meta.start()
    async with temp_images.image(png_bytes(), ".png") as path:
        uploaded = await meta.upload(path, "image/png")
    assert uploaded.attempts == 1
