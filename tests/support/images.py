"""Decoding helpers for assertions on real images."""

from __future__ import annotations

import io

from PIL import Image, ImageChops


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def differing_fraction(a: bytes, b: bytes) -> float:
    """Share of pixels that differ between two images of the same size."""
    first, second = decode(a).convert("RGB"), decode(b).convert("RGB")
    assert first.size == second.size
    diff = ImageChops.difference(first, second).convert("L").point(lambda v: 255 if v > 16 else 0)
    histogram = diff.histogram()
    return histogram[255] / (first.width * first.height)


def near(pixel: object, colour: tuple[int, int, int], tolerance: int = 8) -> bool:
    """Whether an RGB ``pixel`` (as Pillow answers it) is ``colour``, give or take ``tolerance``."""
    return isinstance(pixel, tuple) and all(
        abs(int(a) - b) <= tolerance for a, b in zip(pixel, colour, strict=True)
    )


def colour_share(data: bytes, colour: tuple[int, int, int]) -> float:
    """Share of an image's pixels that are ``colour`` (see :func:`near`)."""
    image = decode(data).convert("RGB")
    counts = image.getcolors(image.width * image.height) or []
    return sum(n for n, rgb in counts if near(rgb, colour)) / (image.width * image.height)
