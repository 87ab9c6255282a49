"""The service's main job: render a dashboard, make it fit WhatsApp, upload it, keep nothing."""

from __future__ import annotations

import asyncio
import time

import msgspec

from . import metrics
from .dashboards import RenderPlan
from .errors import RenderTimeout
from .imaging import Fitted, fit_image_async
from .meta import MetaClient
from .render import Renderer
from .schemas import UploadedImage
from .settings import Settings
from .singleflight import SingleFlight
from .tempfiles import TempImages

_SUFFIXES = {"image/png": ".png", "image/jpeg": ".jpg"}
MEDIA_LIFETIME_S = 29 * 24 * 3600
"""WhatsApp keeps uploaded media for 30 days; a cached media id is never reused past 29."""


class Published(UploadedImage, kw_only=True, frozen=True):
    """An image uploaded to WhatsApp, and how its render went."""

    queue_ms: int
    readiness: str


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
        self._flights: SingleFlight[Published] = SingleFlight()
        self._cache = MediaCache()

    async def publish(self, plan: RenderPlan) -> Published:
        """Upload the image of ``plan``, or reuse one: identical requests under way share one render and
        one upload, and a dashboard with a ``cache_ttl_s`` reuses its media id for that long.

        Raises :class:`~.errors.MetaNotConfigured` before any browser work when uploads cannot work.
        """
        self.meta.check_configured()
        key = plan.key
        if plan.cache_ttl_s and (hit := self._cache.get(key)) is not None:
            metrics.MEDIA_REUSED.labels("cache").inc()
            return msgspec.structs.replace(hit, cached=True)
        published, shared = await self._flights.run(key, lambda: self._publish(plan))
        if shared:
            metrics.MEDIA_REUSED.labels("single-flight").inc()
        if plan.cache_ttl_s:
            self._cache.put(key, published, plan.cache_ttl_s)
        return published

    async def _publish(self, plan: RenderPlan) -> Published:
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


class MediaCache:
    """Media ids of recent uploads by plan key, each for its own time to live; bounded in size."""

    def __init__(self, max_entries: int = 1024) -> None:
        self._entries: dict[str, tuple[float, Published]] = {}
        self._max = max_entries

    def get(self, key: str) -> Published | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= time.monotonic():
            self._entries.pop(key, None)
            return None
        return entry[1]

    def put(self, key: str, published: Published, ttl_s: int) -> None:
        now = time.monotonic()
        if len(self._entries) >= self._max:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            while len(self._entries) >= self._max:  # still full: forget the oldest
                del self._entries[next(iter(self._entries))]
        self._entries[key] = (now + min(ttl_s, MEDIA_LIFETIME_S), published)
