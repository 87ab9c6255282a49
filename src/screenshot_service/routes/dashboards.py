"""``GET /v1/dashboards``: the configured dashboards and their parameters."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency

from ..render import Renderer
from ..schemas import DashboardList


@get("/dashboards", summary="List the configured dashboards")
async def list_dashboards(renderer: NamedDependency[Renderer]) -> DashboardList:
    return renderer.catalog.describe()
