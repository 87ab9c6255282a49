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
