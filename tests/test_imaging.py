"""Fitting images under WhatsApp's size limit: as is, re-encoded, scaled, or a clear 422."""

from __future__ import annotations

import asyncio
import io
import os

import pytest
from PIL import Image, ImageFilter

from screenshot_service.browser.capture import ImageFormat
from screenshot_service.errors import ImageTooLarge, RenderError
from screenshot_service.whatsapp import imaging
from screenshot_service.whatsapp.imaging import (
    MAX_IMAGE_BYTES,
    MIN_SIDE,
    fit_image,
    fit_image_async,
    image_size,
)


def encode(image: Image.Image, fmt: str = "PNG", **options: int) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def noisy_png(width: int, height: int) -> bytes:
    """Random pixels: PNG cannot compress them, so the file is about 3 bytes a pixel."""
    return encode(Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)))


@pytest.fixture(scope="module")
def huge_png() -> bytes:
    data = noisy_png(1600, 1200)
    assert len(data) > 5 * 1024 * 1024
    return data


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()  # decodes every pixel: proves the file is whole
    return image


@pytest.mark.parametrize(
    ("data", "fmt", "mime_type"),
    [
        pytest.param(encode(Image.new("RGB", (640, 360), "white")), "png", "image/png", id="png"),
        pytest.param(encode(Image.new("RGB", (640, 360), "white"), "JPEG"), "jpeg", "image/jpeg", id="jpeg"),
    ],
)
def test_an_image_within_the_limit_is_returned_as_is(data: bytes, fmt: ImageFormat, mime_type: str) -> None:
    fitted = fit_image(data, fmt, MAX_IMAGE_BYTES)

    assert fitted.data is data
    assert fitted.fitted is None
    assert (fitted.mime_type, fitted.width, fitted.height) == (mime_type, 640, 360)


def test_dimensions_come_from_the_header() -> None:
    assert image_size(encode(Image.new("RGB", (1234, 567)))) == ("png", 1234, 567)
    # A truncated file still has its header: no pixel is decoded to read it.
    assert image_size(noisy_png(300, 200)[:200]) == ("png", 300, 200)


def test_an_oversized_png_becomes_a_jpeg_that_fits(huge_png: bytes) -> None:
    fitted = fit_image(huge_png, "png", MAX_IMAGE_BYTES)

    assert len(fitted.data) <= MAX_IMAGE_BYTES
    assert fitted.mime_type == "image/jpeg"
    assert fitted.fitted is not None
    assert fitted.fitted.startswith("jpeg q")
    image = decode(fitted.data)
    assert image.format == "JPEG"
    assert image.size == (fitted.width, fitted.height) == (1600, 1200)


def test_when_quality_is_not_enough_the_image_is_scaled_down() -> None:
    data = noisy_png(800, 600)
    limit = 200_000  # far below what any quality gives for noise at full size

    fitted = fit_image(data, "png", limit)

    assert len(fitted.data) <= limit
    assert fitted.fitted is not None
    assert "scaled" in fitted.fitted
    image = decode(fitted.data)
    assert image.size == (fitted.width, fitted.height)
    assert MIN_SIDE <= fitted.height < 600
    assert fitted.width / fitted.height == pytest.approx(800 / 600, rel=0.01)


def test_when_nothing_fits_the_error_is_a_clear_422() -> None:
    with pytest.raises(ImageTooLarge) as caught:
        fit_image(noisy_png(800, 600), "png", 1_000)

    assert caught.value.status == 422
    assert caught.value.field == "image"
    assert caught.value.limit == 1_000
    assert "does not fit" in caught.value.detail


def test_transparency_is_flattened_onto_white() -> None:
    image = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    image.paste(Image.frombytes("RGBA", (400, 200), os.urandom(400 * 200 * 4)), (0, 200))
    data = encode(image)

    fitted = fit_image(data, "png", len(data) - 1)

    corner = decode(fitted.data).convert("RGB").getpixel((10, 10))
    assert corner == pytest.approx((255, 255, 255), abs=3)


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        pytest.param(b"not an image at all", "png", id="garbage"),
        pytest.param(encode(Image.new("RGB", (10, 10)), "GIF"), "png", id="gif"),
        pytest.param(encode(Image.new("RGB", (10, 10)), "JPEG"), "png", id="jpeg-said-png"),
    ],
)
def test_an_image_that_is_not_what_was_rendered_is_a_render_error(data: bytes, fmt: ImageFormat) -> None:
    with pytest.raises(RenderError):
        fit_image(data, fmt, MAX_IMAGE_BYTES)


async def test_fitting_runs_off_the_event_loop(huge_png: bytes) -> None:
    """While a big image is re-encoded, the event loop keeps running other tasks."""
    ticks = 0
    fitting = asyncio.create_task(fit_image_async(huge_png, "png", MAX_IMAGE_BYTES))
    while not fitting.done():
        ticks += 1
        await asyncio.sleep(0)
    fitted = await fitting

    assert len(fitted.data) <= MAX_IMAGE_BYTES
    assert ticks > 1


@pytest.fixture
def full_encodes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The size of every JPEG encode fitting makes, counted where the encoder is called."""
    sizes: list[tuple[int, int]] = []
    encode_jpeg = imaging._jpeg

    def counted(image: Image.Image, quality: int) -> bytes:
        sizes.append(image.size)
        return encode_jpeg(image, quality)

    monkeypatch.setattr(imaging, "_jpeg", counted)
    return sizes


@pytest.mark.parametrize(
    ("width", "height", "limit"),
    [
        pytest.param(800, 600, 200_000, id="noise-far-over"),
        pytest.param(400, 3000, 600_000, id="tall-noise"),
        pytest.param(1600, 1200, 3_000_000, id="noise-a-little-over"),
    ],
)
def test_fitting_takes_at_most_two_full_encodes(
    full_encodes: list[tuple[int, int]], width: int, height: int, limit: int
) -> None:
    fitted = fit_image(noisy_png(width, height), "png", limit)

    assert len(fitted.data) <= limit
    assert len(full_encodes) == fitted.encodes <= 2
    # Full size or the answer's size: the small encodes of the sample are not full encodes.
    assert set(full_encodes) <= {(width, height), (fitted.width, fitted.height)} or len(full_encodes) == 2
    assert decode(fitted.data).size == (fitted.width, fitted.height)


def test_the_quality_is_chosen_from_a_sample_before_any_full_encode(
    full_encodes: list[tuple[int, int]],
) -> None:
    """A page a little over the limit at q85 fits at a lower quality, found without a full encode at q85."""
    # Blurred noise: PNG cannot compress it, and JPEG's bytes fall with the quality, as a dashboard's do.
    noise = Image.frombytes("RGB", (1200, 4000), os.urandom(1200 * 4000 * 3))
    image = noise.filter(ImageFilter.GaussianBlur(1.5))
    data = encode(image)
    at_85 = len(encode(image, "JPEG", quality=85))
    at_70 = len(encode(image, "JPEG", quality=70))
    limit = (at_85 + at_70) // 2
    assert len(data) > at_85 > limit
    fitted = fit_image(data, "png", limit)

    assert len(fitted.data) <= limit
    assert fitted.fitted in {"jpeg q80", "jpeg q75", "jpeg q70"}
    assert full_encodes == [(1200, 4000)]


def test_a_jpeg_that_fits_at_full_size_takes_one_encode(
    full_encodes: list[tuple[int, int]], huge_png: bytes
) -> None:
    fitted = fit_image(huge_png, "png", MAX_IMAGE_BYTES)

    assert full_encodes == [(1600, 1200)]
    assert fitted.encodes == 1
