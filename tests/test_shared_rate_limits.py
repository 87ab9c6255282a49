"""Horizontal scaling: two service processes sharing one real Redis enforce one rate limit together."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import pytest
import redis

from screenshot_service.settings import ConfigError, load_settings

from .support.redis import redis_server
from .support.service import API_KEY, OTHER_KEY, service_processes

NUMBER = "97699112233"


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@contextlib.contextmanager
def two_replicas(redis_url: str) -> Iterator[tuple[str, str]]:
    """Two `serve` processes on one Redis, with one hash key (as replicas of one Deployment are).

    Their Chromium path leads nowhere, so no browser is launched: limits are checked before rendering.
    """
    env = {
        "SCREENSHOT_API_KEYS": f"n8n:{API_KEY},other:{OTHER_KEY}",
        "SCREENSHOT_REDIS_URL": redis_url,
        "SCREENSHOT_LOG_HASH_KEY": "one-key-for-every-replica",
        "SCREENSHOT_RATE_LIMIT_PER_KEY": "5/minute",
        "SCREENSHOT_RATE_LIMIT_PER_PHONE": "2/minute",
        "SCREENSHOT_CHROMIUM_PATH": "/nonexistent/chromium",
    }
    with service_processes(env, count=2) as (first, second):
        yield first.base, second.base


def test_two_replicas_share_one_limit_per_key_and_per_phone(redis_url: str) -> None:
    with two_replicas(redis_url) as replicas:
        # Per API key: 5 a minute in all, asked of the replicas in turn.
        statuses = []
        for i in range(7):
            response = httpx.get(f"{replicas[i % 2]}/v1/dashboards", headers={"X-API-Key": API_KEY})
            statuses.append(response.status_code)
        assert statuses == [200] * 5 + [429] * 2
        assert int(response.headers["retry-after"]) >= 1
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"] == "urn:screenshot-service:problem:rate-limited"

        # Per requester number (another key, so the key limit is not what refuses): 2 a minute in all.
        outcomes = []
        for i, number in enumerate([NUMBER, f"+{NUMBER}", "+976 9911 2233"]):
            response = httpx.post(
                f"{replicas[i % 2]}/v1/renders",
                json={"dashboard": "sales", "requester": number},
                headers={"X-API-Key": OTHER_KEY},
                timeout=30,
            )
            outcomes.append(response.json()["type"].rpartition(":")[2])
        # The first two pass the limits and then find no browser (503); the third is refused by the limit.
        assert outcomes == ["browser-unavailable", "browser-unavailable", "rate-limited"]

    with redis.Redis.from_url(redis_url) as client:
        keys = [key.decode() for key in client.keys("*")]
    assert keys, "the counters live in Redis"
    assert not [key for key in keys if "9911" in key], "Redis holds hashes of numbers, never the numbers"


def test_without_redis_each_replica_counts_alone() -> None:
    """The control: the same two processes in memory let each key through twice as often."""
    env = {
        "SCREENSHOT_API_KEYS": f"n8n:{API_KEY}",
        "SCREENSHOT_RATE_LIMIT_PER_KEY": "2/minute",
        "SCREENSHOT_CHROMIUM_PATH": "/nonexistent/chromium",
    }
    with service_processes(env, count=2) as (first, second):
        statuses = [
            httpx.get(f"{base}/v1/dashboards", headers={"X-API-Key": API_KEY}).status_code
            for base in (first.base, second.base, first.base, second.base, first.base)
        ]
    assert statuses == [200, 200, 200, 200, 429]


def test_redis_with_a_per_phone_limit_needs_a_shared_hash_key() -> None:
    env = {"SCREENSHOT_API_KEYS": f"n8n:{API_KEY}", "SCREENSHOT_REDIS_URL": "redis://127.0.0.1:6379/0"}
    with pytest.raises(ConfigError, match="SCREENSHOT_LOG_HASH_KEY"):
        load_settings(env)
    assert load_settings({**env, "SCREENSHOT_RATE_LIMIT_PER_PHONE": "off"}).redis_url
    assert load_settings({**env, "SCREENSHOT_LOG_HASH_KEY": "k"}).redis_url
