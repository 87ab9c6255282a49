"""``POST /v1/media`` end to end: the real service renders in Chromium and uploads to the emulator."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from structlog.testing import capture_logs

from screenshot_service.whatsapp.imaging import MAX_IMAGE_BYTES

from .support.emulator import API_VERSION, EMULATOR_TOKEN, PHONE_NUMBER_ID, Emulator, meta_env
from .support.service import running_service

SALES = {"dashboard": "sales", "params": {"range": "7d"}}
AUTH = {"Authorization": f"Bearer {EMULATOR_TOKEN}"}


class MediaService:
    """The service wired to the session's emulator, and its temp directory."""

    def __init__(self, client: httpx.AsyncClient, temp_dir: Path) -> None:
        self.http = client
        self.temp_dir = temp_dir

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in self.temp_dir.iterdir())


@pytest.fixture(scope="module")
async def media_service(
    meta_emulator_url: str, dashboards_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[MediaService]:
    temp_dir = tmp_path_factory.mktemp("media") / "images"
    env = meta_env(meta_emulator_url, temp_dir, dashboards_file=str(dashboards_file), meta_timeout_ms="2000")
    async with running_service(env) as client:
        yield MediaService(client, temp_dir)


@pytest.fixture
async def media(
    media_service: MediaService, emulator: Emulator, no_backoff: None
) -> AsyncIterator[MediaService]:
    """The module's service with the emulator reset; after each test its temp directory is empty."""
    yield media_service
    assert media_service.leftovers() == []


async def test_upload_returns_the_media_id_of_the_rendered_png(
    media: MediaService, emulator: Emulator
) -> None:
    response = await media.http.post("/v1/media", json=SALES, headers={"X-Request-ID": "exec-42"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["request_id"] == "exec-42"
    assert body["mime_type"] == "image/png"
    assert (body["width"], body["height"]) == (1280, 800)
    assert body["render_ms"] > 0
    assert body["upload_ms"] >= 0
    assert body["fitted"] is None
    readiness = body["readiness"]  # the demo's wait is its selector
    assert (readiness["state"], readiness["condition"], readiness["moving"]) == ("ready", "load+selector", [])
    assert readiness["waited_ms"] >= 0
    assert (
        response.headers["x-render-readiness"]
        == f"ready; condition=load+selector; waited_ms={readiness['waited_ms']}"
    )
    [received] = await emulator.uploads()
    assert received["media_id"] == body["media_id"]
    assert received["version"] == API_VERSION
    assert received["phone_number_id"] == PHONE_NUMBER_ID
    assert received["fields"] == {"messaging_product": "whatsapp", "type": "image/png"}
    assert received["content_type"] == "image/png"
    assert received["filename"].endswith(".png")
    assert received["size"] == body["bytes"]

    info = (await emulator.http.get(f"/{API_VERSION}/{body['media_id']}", headers=AUTH)).json()
    image = (await emulator.http.get(info["url"], headers=AUTH)).content
    assert hashlib.sha256(image).hexdigest() == received["sha256"]
    with Image.open(io.BytesIO(image)) as png:
        assert (png.format, png.size) == ("PNG", (1280, 800))


async def test_an_image_over_5_mb_is_fitted_before_it_is_sent(
    media: MediaService, emulator: Emulator
) -> None:
    # A PNG of this page would be well over WhatsApp's 5 MB.
    response = await media.http.post("/v1/media", json={"dashboard": "noise"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mime_type"] == "image/jpeg"
    assert body["fitted"].startswith("jpeg q")
    assert body["bytes"] <= MAX_IMAGE_BYTES
    [received] = await emulator.uploads()
    assert received["content_type"] == "image/jpeg"
    assert received["fields"]["type"] == "image/jpeg"
    assert received["size"] == body["bytes"]


async def test_a_retryable_fault_is_retried_and_succeeds(media: MediaService, emulator: Emulator) -> None:
    await emulator.faults({"kind": "http_503"}, {"kind": "throttle", "code": 130429})

    response = await media.http.post("/v1/media", json=SALES)

    assert response.status_code == 200, response.text
    assert [upload["status"] for upload in await emulator.uploads()][-1] == 200
    assert len(await emulator.requests()) == 3


@pytest.mark.parametrize(
    ("fault", "status", "slug", "code"),
    [
        pytest.param({"kind": "token_expired"}, 502, "upstream-error", 190, id="expired-token"),
        pytest.param({"kind": "bad_param"}, 502, "upstream-error", 100, id="bad-parameter"),
    ],
)
async def test_a_fault_no_retry_can_fix_fails_at_once(  # noqa: PLR0917  (parametrized)
    media: MediaService, emulator: Emulator, fault: dict[str, Any], status: int, slug: str, code: int
) -> None:
    await emulator.faults(fault)

    response = await media.http.post("/v1/media", json=SALES)

    assert response.status_code == status
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["type"].endswith(f":{slug}")
    assert problem["meta"]["code"] == code
    assert problem["meta"]["fbtrace_id"]
    assert problem["attempts"] == 1
    assert problem["request_id"] == response.headers["x-request-id"]
    assert EMULATOR_TOKEN not in response.text
    assert len(await emulator.requests()) == 1


async def test_persistent_throttling_is_a_503_with_retry_after(
    media: MediaService, emulator: Emulator
) -> None:
    await emulator.faults(*[{"kind": "throttle", "code": 80007, "retry_after": 7}] * 10)

    response = await media.http.post("/v1/media", json=SALES)

    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 7
    problem = response.json()
    assert problem["type"].endswith(":upstream-throttled")
    assert problem["meta"]["code"] == 80007


async def test_a_failed_render_uploads_nothing(media: MediaService, emulator: Emulator) -> None:
    response = await media.http.post("/v1/media", json={"dashboard": "never-ready"})

    assert response.status_code == 504
    assert response.json()["step"] == "selector"
    assert await emulator.requests() == []


async def test_a_client_that_hangs_up_mid_upload_leaves_nothing(
    media: MediaService, emulator: Emulator
) -> None:
    await emulator.faults({"kind": "slow", "delay_ms": 30_000})
    request = asyncio.create_task(media.http.post("/v1/media", json=SALES))
    await emulator.wait_for_request()  # rendered, written, and held at Meta
    assert len(media.leftovers()) == 1  # the image is on disk only while it is being uploaded
    with capture_logs() as logs:
        request.cancel()  # closes the connection: the service sees a disconnect
        with pytest.raises(asyncio.CancelledError):
            await request
        for _ in range(100):  # well before the client's own 2 s timeout would end the upload
            if not media.leftovers():
                break
            await asyncio.sleep(0.01)

    assert media.leftovers() == []
    assert [e["outcome"] for e in logs if e["event"] == "upload"] == ["cancelled"]
    assert await emulator.uploads() == []  # the held upload never completed
    # The service answers the next request.
    assert (await media.http.post("/v1/media", json=SALES)).status_code == 200


async def test_bad_input_is_refused_before_any_work(media: MediaService, emulator: Emulator) -> None:
    response = await media.http.post("/v1/media", json={"dashboard": "sales", "params": {"range": "1y"}})

    assert response.status_code == 422
    assert response.json()["field"] == "params.range"
    assert await emulator.requests() == []


async def test_without_meta_settings_media_is_503_and_readyz_says_what_to_set(
    dashboards_file: Path, tmp_path: Path
) -> None:
    env = {"dashboards_file": str(dashboards_file), "temp_dir": str(tmp_path / "images")}
    async with running_service(env) as client:
        response = await client.post("/v1/media", json=SALES)
        ready = (await client.get("/readyz")).json()

    assert response.status_code == 503
    problem = response.json()
    assert problem["type"].endswith(":meta-not-configured")
    assert problem["missing"] == ["SCREENSHOT_META_PHONE_NUMBER_ID", "SCREENSHOT_META_ACCESS_TOKEN"]
    assert "SCREENSHOT_META_ACCESS_TOKEN" in ready["checks"]["meta"]
    assert list((tmp_path / "images").iterdir()) == []


async def test_start_up_sweeps_what_a_crash_left_behind(
    meta_emulator_url: str, dashboards_file: Path, tmp_path: Path
) -> None:
    temp_dir = tmp_path / "images"
    temp_dir.mkdir(mode=0o700)
    (temp_dir / "img-left-by-a-crash.png").write_bytes(b"\x89PNG")

    env = meta_env(meta_emulator_url, temp_dir, dashboards_file=str(dashboards_file), meta_timeout_ms="2000")
    async with running_service(env) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert list(temp_dir.iterdir()) == []
