"""Retries: only what a retry can fix, bounded in attempts and time, waiting as Meta asks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import stamina
from prometheus_client import REGISTRY
from stamina.instrumentation import RetryDetails, get_on_retry_hooks, set_on_retry_hooks

from screenshot_service.errors import UpstreamDetails, UpstreamError, UpstreamThrottled
from screenshot_service.whatsapp.graph import GraphClient

from .support.emulator import EMULATOR_TOKEN, Emulator, meta_settings, png_bytes
from .support.servers import closed_port


def upstream_of(error: UpstreamError) -> UpstreamDetails:
    assert error.upstream is not None
    return error.upstream


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "image.png"
    path.write_bytes(png_bytes())
    return path


@pytest.fixture
async def quick_meta(emulator: Emulator, no_backoff: None) -> AsyncIterator[GraphClient]:
    """A client that gives up on an answer after 300 ms, for the slow-answer fault."""
    async with GraphClient(meta_settings(emulator.url, meta_timeout_ms="300")) as client:
        yield client


def _retries(reason: str) -> float:
    return REGISTRY.get_sample_value("screenshot_meta_upload_retries_total", {"reason": reason}) or 0.0


def assert_no_token(error: Exception) -> None:
    assert isinstance(error, UpstreamError)
    for text in (str(error), repr(error), error.detail, repr(error.upstream)):
        assert EMULATOR_TOKEN not in text


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        pytest.param({"kind": "http_500"}, "server_error", id="http-500"),
        pytest.param({"kind": "http_503"}, "server_error", id="http-503"),
        pytest.param(
            {"kind": "error", "status": 400, "code": 2}, "server_error", id="graph-code-2-transient"
        ),
        pytest.param({"kind": "throttle", "code": 80007}, "throttled", id="throttle-80007"),
        pytest.param(
            {"kind": "throttle", "code": 130429, "retry_after": 1}, "throttled", id="throttle-retry-after"
        ),
        pytest.param({"kind": "throttle", "code": 4}, "throttled", id="throttle-app-4"),
        pytest.param({"kind": "throttle", "code": 131056}, "throttled", id="throttle-pair-131056"),
        pytest.param({"kind": "error", "status": 429, "code": 999}, "throttled", id="http-429"),
        pytest.param({"kind": "drop"}, "unreachable", id="connection-drop"),
        pytest.param({"kind": "slow", "delay_ms": 3000}, "timeout", id="slow-answer"),
    ],
)
async def test_retryable_fault_recovers(
    quick_meta: GraphClient, emulator: Emulator, image: Path, fault: dict[str, Any], reason: str
) -> None:
    await emulator.faults(fault)
    before = _retries(reason)

    uploaded = await quick_meta.upload(image, "image/png")

    assert uploaded.attempts == 2
    assert [r["fault"] for r in await emulator.requests()] == [fault["kind"], None]
    assert [u["media_id"] for u in await emulator.uploads()] == [uploaded.media_id]
    assert _retries(reason) == before + 1
    assert not [family.name for family in REGISTRY.collect() if family.name.startswith("stamina")]


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        pytest.param({"kind": "token_expired"}, (401, 190, 463), id="expired-token-190"),
        pytest.param({"kind": "bad_param"}, (400, 100, None), id="bad-param-100"),
        pytest.param({"kind": "error", "status": 403, "code": 10}, (403, 10, None), id="permission-403"),
        pytest.param(
            {"kind": "error", "status": 400, "code": 100, "subcode": 33}, (400, 100, 33), id="unknown-id"
        ),
        pytest.param({"kind": "error", "status": 404, "code": 803}, (404, 803, None), id="http-404"),
    ],
)
async def test_non_retryable_fault_fails_at_once(
    meta: GraphClient,
    emulator: Emulator,
    image: Path,
    fault: dict[str, Any],
    expected: tuple[int, int, int | None],
) -> None:
    """``expected`` is Meta's HTTP status, error code and subcode as the error must name them."""
    status, code, subcode = expected
    await emulator.faults(fault, {"kind": "http_500"})  # a second fault that a retry would consume

    with pytest.raises(UpstreamError) as caught:
        await meta.upload(image, "image/png")

    error = caught.value
    assert type(error) is UpstreamError
    assert error.status == 502
    assert error.attempts == 1
    assert upstream_of(error).status == status
    assert upstream_of(error).code == code
    assert upstream_of(error).error_subcode == subcode
    assert upstream_of(error).fbtrace_id
    assert_no_token(error)
    assert len(await emulator.requests()) == 1
    assert len(await emulator.pending_faults()) == 1


async def test_wrong_token_is_named_without_showing_it(
    emulator: Emulator, image: Path, no_backoff: None
) -> None:
    secret = "wrong-token-abcdef0123456789"
    async with GraphClient(meta_settings(emulator.url, meta_access_token=secret)) as client:
        with pytest.raises(UpstreamError) as caught:
            await client.upload(image, "image/png")

    error = caught.value
    assert upstream_of(error).code == 190
    assert error.attempts == 1
    assert "SCREENSHOT_META_ACCESS_TOKEN" in error.detail
    for text in (str(error), repr(error), repr(error.upstream)):
        assert secret not in text
    [received] = await emulator.uploads()
    assert received["status"] == 401


async def test_attempts_are_bounded(emulator: Emulator, image: Path, no_backoff: None) -> None:
    await emulator.faults(*[{"kind": "http_500"}] * 6)

    async with GraphClient(meta_settings(emulator.url, meta_max_attempts="3")) as client:
        with pytest.raises(UpstreamError) as caught:
            await client.upload(image, "image/png")

    assert type(caught.value) is UpstreamError
    assert caught.value.attempts == 3
    assert upstream_of(caught.value).status == 500
    assert "3 attempts" in caught.value.detail
    assert len(await emulator.requests()) == 3
    assert len(await emulator.pending_faults()) == 3


async def test_persistent_throttling_is_a_503_with_retry_after(
    meta: GraphClient, emulator: Emulator, image: Path
) -> None:
    await emulator.faults(*[{"kind": "throttle", "code": 80007, "subcode": 2494055, "retry_after": 2}] * 4)

    with pytest.raises(UpstreamThrottled) as caught:
        await meta.upload(image, "image/png")

    error = caught.value
    assert error.status == 503
    assert error.retry_after == 2
    assert error.attempts == 4  # the settings' default
    assert upstream_of(error).code == 80007
    assert upstream_of(error).error_subcode == 2494055
    assert upstream_of(error).fbtrace_id
    assert_no_token(error)


async def test_throttling_without_retry_after_still_says_when_to_come_back(
    meta: GraphClient, emulator: Emulator, image: Path
) -> None:
    await emulator.faults(*[{"kind": "throttle", "code": 130429}] * 4)

    with pytest.raises(UpstreamThrottled) as caught:
        await meta.upload(image, "image/png")
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 0


async def test_retry_after_beyond_the_budget_gives_up_at_once(
    emulator: Emulator, image: Path, no_backoff: None
) -> None:
    await emulator.faults({"kind": "throttle", "code": 130429, "retry_after": 30})

    async with GraphClient(meta_settings(emulator.url, meta_retry_budget_ms="5000")) as client:
        with pytest.raises(UpstreamThrottled) as caught:
            await client.upload(image, "image/png")

    assert caught.value.retry_after == 30
    assert caught.value.attempts == 1


async def test_no_retry_budget_means_one_attempt(emulator: Emulator, image: Path, no_backoff: None) -> None:
    await emulator.faults({"kind": "http_503"})

    async with GraphClient(meta_settings(emulator.url, meta_retry_budget_ms="0")) as client:
        with pytest.raises(UpstreamError) as caught:
            await client.upload(image, "image/png")
    assert caught.value.attempts == 1


async def test_unreachable_meta_fails_after_bounded_attempts(image: Path, no_backoff: None) -> None:
    settings = meta_settings(f"http://127.0.0.1:{closed_port()}", meta_max_attempts="2")

    async with GraphClient(settings) as client:
        with pytest.raises(UpstreamError) as caught:
            await client.upload(image, "image/png")

    assert type(caught.value) is UpstreamError
    assert caught.value.attempts == 2
    assert caught.value.upstream == UpstreamDetails()
    assert "reach" in caught.value.detail


@pytest.fixture
def recorded_retries() -> Iterator[list[RetryDetails]]:
    """Real backoff (no testing mode), with stamina's retry hook recording each scheduled wait."""
    recorded: list[RetryDetails] = []

    def record(details: RetryDetails) -> None:
        recorded.append(details)

    previous = get_on_retry_hooks()
    set_on_retry_hooks([record])
    with stamina.set_testing(False):
        yield recorded
    set_on_retry_hooks(previous)


async def test_retry_after_is_honoured(
    emulator: Emulator, image: Path, recorded_retries: list[RetryDetails]
) -> None:
    """Meta's Retry-After replaces the exponential backoff: the scheduled wait is exactly what it asked."""
    await emulator.faults({"kind": "throttle", "code": 130429, "retry_after": 1})

    async with GraphClient(meta_settings(emulator.url)) as client:
        uploaded = await client.upload(image, "image/png")

    assert uploaded.attempts == 2
    [retry] = recorded_retries
    assert retry.wait_for == 1.0
    assert retry.retry_num == 1
