"""Tall pages split for phones: ``POST /v1/media`` with ``split`` cuts a capture into parts between its
panels, each under 5 MB and uploaded in order; the cut lines, the parts' encoding, the phone preset."""

from __future__ import annotations

import io
import itertools
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from screenshot_service.browser.capture import PageBoxes
from screenshot_service.whatsapp import imaging
from screenshot_service.whatsapp.imaging import MAX_IMAGE_BYTES
from screenshot_service.whatsapp.parts import MIN_PART_WIDTH, PART_ASPECT, cut_lines, split_image

from .support.emulator import API_VERSION, EMULATOR_TOKEN, Emulator, meta_env
from .support.images import decode
from .support.problems import assert_problem
from .support.service import running_service

TALL = {"dashboard": "tall", "split": True}
AUTH = {"Authorization": f"Bearer {EMULATOR_TOKEN}"}


@pytest.mark.parametrize(
    ("height", "limit", "panels", "bottoms"),
    [
        pytest.param(100, 200, [], [100], id="fits-in-one"),
        pytest.param(500, 200, [], [200, 400, 500], id="no-panels-plain-cuts"),
        pytest.param(500, 200, [(150, 250)], [150, 350, 500], id="cut-above-a-straddling-panel"),
        pytest.param(
            500, 200, [(10, 60), (150, 250), (260, 390)], [150, 260, 460, 500], id="panels-kept-whole"
        ),
        pytest.param(500, 200, [(0, 300)], [200, 400, 500], id="panel-taller-than-a-part"),
        pytest.param(500, 200, [(100, 190), (180, 290)], [100, 300, 500], id="overlapping-panels-one-run"),
        pytest.param(500, 200, [(50, 190), (180, 320)], [200, 400, 500], id="run-taller-than-a-part"),
        pytest.param(400, 200, [(0, 400), (150, 250)], [150, 350, 400], id="wrapper-ignored-children-kept"),
    ],
)
def test_cut_lines_go_between_panels(
    height: float, limit: float, panels: list[tuple[float, float]], bottoms: list[float]
) -> None:
    assert cut_lines(height, limit, panels) == bottoms


def page_image(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.linear_gradient("L").resize((width, height)).convert("RGB").save(out, "PNG")
    return out.getvalue()


def test_parts_are_cropped_at_the_cuts_with_their_page_boxes() -> None:
    data = page_image(800, 4000)  # CSS 400x2000 at scale 2: parts up to 800 CSS px tall
    boxes = PageBoxes(x=10, y=100, panels=[(800, 1000)])  # in page coordinates: 700-900 in the image

    parts = split_image(data, "png", boxes, scale=2)

    assert [(p.box.y, p.box.height) for p in parts] == [(100, 700), (800, 800), (1600, 500)]
    assert {(p.box.x, p.box.width) for p in parts} == {(10, 400)}
    assert [decode(p.image.data).size for p in parts] == [(800, 1400), (800, 1600), (800, 1000)]
    assert [(p.image.mime_type, p.image.fitted, p.image.encodes) for p in parts] == [
        ("image/jpeg", "jpeg q85", 1)
    ] * 3


def test_a_part_over_the_limit_is_fitted_in_two_encodes(monkeypatch: pytest.MonkeyPatch) -> None:
    encodes: list[tuple[int, int]] = []
    jpeg = imaging._jpeg

    def counted(image: Image.Image, quality: int) -> bytes:
        encodes.append(image.size)
        return jpeg(image, quality)

    monkeypatch.setattr(imaging, "_jpeg", counted)
    noise = Image.frombytes("RGB", (1000, 1500), os.urandom(1000 * 1500 * 3))
    out = io.BytesIO()
    noise.save(out, "PNG")

    [part] = split_image(out.getvalue(), "png", None, scale=1, limit_bytes=1_500_000)

    assert part.image.mime_type == "image/jpeg"
    assert len(part.image.data) <= 1_500_000
    assert len(encodes) == part.image.encodes <= 2
    assert part.image.width >= MIN_PART_WIDTH


class SplitService:
    def __init__(self, client: httpx.AsyncClient, temp_dir: Path, engine: str) -> None:
        self.http = client
        self.temp_dir = temp_dir
        self.engine = engine


@pytest.fixture(scope="module", params=["playwright", "pyppeteer"])
async def split_service(
    request: pytest.FixtureRequest,
    meta_emulator_url: str,
    dashboards_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[SplitService]:
    engine: str = request.param
    if engine == "pyppeteer":
        pytest.importorskip("pyppeteer", reason="the [pyppeteer] extra is not installed")
    temp_dir = tmp_path_factory.mktemp("split") / "images"
    env = meta_env(meta_emulator_url, temp_dir, dashboards_file=str(dashboards_file), engine=engine)
    async with running_service(env) as client:
        yield SplitService(client, temp_dir, engine)


@pytest.fixture
async def split(
    split_service: SplitService, emulator: Emulator, no_backoff: None
) -> AsyncIterator[SplitService]:
    """The module's service, the emulator reset; after each test no temp file is left."""
    yield split_service
    assert list(split_service.temp_dir.iterdir()) == []


async def media_bytes(emulator: Emulator, media_id: str) -> bytes:
    info = (await emulator.http.get(f"/{API_VERSION}/{media_id}", headers=AUTH)).json()
    return (await emulator.http.get(info["url"], headers=AUTH)).content


def panel_at(image: Image.Image, row: int) -> bool:
    """Whether ``row`` of a part crosses a panel: the left column's padding is white there."""
    pixel = image.getpixel((40, row))
    assert isinstance(pixel, tuple)
    return all(channel >= 251 for channel in pixel)  # a JPEG's white, give or take its rounding


def background(pixel: object) -> bool:
    """The tall page's grey between panels (#f4f5f7), or a panel's shadow on it."""
    assert isinstance(pixel, tuple)
    return all(225 <= channel <= 250 for channel in pixel)


async def test_a_tall_page_is_split_into_legible_parts_between_panels(
    split: SplitService, emulator: Emulator
) -> None:
    response = await split.http.post("/v1/media", json=TALL)

    assert response.status_code == 200, response.text
    body = response.json()
    parts: list[dict[str, Any]] = body["parts"]
    assert len(parts) >= 16000 / (1280 * PART_ASPECT)  # 7 or more: no part taller than a phone's aspect
    # In order, top to bottom, the whole page, each at the page's own width (1280 px: legible zoomed).
    assert parts[0]["box"]["y"] == 0
    for upper, lower in itertools.pairwise(parts):
        assert upper["box"]["y"] + upper["box"]["height"] == lower["box"]["y"]
    assert parts[-1]["box"]["y"] + parts[-1]["box"]["height"] == 16000
    for part in parts:
        assert part["bytes"] <= MAX_IMAGE_BYTES
        assert part["width"] == part["box"]["width"] == 1280 >= MIN_PART_WIDTH
        assert part["height"] <= part["width"] * PART_ASPECT
    # The top level is the first part's; every part went up, in order.
    assert (body["media_id"], body["bytes"]) == (parts[0]["media_id"], parts[0]["bytes"])
    uploads = await emulator.uploads()
    assert [u["media_id"] for u in uploads] == [p["media_id"] for p in parts]
    # No cut goes through a panel: above or below each cut line is the page's background.
    images = [decode(await media_bytes(emulator, p["media_id"])).convert("RGB") for p in parts]
    for part, image in zip(parts, images, strict=True):
        assert image.size == (part["width"], part["height"])
    for above, below in itertools.pairwise(images):
        assert not (panel_at(above, above.height - 1) and panel_at(below, 0))
        assert background(above.getpixel((40, above.height - 1))) or background(below.getpixel((40, 0)))


async def test_without_split_a_tall_page_is_one_image_that_fits(
    split: SplitService, emulator: Emulator
) -> None:
    if split.engine != "playwright":
        pytest.skip("fitting is the publisher's, whatever the engine")
    response = await split.http.post("/v1/media", json={"dashboard": "tall"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert "parts" not in body  # the answer's shape is as it was
    assert body["mime_type"] == "image/jpeg"
    assert body["bytes"] <= MAX_IMAGE_BYTES
    assert re.fullmatch(r"jpeg q(85|80|75|70)( scaled \d+x\d+)?", body["fitted"])
    assert len(await emulator.uploads()) == 1


async def test_a_dashboards_split_default_is_overridden_and_its_parts_cached(
    split: SplitService, emulator: Emulator
) -> None:
    if split.engine != "playwright":
        pytest.skip("the answer and its cache are the publisher's, whatever the engine")
    answers = [
        await split.http.post("/v1/media", json={"dashboard": "tall-split"}),
        await split.http.post("/v1/media", json={"dashboard": "tall-split"}),
    ]
    whole = await split.http.post("/v1/media", json={"dashboard": "tall-split", "split": False})

    assert [a.status_code for a in answers] == [200, 200], answers[0].text
    first, again = (a.json() for a in answers)
    assert len(first["parts"]) > 1
    assert again["cached"] is True
    assert again["parts"] == first["parts"]
    assert whole.status_code == 200, whole.text
    assert "parts" not in whole.json()
    assert len(await emulator.uploads()) == len(first["parts"]) + 1


async def test_a_failed_upload_of_a_part_fails_the_request_and_leaves_no_file(
    split: SplitService, emulator: Emulator
) -> None:
    if split.engine != "playwright":
        pytest.skip("uploading is the publisher's, whatever the engine")
    passing = {"kind": "slow", "delay_ms": 0}
    await emulator.faults(passing, passing, {"kind": "bad_param"})

    response = await split.http.post("/v1/media", json=TALL)

    assert_problem(response, 502, "upstream-error")
    assert [u["status"] for u in await emulator.uploads()] == [200, 200]
    assert len(await emulator.requests()) == 3  # the third part failed, and none was tried after it


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("/v1/media", {**TALL, "split": "yes"}, id="string"),
        pytest.param("/v1/media", {**TALL, "split": 1}, id="number"),
        pytest.param("/v1/media", {**TALL, "split": {"parts": 3}}, id="object"),
        pytest.param("/v1/renders", TALL, id="renders-answer-one-image"),
    ],
)
async def test_bad_split_values_are_refused(split: SplitService, path: str, body: dict[str, Any]) -> None:
    """The service's problem for a field of the wrong type or in the wrong place: 422, naming it."""
    if split.engine != "playwright":
        pytest.skip("decoding is the API's, whatever the engine")
    problem = assert_problem(await split.http.post(path, json=body), 422, "invalid-request")
    assert problem["field"] == "split"


async def test_the_phone_preset_renders_a_phone_sized_page(split: SplitService) -> None:
    response = await split.http.post("/v1/renders", json={"dashboard": "phone"})

    assert response.status_code == 200, response.text
    assert decode(response.content).size == (390 * 2, 844 * 2)
