"""The service's main job: render a dashboard, make it fit WhatsApp, upload it, keep nothing."""

from __future__ import annotations

import msgspec

from .dashboards import RenderPlan
from .imaging import fit_image_async
from .meta import MetaClient
from .render import Renderer
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
    fitted: str | None


class Publisher:
    """Render → fit under 5 MB → private temp file → upload → file deleted, on every path."""

    def __init__(self, renderer: Renderer, temp: TempImages, meta: MetaClient) -> None:
        self.renderer = renderer
        self.temp = temp
        self.meta = meta

    async def publish(self, plan: RenderPlan) -> Published:
        """Raises :class:`~.errors.MetaNotConfigured` before any browser work when uploads cannot work."""
        self.meta.check_configured()
        rendered = await self.renderer.render(plan)
        image = await fit_image_async(rendered.data, plan.capture.format)
        async with self.temp.image(image.data, _SUFFIXES[image.mime_type]) as path:
            uploaded = await self.meta.upload(path, image.mime_type)
        return Published(
            media_id=uploaded.media_id,
            mime_type=image.mime_type,
            bytes=len(image.data),
            width=image.width,
            height=image.height,
            render_ms=rendered.render_ms,
            upload_ms=uploaded.upload_ms,
            fitted=image.fitted,
        )
