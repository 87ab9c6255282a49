"""Image size rules: read dimensions, and re-encode or scale an image down until WhatsApp takes it."""

from __future__ import annotations

import asyncio
import io

import msgspec
from PIL import Image, UnidentifiedImageError

from ..browser.capture import ImageFormat
from ..errors import ImageTooLarge, RenderError

# Meta says "5 MB" for images; 5_000_000 is under it whichever megabyte they mean.
MAX_IMAGE_BYTES = 5_000_000
IMAGE_MIME_TYPES = frozenset({"image/png", "image/jpeg"})
MIME_TYPES: dict[ImageFormat, str] = {"png": "image/png", "jpeg": "image/jpeg"}

# JPEG qualities tried in turn before scaling; below 60 dashboards' text turns to mush.
QUALITIES = (90, 80, 70, 60)
# Quality used while scaling down: text stays legible, and size then falls with the pixel count.
SCALE_QUALITY = 75
SCALE_STEP = 0.75
# Scaling below this many pixels on the short side makes a dashboard unreadable: fail instead.
MIN_SIDE = 320
# Our largest render (max viewport 3840x4320 at scale 3) is ~150 M pixels, above Pillow's default
# bomb guard (89 M, a warning); images come from our own browser, so allow that much and no more.
MAX_PIXELS = 200_000_000
Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, MAX_PIXELS)


class Fitted(msgspec.Struct, kw_only=True, frozen=True):
    """An image within the size limit, and how it was made to fit (``None``: it already did)."""

    data: bytes
    mime_type: str
    width: int
    height: int
    fitted: str | None = None


def image_size(data: bytes) -> tuple[ImageFormat, int, int]:
    """Format, width and height from the image's header, without decoding its pixels."""
    try:
        # Pillow's open is lazy: it parses the header and leaves the pixel data alone.
        with Image.open(io.BytesIO(data)) as image:
            fmt = (image.format or "").lower()
            width, height = image.size
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise RenderError("The rendered image could not be read.") from exc
    if fmt not in MIME_TYPES:
        raise RenderError(f"The rendered image is {fmt or 'of an unknown format'}, not PNG or JPEG.")
    return fmt, width, height


def fit_image(data: bytes, fmt: ImageFormat, limit_bytes: int = MAX_IMAGE_BYTES) -> Fitted:
    """Return ``data`` as is if it fits in ``limit_bytes``; else JPEG at falling quality, then scaled.

    CPU-bound: call :func:`fit_image_async` from the event loop. Raises :class:`ImageTooLarge`.
    """
    actual, width, height = image_size(data)
    if actual != fmt:
        raise RenderError(f"The rendered image is {actual}, not the {fmt} that was asked for.")
    if len(data) <= limit_bytes:
        return Fitted(data=data, mime_type=MIME_TYPES[fmt], width=width, height=height)

    with Image.open(io.BytesIO(data)) as source:
        rgb = _flatten(source)
    for quality in QUALITIES:
        encoded = _jpeg(rgb, quality)
        if len(encoded) <= limit_bytes:
            return Fitted(
                data=encoded, mime_type="image/jpeg", width=width, height=height, fitted=f"jpeg q{quality}"
            )
    scale = 1.0
    while True:
        scale *= SCALE_STEP
        size = (round(width * scale), round(height * scale))
        if min(size) < MIN_SIDE:
            raise ImageTooLarge(
                f"The image is {len(data)} bytes and does not fit WhatsApp's {limit_bytes} bytes even as a "
                f"JPEG scaled to {MIN_SIDE} pixels; render a smaller viewport or clip to a selector.",
                size=len(data),
                limit=limit_bytes,
            )
        encoded = _jpeg(rgb.resize(size, Image.Resampling.LANCZOS), SCALE_QUALITY)
        if len(encoded) <= limit_bytes:
            return Fitted(
                data=encoded,
                mime_type="image/jpeg",
                width=size[0],
                height=size[1],
                fitted=f"jpeg q{SCALE_QUALITY} scaled {size[0]}x{size[1]}",
            )


async def fit_image_async(data: bytes, fmt: ImageFormat, limit_bytes: int = MAX_IMAGE_BYTES) -> Fitted:
    """:func:`fit_image` in a worker thread, so re-encoding never blocks the event loop."""
    if len(data) <= limit_bytes:
        # The common case reads a header only: not worth a thread hop.
        return fit_image(data, fmt, limit_bytes)
    return await asyncio.to_thread(fit_image, data, fmt, limit_bytes)


def _flatten(image: Image.Image) -> Image.Image:
    """RGB for JPEG: transparency composited onto white, as a browser shows a page without background."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    # optimize: smaller Huffman tables for a little CPU; progressive is no smaller for screenshots.
    image.save(out, "JPEG", quality=quality, optimize=True)
    return out.getvalue()
