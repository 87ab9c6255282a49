"""The service's main job: render a dashboard, make it fit WhatsApp, upload it, keep nothing."""

from __future__ import annotations

import asyncio

import msgspec

from .dashboards import RenderPlan
from .errors import RenderTimeout
from .imaging import Fitted, fit_image_async
from .meta import MetaClient
from .render import Renderer
from .settings import Settings
from .tempfiles import TempImages

_SUFFIXES = {"image/png": ".png", "image/jpeg": ".jpg"}


class Published(msgspec.Struct, kw_only=True, frozen=True):
    """An image uploaded to WhatsApp, as it was sent, and what each step took."""

    media_id: str
    mime_type: str
    bytes: int
    width: int
    height: int
    render_ms: int
    upload_ms: int
    queue_ms: int
    readiness: str
    fitted: str | None


class Publisher:
    """Render → fit under 5 MB → private temp file → upload → file deleted, on every path.

    Each step has its bound (queue, render, encode, upload: see the settings), and the whole request
    has ``request_timeout_ms``; past it the request ends in a 504 naming the step it was at.
    """

    def __init__(self, renderer: Renderer, temp: TempImages, meta: MetaClient, settings: Settings) -> None:
        self.renderer = renderer
        self.temp = temp
        self.meta = meta
        self._request_timeout_s = settings.request_timeout_ms / 1000
        self._encode_timeout_s = settings.encode_timeout_ms / 1000

    async def publish(self, plan: RenderPlan) -> Published:
        """Raises :class:`~.errors.MetaNotConfigured` before any browser work when uploads cannot work."""
        self.meta.check_configured()
        step = "render"
        try:
            async with asyncio.timeout(self._request_timeout_s):
                rendered = await self.renderer.render(plan)
                step = "encode"
                image = await self._encode(rendered.data, plan)
                step = "upload"
                async with self.temp.image(image.data, _SUFFIXES[image.mime_type]) as path:
                    uploaded = await self.meta.upload(path, image.mime_type)
        except TimeoutError:
            raise RenderTimeout(
                f"The request did not finish within {self._request_timeout_s:g} s (it was at step '{step}').",
                step=step,
            ) from None
        return Published(
            media_id=uploaded.media_id,
            mime_type=image.mime_type,
            bytes=len(image.data),
            width=image.width,
            height=image.height,
            render_ms=rendered.render_ms,
            upload_ms=uploaded.upload_ms,
            queue_ms=rendered.queue_ms,
            readiness=rendered.readiness,
            fitted=image.fitted,
        )

    async def _encode(self, data: bytes, plan: RenderPlan) -> Fitted:
        try:
            async with asyncio.timeout(self._encode_timeout_s):
                return await fit_image_async(data, plan.capture.format)
        except TimeoutError:
            raise RenderTimeout(
                f"Making the image fit WhatsApp took longer than {self._encode_timeout_s:g} s.", step="encode"
            ) from None
