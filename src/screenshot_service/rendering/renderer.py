"""One render of a checked plan: admitted to a render slot, run by the browser supervisor, measured."""

from __future__ import annotations

import asyncio
import time

import msgspec
import structlog

from .. import metrics
from ..browser.capture import READINESS_STEPS, Deadline, PageBoxes, Readiness
from ..browser.supervisor import Supervisor
from ..dashboards.catalog import RenderPlan
from ..errors import RenderTimeout, ServiceError
from .admission import Admission
from .singleflight import SingleFlight

log = structlog.get_logger(__name__)


class Rendered(msgspec.Struct, kw_only=True, frozen=True):
    """Image bytes and what it took to make them."""

    data: bytes
    mime_type: str
    dashboard: str
    render_ms: int
    queue_ms: int
    readiness: Readiness = msgspec.field(default_factory=Readiness)
    """How the page became ready (which conditions held, or ``partial``)."""
    boxes: PageBoxes | None = None
    """The page's panels, when the plan asked for them (to split the image between them)."""


class Renderer:
    """Turns checked plans into images: admission, single flight, the browser, one log line each."""

    def __init__(self, supervisor: Supervisor, admission: Admission) -> None:
        self._supervisor = supervisor
        self._admission = admission
        self._flights: SingleFlight[Rendered] = SingleFlight()

    async def render(self, plan: RenderPlan) -> Rendered:
        """Render ``plan``; identical requests under way share one render (single flight)."""
        rendered, shared = await self._flights.run(plan.key, lambda: self._render(plan))
        if shared:
            metrics.RENDERS_SHARED.inc()
        return rendered

    async def _render(self, plan: RenderPlan) -> Rendered:
        """Wait for a render slot (bounded queue), then render a checked plan within its deadline.

        One log line and metrics whatever the outcome; the render's deadline starts with its slot.
        """
        started = time.perf_counter()
        outcome = "error"
        queue_ms = 0
        metrics.RENDERS_IN_FLIGHT.inc()
        try:
            async with self._admission.slot() as waited:
                queue_ms = round(waited * 1000)
                started = time.perf_counter()
                shot = await self._supervisor.render(
                    plan.context_key, plan.context, plan.capture, Deadline(plan.timeout_ms)
                )
            outcome = "ok"
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except RenderTimeout as exc:
            outcome = exc.slug
            if exc.step in READINESS_STEPS:
                metrics.READINESS.labels(f"timeout:{exc.step}").inc()
            raise
        except ServiceError as exc:
            outcome = exc.slug
            raise
        finally:
            metrics.RENDERS_IN_FLIGHT.dec()
            elapsed = time.perf_counter() - started
            metrics.RENDER_SECONDS.labels(plan.dashboard, outcome).observe(elapsed)
            metrics.RENDERS.labels(plan.dashboard, outcome).inc()
            log.info(
                "render",
                dashboard=plan.dashboard,
                outcome=outcome,
                render_ms=round(elapsed * 1000),
                queue_ms=queue_ms,
                **({} if outcome != "ok" else {"readiness": shot.readiness.header()}),
            )
        metrics.READINESS.labels(shot.readiness.outcome).inc()
        metrics.IMAGE_BYTES.observe(len(shot.data))
        return Rendered(
            data=shot.data,
            readiness=shot.readiness,
            boxes=shot.boxes,
            mime_type=plan.mime_type,
            dashboard=plan.dashboard,
            render_ms=round(elapsed * 1000),
            queue_ms=queue_ms,
        )
