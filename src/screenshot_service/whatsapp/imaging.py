"""Image size rules: read dimensions, and re-encode or scale an image down so WhatsApp takes it."""

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

# The qualities fitting chooses from, best first: the highest a sample predicts to fit is taken. Below
# 70 a dashboard's text rings; then the image is scaled instead, at SCALE_QUALITY.
QUALITIES = (85, 80, 75, 70)
FIT_QUALITY = QUALITIES[0]
SCALE_QUALITY = 80
# The sample: bands spread down the image, an eighth of its rows in all, each a whole number of JPEG
# blocks tall, so its bytes a row are the image's (measured within a few % on our pages).
SAMPLE_BANDS = 8
SAMPLE_SHARE = 1 / 8
BLOCK = 16
# JPEG size at a fixed quality falls with the pixel count, a little slower for screenshots (scaling
# packs text closer together): size ~ linear scale ** SIZE_EXPONENT. Measured on our pages between
# 1.6 (text) and 2.0 (noise); 1.5 predicts a scale that is never too large, so the second encode fits.
SIZE_EXPONENT = 1.5
# Aim a little under the limit: the prediction is a model, not a measurement.
FIT_MARGIN = 0.95
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
    encodes: int = 0
    """Full-size encodes it took (at most two): what the one-pass fitting promises, counted."""


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
    """Return ``data`` as is if it fits in ``limit_bytes``; else a JPEG that does, in one or two encodes.

    CPU-bound: call :func:`fit_image_async` from the event loop. Raises :class:`ImageTooLarge`.
    """
    actual, width, height = image_size(data)
    if actual != fmt:
        raise RenderError(f"The rendered image is {actual}, not the {fmt} that was asked for.")
    if len(data) <= limit_bytes:
        return Fitted(data=data, mime_type=MIME_TYPES[fmt], width=width, height=height)
    with Image.open(io.BytesIO(data)) as source:
        rgb = flatten(source)
    return fit_rgb(rgb, limit_bytes, original_bytes=len(data))


def fit_rgb(
    rgb: Image.Image, limit_bytes: int, *, original_bytes: int, min_side: int = MIN_SIDE, sample: bool = True
) -> Fitted:
    """A JPEG of ``rgb`` within ``limit_bytes``, in two full encodes at most: the quality (or, if none
    fits, the scale) a sample predicts, then, should that miss, the scale the miss's bytes predict.
    ``sample=False`` starts at :data:`FIT_QUALITY` instead (for images that nearly always fit).
    Past the second encode, :class:`ImageTooLarge`.
    """
    width, height = rgb.size
    target = limit_bytes * FIT_MARGIN
    predicted = predict_sizes(rgb) if sample else None
    quality, scale = FIT_QUALITY, 1.0
    if predicted is not None:
        fitting = [q for q in QUALITIES if predicted[q] <= target]
        quality = fitting[0] if fitting else SCALE_QUALITY
        if not fitting:
            scale = predict_scale(round(predicted[SCALE_QUALITY]), limit_bytes)
    # Never below min_side on the short side: a smaller image is unreadable, so try it there or fail.
    floor = min(1.0, min_side / min(width, height))
    encodes = 0
    while True:
        scale = max(scale, floor)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        encoded = _jpeg(rgb if scale == 1 else rgb.resize(size, Image.Resampling.LANCZOS), quality)
        encodes += 1
        if len(encoded) <= limit_bytes:
            scaled = "" if scale == 1 else f" scaled {size[0]}x{size[1]}"
            return Fitted(
                data=encoded,
                mime_type="image/jpeg",
                width=size[0],
                height=size[1],
                fitted=f"jpeg q{quality}{scaled}",
                encodes=encodes,
            )
        if encodes == 2 or scale == floor:
            raise ImageTooLarge(
                f"The image is {original_bytes} bytes and does not fit WhatsApp's {limit_bytes} bytes even "
                f"as a JPEG scaled to {size[0]}x{size[1]} pixels; render a smaller viewport, clip to a "
                "selector, or split it.",
                size=original_bytes,
                limit=limit_bytes,
            )
        scale *= predict_scale(len(encoded), limit_bytes)


def predict_sizes(rgb: Image.Image) -> dict[int, float] | None:
    """The bytes a full-size JPEG of ``rgb`` should have at each of :data:`QUALITIES`, from encoding a
    sample of bands spread down it; None for an image too small to sample (encoding it is cheap)."""
    width, height = rgb.size
    band = int(height * SAMPLE_SHARE / SAMPLE_BANDS) // BLOCK * BLOCK
    if band < BLOCK:
        return None
    step = height / SAMPLE_BANDS
    sample = Image.new("RGB", (width, band * SAMPLE_BANDS))
    for index in range(SAMPLE_BANDS):
        top = int(index * step) // BLOCK * BLOCK
        sample.paste(rgb.crop((0, top, width, top + band)), (0, index * band))
    factor = height / sample.height
    return {quality: len(_encode_jpeg(sample, quality)) * factor for quality in QUALITIES}


def predict_scale(encoded_bytes: int, limit_bytes: int) -> float:
    """The linear scale at which a JPEG of ``encoded_bytes`` (same quality) should fit ``limit_bytes``."""
    return float((limit_bytes * FIT_MARGIN / encoded_bytes) ** (1 / SIZE_EXPONENT))


async def fit_image_async(data: bytes, fmt: ImageFormat, limit_bytes: int = MAX_IMAGE_BYTES) -> Fitted:
    """:func:`fit_image` in a worker thread, so re-encoding never blocks the event loop."""
    if len(data) <= limit_bytes:
        # The common case reads a header only: not worth a thread hop.
        return fit_image(data, fmt, limit_bytes)
    return await asyncio.to_thread(fit_image, data, fmt, limit_bytes)


def flatten(image: Image.Image) -> Image.Image:
    """RGB for JPEG: transparency composited onto white, as a browser shows a page without background."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _jpeg(image: Image.Image, quality: int) -> bytes:
    """A full encode: what fitting counts (at most two), apart from the sample's small ones."""
    return _encode_jpeg(image, quality)


def _encode_jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    # No optimize: its Huffman tables save 2 % of a 1280x16000 page's bytes for three times the encode
    # time (0.25 s against 0.08 s, benchmarks.encode); progressive is no smaller for screenshots.
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()
