"""Rate limits: per API key (Litestar's middleware) and per requester number, fixed windows counted in
a Litestar :class:`~litestar.stores.base.Store` (process memory, or Redis shared by replicas).

The per-key limit is Litestar's own middleware, keyed on the key *name* the auth middleware found; its
refusal is translated into our 429 problem here. The requester is in the JSON body, which middleware
has not decoded yet, so the per-phone limit is :class:`FixedWindow`, applied after decoding with the
same semantics over the same store. A store that cannot be reached fails closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import structlog
from litestar.exceptions import TooManyRequestsException
from litestar.middleware.rate_limit import (
    DURATION_VALUES,
    CacheObject,
    RateLimitConfig,
    RateLimitMiddleware,
    get_remote_address,
)
from litestar.stores.base import Store
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from litestar.types import Receive, Scope, Send
from redis.exceptions import RedisError

from .. import metrics
from ..errors import LimiterUnavailable, TooManyRequests
from ..settings import RateLimitUnit, Settings

STORE_NAME = "rate_limit"

log = structlog.get_logger(__name__)


def create_store(settings: Settings) -> Store:
    """Where counters (and cached media ids) live: Redis when a URL is configured, else process memory."""
    if settings.redis_url:
        return RedisStore.with_client(url=settings.redis_url.reveal(), namespace="screenshot-service")
    return MemoryStore()


def key_name(scope: Scope) -> str | None:
    """The name of the API key the request was authenticated with; None before (or without) auth."""
    name: str | None = scope.get("state", {}).get("key_name")
    return name


def _identity(request: Any) -> str:
    # OPTIONS and other requests the auth middleware lets by carry no key: counted per client address.
    name = key_name(request.scope)
    return f"key:{name}" if name else f"address:{get_remote_address(request)}"


class KeyRateLimitMiddleware(RateLimitMiddleware):
    """Litestar's rate-limit middleware, with its refusal and its store's failures as our problems."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except TooManyRequestsException as exc:
            name = key_name(scope) or "-"
            metrics.RATE_LIMITED.labels(name, "key").inc()
            log.warning("rate limited", key=name, scope="key")
            reset = (exc.headers or {}).get(self.config.rate_limit_reset_header_key, "")
            raise TooManyRequests(
                f"This API key may make {self.max_requests} requests a {self.unit}; try again later.",
                retry_after=max(1, int(reset)) if reset.isdigit() else 1,
            ) from None

    async def retrieve_cached_history(self, key: str, store: Store) -> CacheObject:
        async with _store_errors():
            return await super().retrieve_cached_history(key, store)

    async def set_cached_history(self, key: str, cache_object: CacheObject, store: Store) -> None:
        async with _store_errors():
            await super().set_cached_history(key, cache_object, store)


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
        identifier_for_request=_identity,
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
