"""The service's main job: render a dashboard, make it fit WhatsApp, upload it, keep nothing."""

from __future__ import annotations

import asyncio

import msgspec
import structlog
from litestar.stores.base import Store
from litestar.stores.memory import MemoryStore
from redis.exceptions import RedisError

from .. import metrics
from ..dashboards.catalog import RenderPlan
from ..errors import RenderTimeout
from ..rendering.renderer import Rendered, Renderer
from ..rendering.singleflight import SingleFlight
from ..schemas import ImagePart, UploadedImage
from ..settings import Settings
from .graph import GraphClient, Uploaded
from .imaging import Fitted, fit_image_async
from .parts import Part, split_image
from .tempfiles import TempImages

_SUFFIXES = {"image/png": ".png", "image/jpeg": ".jpg"}
log = structlog.get_logger(__name__)

MEDIA_LIFETIME_S = 29 * 24 * 3600
"""WhatsApp keeps uploaded media for 30 days; a cached media id is never reused past 29."""


class Published(UploadedImage, kw_only=True, frozen=True):
    """An image uploaded to WhatsApp, and how its render went."""

    queue_ms: int


class Publisher:
    """Render → fit under 5 MB → private temp file → upload → file deleted, on every path.

    Each step has its bound (queue, render, encode, upload: see the settings), and the whole request
    has ``request_timeout_ms``; past it the request ends in a 504 naming the step it was at.

    A split plan is cut into parts, all encoded in one go under the encode bound, then uploaded in
    order, each from its own temp file deleted right after its upload. If a part's upload fails, the
    request fails; the parts uploaded before it are not sent by anyone and WhatsApp drops them after
    30 days (the Graph API has no undo an upload that is worth a second failure mode).
    """

    def __init__(
        self, renderer: Renderer, temp: TempImages, graph: GraphClient, cache: Store, settings: Settings
    ) -> None:
        self._renderer = renderer
        self._temp = temp
        self._graph = graph
        self._cache = cache
        """Media ids of recent uploads by plan key: in the app's store, so replicas on Redis share them."""
        self._request_timeout_s = settings.request_timeout_ms / 1000
        self._encode_timeout_s = settings.encode_timeout_ms / 1000
        self._flights: SingleFlight[Published] = SingleFlight()

    async def publish(self, plan: RenderPlan) -> Published:
        """Upload the image of ``plan``, or reuse one: identical requests under way share one render and
        one upload, and a dashboard with a ``cache_ttl_s`` reuses its media id for that long.

        Raises :class:`~.errors.MetaNotConfigured` before any browser work when uploads cannot work.
        """
        self._graph.check_configured()
        key = plan.key
        if plan.cache_ttl_s and (hit := await self._cached(key)) is not None:
            metrics.MEDIA_REUSED.labels("cache").inc()
            return msgspec.structs.replace(hit, cached=True)
        published, shared = await self._flights.run(key, lambda: self._publish(plan))
        if shared:
            metrics.MEDIA_REUSED.labels("single-flight").inc()
        if plan.cache_ttl_s:
            await self._remember(key, published, min(plan.cache_ttl_s, MEDIA_LIFETIME_S))
        return published

    async def _cached(self, key: str) -> Published | None:
        try:
            hit = await self._cache.get(key)
        except (RedisError, OSError) as exc:  # a cache that cannot be read is a miss, not a failure
            log.warning("media cache unavailable", error=type(exc).__name__)
            return None
        return None if hit is None else msgspec.json.decode(hit, type=Published)

    async def _remember(self, key: str, published: Published, ttl_s: int) -> None:
        try:
            await self._cache.set(key, msgspec.json.encode(published), expires_in=ttl_s)
            if isinstance(self._cache, MemoryStore):
                await self._cache.delete_expired()  # process memory is not freed by expiry alone
        except (RedisError, OSError) as exc:
            log.warning("media cache unavailable", error=type(exc).__name__)

    async def _publish(self, plan: RenderPlan) -> Published:
        step = "render"
        try:
            async with asyncio.timeout(self._request_timeout_s):
                rendered = await self._renderer.render(plan)
                step = "encode"
                if plan.split:
                    parts = await self._split(rendered, plan)
                else:
                    image = await self._encode(rendered.data, plan)
                step = "upload"
                if plan.split:
                    return await self._publish_parts(rendered, parts)
                uploaded = await self._upload(image)
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

    async def _upload(self, image: Fitted) -> Uploaded:
        async with self._temp.image(image.data, _SUFFIXES[image.mime_type]) as path:
            return await self._graph.upload(path, image.mime_type)

    async def _publish_parts(self, rendered: Rendered, parts: list[Part]) -> Published:
        """Upload the parts in order, one temp file at a time: the first part is the answer's top level."""
        answered: list[ImagePart] = []
        upload_ms = 0
        for part in parts:
            uploaded = await self._upload(part.image)
            upload_ms += uploaded.upload_ms
            image = part.image
            answered.append(
                ImagePart(
                    media_id=uploaded.media_id,
                    mime_type=image.mime_type,
                    bytes=len(image.data),
                    width=image.width,
                    height=image.height,
                    box=part.box,
                    fitted=image.fitted,
                )
            )
        first = answered[0]
        return Published(
            media_id=first.media_id,
            mime_type=first.mime_type,
            bytes=first.bytes,
            width=first.width,
            height=first.height,
            render_ms=rendered.render_ms,
            upload_ms=upload_ms,
            queue_ms=rendered.queue_ms,
            readiness=rendered.readiness,
            fitted=first.fitted,
            parts=answered,
        )

    async def _split(self, rendered: Rendered, plan: RenderPlan) -> list[Part]:
        try:
            async with asyncio.timeout(self._encode_timeout_s):
                return await asyncio.to_thread(
                    split_image, rendered.data, plan.capture.format, rendered.boxes, plan.context.scale
                )
        except TimeoutError:
            raise RenderTimeout(
                f"Cutting the image into parts took longer than {self._encode_timeout_s:g} s.", step="encode"
            ) from None

    async def _encode(self, data: bytes, plan: RenderPlan) -> Fitted:
        try:
            async with asyncio.timeout(self._encode_timeout_s):
                return await fit_image_async(data, plan.capture.format)
        except TimeoutError:
            raise RenderTimeout(
                f"Making the image fit WhatsApp took longer than {self._encode_timeout_s:g} s.", step="encode"
            ) from None
