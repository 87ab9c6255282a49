"""``GET /v1/dashboards``: the configured dashboards and their parameters."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency

from ...dashboards.catalog import Catalog
from ...schemas import DashboardList


@get("/dashboards", summary="List the configured dashboards")
async def list_dashboards(catalog: NamedDependency[Catalog]) -> DashboardList:
    return catalog.describe()
