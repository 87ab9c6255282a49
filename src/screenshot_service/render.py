"""One render, end to end: plan the request, run it in the browser pool, measure and log it."""

from __future__ import annotations

import asyncio
import time

import msgspec
import structlog

from . import metrics
from .admission import Admission
from .browser import BrowserPool
from .dashboards import Catalog, RenderPlan
from .engines import READINESS_STEPS, Deadline
from .errors import RenderTimeout, ServiceError
from .schemas import RenderRequest
from .singleflight import SingleFlight

log = structlog.get_logger(__name__)


class Rendered(msgspec.Struct, kw_only=True, frozen=True):
    """Image bytes and what it took to make them."""

    data: bytes
    mime_type: str
    dashboard: str
    render_ms: int
    queue_ms: int
    readiness: str = "complete"
    """How the page became ready: ``complete`` (every readiness condition held)."""


class Renderer:
    """Turns render requests into images; the routes call this and nothing below it."""

    def __init__(self, catalog: Catalog, pool: BrowserPool, admission: Admission) -> None:
        self.catalog = catalog
        self.pool = pool
        self.admission = admission
        self._flights: SingleFlight[Rendered] = SingleFlight()

    def plan(self, request: RenderRequest) -> RenderPlan:
        """Check a request; raises a 4xx error before any browser work is done."""
        return self.catalog.plan(request)

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
            async with self.admission.slot() as waited:
                queue_ms = round(waited * 1000)
                started = time.perf_counter()
                data = await self.pool.render(
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
            )
        metrics.READINESS.labels("complete").inc()
        metrics.IMAGE_BYTES.observe(len(data))
        return Rendered(
            data=data,
            mime_type=plan.mime_type,
            dashboard=plan.dashboard,
            render_ms=round(elapsed * 1000),
            queue_ms=queue_ms,
        )
