"""Splitting a tall capture into parts a phone shows legibly: cut lines between panels, crop, encode.

A part is at most :data:`PART_ASPECT` times as tall as it is wide: WhatsApp's viewer then shows it at
the phone's full width (a phone screen, less its bars, is about 9:18), where a 1280x16000 page in one
image is a strip a few pixels wide until zoomed, and scaled to fit 5 MB on top. Parts keep the
capture's own pixels (a 1280-px-wide page stays 1280 wide, which zooms sharp); fitting one may scale
it, but never below :data:`MIN_PART_WIDTH`.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import msgspec
from PIL import Image

from ..browser.capture import ImageFormat, PageBoxes
from ..errors import RenderError
from ..schemas import PartBox
from .imaging import MAX_IMAGE_BYTES, Fitted, fit_rgb, flatten, image_size

PART_ASPECT = 2.0
"""A part's height is at most this times its width (both in CSS pixels)."""
MAX_PARTS = 10
"""More parts than this is no longer a message but a flood: past it, parts grow taller instead."""
MIN_PART_WIDTH = 720
"""Narrowest a part is ever scaled to fit (pixels): below it a desktop dashboard's text is mush."""


class Part(msgspec.Struct, kw_only=True, frozen=True):
    """One encoded part and where it is on the page."""

    image: Fitted
    box: PartBox


def cut_lines(height: float, limit: float, panels: Sequence[tuple[float, float]]) -> list[float]:
    """Where to cut an image ``height`` tall into parts at most ``limit`` tall: the parts' bottoms, the
    last one ``height``. A cut never goes through a panel (``(top, bottom)`` pairs, same units), save
    through one taller than a part, or a run of overlapping ones that is: there it is a plain cut."""
    blocks: list[list[float]] = []  # runs of overlapping panels, each kept whole if it can be
    for top, bottom in sorted((max(0.0, t), min(height, b)) for t, b in panels if b - t <= limit):
        if blocks and top < blocks[-1][1]:
            blocks[-1][1] = max(blocks[-1][1], bottom)
        elif bottom > top:
            blocks.append([top, bottom])
    cuts: list[float] = []
    start = 0.0
    while height - start > limit:
        cut = start + limit
        for top, bottom in blocks:
            if top < cut < bottom:  # the plain cut goes through this run: cut above it if that helps
                if math.floor(top) > start and bottom - top <= limit:
                    cut = math.floor(top)  # whole CSS pixels: the part boxes stay whole
                break
        cuts.append(cut)
        start = cut
    return [*cuts, height]


def part_limit(width: float, height: float) -> float:
    """The tallest a part may be for an image ``width`` wide: the phone's aspect, or taller when the
    page would need more than :data:`MAX_PARTS` parts."""
    return max(width * PART_ASPECT, math.ceil(height / MAX_PARTS))


def split_image(
    data: bytes,
    fmt: ImageFormat,
    boxes: PageBoxes | None,
    scale: float,
    limit_bytes: int = MAX_IMAGE_BYTES,
) -> list[Part]:
    """Cut a capture (``scale`` image pixels a CSS pixel) into parts between its panels, each encoded
    to fit ``limit_bytes`` as a JPEG. CPU-bound: run it in a thread."""
    actual, width, height = image_size(data)
    if actual != fmt:
        raise RenderError(f"The rendered image is {actual}, not the {fmt} that was asked for.")
    origin_x, origin_y = (boxes.x, boxes.y) if boxes else (0.0, 0.0)
    css_width, css_height = width / scale, height / scale
    panels = [(top - origin_y, bottom - origin_y) for top, bottom in boxes.panels] if boxes else []
    bottoms = cut_lines(css_height, part_limit(css_width, css_height), panels)
    with Image.open(io.BytesIO(data)) as source:
        source.load()
        parts: list[Part] = []
        top = 0.0
        for bottom in bottoms:
            pixels = (0, round(top * scale), width, min(height, round(bottom * scale)))
            box = PartBox(x=origin_x, y=origin_y + top, width=css_width, height=bottom - top)
            parts.append(
                Part(
                    image=_encode(source.crop(pixels), len(data) / (width * height), limit_bytes),
                    box=box,
                )
            )
            top = bottom
    return parts


def _encode(crop: Image.Image, bytes_a_pixel: float, limit_bytes: int) -> Fitted:
    """A part as a JPEG at q85: a fifth of a PNG part's encode time, and what WhatsApp shows anyway. A
    part nearly always fits at once; one that does not is scaled (two encodes at most)."""
    width, height = crop.size
    min_side = min(MIN_PART_WIDTH, width, height)
    return fit_rgb(
        flatten(crop),
        limit_bytes,
        original_bytes=round(bytes_a_pixel * width * height),
        min_side=min_side,
        sample=False,
    )
