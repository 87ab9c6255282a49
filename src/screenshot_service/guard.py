"""Who may render and how often: rate limits per API key and per requester, and the phone allowlist.

The per-key limit is Litestar's rate-limit middleware (fixed window, counters in a Litestar
:class:`~litestar.stores.base.Store`), keyed on the key *name* the auth middleware found. The requester
is in the JSON body, which middleware has not decoded yet, so the per-phone limit is applied after
decoding by :class:`Guard`, with the same fixed-window semantics over the same store. Counters live
in process memory by default, in Redis when ``SCREENSHOT_REDIS_URL`` is set (needed with replicas).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import structlog
from litestar.middleware.rate_limit import DURATION_VALUES, RateLimitConfig, RateLimitMiddleware
from litestar.stores.base import Store
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from litestar.types import Receive, Scope, Send
from redis.exceptions import RedisError

from . import metrics
from .errors import ForbiddenUrl, InvalidRequest, LimiterUnavailable, RequesterNotAllowed, TooManyRequests
from .netpolicy import NetPolicy
from .phones import Masker, normalise
from .schemas import RenderRequest
from .settings import RateLimitUnit, Settings

STORE_NAME = "rate_limit"

log = structlog.get_logger(__name__)


def create_store(settings: Settings) -> Store:
    """Where rate-limit counters live: Redis when a URL is configured, else this process's memory."""
    if settings.redis_url:
        return RedisStore.with_client(url=settings.redis_url.reveal(), namespace="screenshot-service")
    return MemoryStore()


def _key_name(request: Any) -> str:
    name: str = request.scope["state"]["key_name"]
    return name


class KeyRateLimitMiddleware(RateLimitMiddleware):
    """Litestar's fixed-window rate limit per API key name, refusing with our 429 problem."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = scope["litestar_app"]
        request = app.request_class(scope)
        store = self.config.get_store_from_app(app)
        key = self.cache_key_from_request(request)
        async with self._lock, _store_errors():
            window = await self.retrieve_cached_history(key, store)
            if len(window.history) >= self.max_requests:
                name = _key_name(request)
                metrics.RATE_LIMITED.labels(name, "key").inc()
                log.warning("rate limited", key=name, scope="key")
                raise TooManyRequests(
                    f"This API key may make {self.max_requests} requests a {self.unit}; try again later.",
                    retry_after=max(1, window.reset - int(time.time())),
                )
            await self.set_cached_history(key=key, cache_object=window, store=store)
        await self.app(scope, receive, self.create_send_wrapper(send=send, cache_object=window))


@contextlib.asynccontextmanager
async def _store_errors() -> AsyncIterator[None]:
    """A store that cannot be reached fails closed: no counting, no rendering (and no Meta quota)."""
    try:
        yield
    except (RedisError, OSError) as exc:
        log.warning("rate-limit store unavailable", error=type(exc).__name__)
        raise LimiterUnavailable(
            "Rate limits cannot be checked right now; try again shortly.", retry_after=5
        ) from exc


def key_rate_limit(settings: Settings) -> RateLimitConfig | None:
    """The per-key rate-limit middleware's configuration; None when the limit is off."""
    limit = settings.key_rate_limit
    if limit is None:
        return None
    return RateLimitConfig(
        rate_limit=limit,
        identifier_for_request=_key_name,
        middleware_class=KeyRateLimitMiddleware,
        store=STORE_NAME,
    )


class _Window(msgspec.Struct):
    count: int
    reset: int


class FixedWindow:
    """``limit`` hits per window per identity, counted in a Litestar store (the middleware's semantics).

    The read-modify-write is atomic within a process; with Redis and several replicas, concurrent
    requests at the limit can each pass once (the store interface has no atomic increment).
    """

    def __init__(self, store: Store, prefix: str, unit: RateLimitUnit, limit: int) -> None:
        self._store = store
        self._prefix = prefix
        self._unit = unit
        self._limit = limit
        self._lock = asyncio.Lock()

    async def hit(self, identity: str) -> int | None:
        """Count one hit; None if within the limit, else the seconds until the window resets."""
        key = f"{self._prefix}::{identity}"
        async with self._lock, _store_errors():
            now = int(time.time())
            raw = await self._store.get(key)
            window = msgspec.json.decode(raw, type=_Window) if raw else None
            if window is None or window.reset <= now:
                window = _Window(count=0, reset=now + DURATION_VALUES[self._unit])
            if window.count >= self._limit:
                return max(1, window.reset - now)
            window.count += 1
            await self._store.set(key, msgspec.json.encode(window), expires_in=max(1, window.reset - now))
            return None


class Guard:
    """Checks a decoded render request before anything is planned: requester, allowlists, limits."""

    def __init__(self, settings: Settings, store: Store, masker: Masker) -> None:
        self._allowlist = settings.phone_allowlist
        self._raw_urls = settings.allow_raw_urls
        self._policy = NetPolicy.from_settings(settings)
        self._masker = masker
        limit = settings.phone_rate_limit
        self._per_phone = FixedWindow(store, "phone", *limit) if limit else None

    async def admit(self, request: RenderRequest, key_name: str) -> str | None:
        """Refuse (4xx) a request that may not render; the masked requester for the logs, if any."""
        number = None
        if request.requester is not None:
            number = normalise(request.requester)
            if number is None:
                raise InvalidRequest(
                    "requester must be an international number: 7 to 15 digits, '+' and separators allowed.",
                    field="requester",
                )
        masked = self._masker.mask(number) if number else None
        if self._allowlist and number not in self._allowlist:
            metrics.FORBIDDEN.labels(key_name, "requester").inc()
            log.warning("requester refused", key=key_name, requester=masked)
            detail = (
                "This number is not allowed to request renders."
                if number
                else "This service serves allowlisted numbers only: name the requester."
            )
            raise RequesterNotAllowed(detail, extra={"field": "requester"})
        if (
            number
            and self._per_phone
            and (retry_after := await self._per_phone.hit(self._masker.digest(number)))
        ):
            metrics.RATE_LIMITED.labels(key_name, "phone").inc()
            log.warning("rate limited", key=key_name, scope="phone", requester=masked)
            raise TooManyRequests(
                "This number has asked for too many renders; try again later.", retry_after=retry_after
            )
        # A raw URL's addresses are checked here, before the browser is involved, for a clear refusal;
        # its syntax and the rest of the request are the planner's, and the browser checks it again.
        if request.url is not None and self._raw_urls and request.dashboard is None and not request.params:
            try:
                await self._policy.check_raw_url_addresses(request.url)
            except ForbiddenUrl:
                metrics.FORBIDDEN.labels(key_name, "url").inc()
                log.warning("raw url refused", key=key_name)
                raise
        return masked
