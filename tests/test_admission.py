"""Load handling on its own, without a browser: the render queue (slots, bound, deadline, Retry-After),
single flight, and the relaunch backoff."""

from __future__ import annotations

import asyncio

import pytest

from screenshot_service.browser.supervisor import MAX_BACKOFF_S, backoff_s
from screenshot_service.errors import Overloaded, QueueTimeout
from screenshot_service.rendering.admission import Admission
from screenshot_service.rendering.singleflight import SingleFlight


async def hold(admission: Admission, release: asyncio.Event, entered: list[float]) -> None:
    async with admission.slot() as waited:
        entered.append(waited)
        await release.wait()


async def test_a_full_queue_refuses_at_once_and_a_long_wait_times_out() -> None:
    admission = Admission(slots=2, queue_size=1, queue_timeout_ms=300)
    release = asyncio.Event()
    entered: list[float] = []
    holders = [asyncio.create_task(hold(admission, release, entered)) for _ in range(3)]
    await asyncio.sleep(0.05)
    assert (admission.running, admission.waiting) == (2, 1)

    with pytest.raises(Overloaded) as full:
        async with admission.slot():
            pass
    assert full.value.status == 429
    assert full.value.retry_after is not None
    assert full.value.retry_after >= 1

    with pytest.raises(QueueTimeout) as late:
        await holders[2]
    assert late.value.status == 503
    assert late.value.step == "queue"
    release.set()
    await asyncio.gather(*holders[:2])
    assert (admission.running, admission.waiting) == (0, 0)


async def test_a_queued_render_gets_the_next_free_slot() -> None:
    admission = Admission(slots=1, queue_size=4, queue_timeout_ms=5000)
    release = asyncio.Event()
    entered: list[float] = []
    first = asyncio.create_task(hold(admission, release, entered))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(hold(admission, release, entered))
    await asyncio.sleep(0.2)
    release.set()
    await asyncio.gather(first, second)
    assert entered[0] < 0.05
    assert entered[1] >= 0.15  # it waited for the first to finish


def test_relaunch_backoff_grows_and_is_capped() -> None:
    assert backoff_s(0) == 0
    delays = [backoff_s(n) for n in range(1, 12)]
    assert delays[0] <= 0.6
    assert delays[3] > delays[0]
    assert max(delays) <= MAX_BACKOFF_S * 1.2


async def test_single_flight_shares_and_survives_one_caller_leaving() -> None:
    flights: SingleFlight[int] = SingleFlight()
    calls = 0
    gate = asyncio.Event()

    async def work() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return 42

    leaving = asyncio.create_task(flights.run("k", work))
    staying = asyncio.create_task(flights.run("k", work))
    await asyncio.sleep(0.01)
    leaving.cancel()
    await asyncio.sleep(0.01)
    gate.set()
    assert await staying == (42, True)
    assert calls == 1
    assert len(flights) == 0


async def test_single_flight_cancels_the_work_when_every_caller_has_left() -> None:
    flights: SingleFlight[int] = SingleFlight()
    finished = asyncio.Event()

    async def work() -> int:
        try:
            await asyncio.sleep(10)
        finally:
            finished.set()
        return 1

    caller = asyncio.create_task(flights.run("k", work))
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert finished.is_set()  # its cleanup ran before the caller returned
    assert await flights.run("k", lambda: asyncio.sleep(0, result=7)) == (7, False)
