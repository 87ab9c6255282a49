"""``GET /v1/dashboards``: the configured dashboards and their parameters."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency

from ...dashboards.catalog import Catalog
from ...schemas import DashboardList
from ..openapi import V1, problem_responses


@get("/dashboards", summary="List the configured dashboards", responses=problem_responses(400, *V1))
async def list_dashboards(catalog: NamedDependency[Catalog]) -> DashboardList:
    return catalog.describe()
