"""Single flight: identical calls made while one is running share its result instead of repeating it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Flight(Generic[T]):
    __slots__ = ("task", "waiters")

    def __init__(self, task: asyncio.Task[T]) -> None:
        self.task = task
        self.waiters = 0


class SingleFlight(Generic[T]):
    """``await flights.run(key, call)``: the first caller for ``key`` starts ``call()``; callers that
    come while it runs wait for the same result (or error). The work runs in a task of its own, so a
    caller that is cancelled (its client hung up) does not cancel it for the others; it is cancelled
    only when every caller has gone.
    """

    def __init__(self) -> None:
        self._flights: dict[str, _Flight[T]] = {}

    def __len__(self) -> int:
        return len(self._flights)

    async def run(self, key: str, call: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """The result of ``call()``, and whether it was shared with a call already under way."""
        flight = self._flights.get(key)
        shared = flight is not None and flight.waiters > 0
        if flight is None or not shared:  # none, or one being cancelled because all its callers left
            flight = _Flight(asyncio.ensure_future(call()))
            self._flights[key] = flight
            flight.task.add_done_callback(lambda _: self._land(key, flight))
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.task), shared
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                flight.task.cancel()  # nobody waits for it any more
                await asyncio.wait({flight.task})  # its cleanup (pages, temp files) done before we return

    def _land(self, key: str, flight: _Flight[T]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.task.cancelled():
            flight.task.exception()  # seen: every waiter has had it raised
