"""``GET /metrics``: Litestar's Prometheus exposition, described as the text it is, behind an optional
bearer token (``SCREENSHOT_METRICS_TOKEN``)."""

from __future__ import annotations

from litestar import Response, get
from litestar.plugins.prometheus import PrometheusController
from prometheus_client import CONTENT_TYPE_LATEST

from ...settings import Settings
from ..auth import bearer_guard
from ..openapi import problem_responses


def metrics_controller(settings: Settings) -> type[PrometheusController]:
    """Litestar's controller, guarded by the metrics token when one is configured."""
    token = settings.metrics_token

    class Metrics(PrometheusController):
        guards = [bearer_guard(token)] if token else None
        security = [{"metricsToken": []}] if token else None

        @get(
            media_type=CONTENT_TYPE_LATEST,
            summary="Prometheus metrics, in the text exposition format",
            include_in_schema=True,
            responses=problem_responses(401) if token else None,
        )
        async def get(self) -> Response[bytes]:
            response: Response[bytes] = await PrometheusController.get.fn(self)
            return response

    return Metrics
