"""The dependency both render routes share: a request admitted by the guard and planned by the catalog."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency
from litestar.params import JSONBody

from ...dashboards.catalog import Catalog, RenderPlan
from ...guard.checks import Guard
from ...logs import bind
from ...schemas import RenderRequest


async def admitted_plan(
    request: Request[str, None, Any],
    data: JSONBody[RenderRequest],
    guard: NamedDependency[Guard],
    catalog: NamedDependency[Catalog],
) -> RenderPlan:
    """Refuse (4xx) a request that may not render, else its checked plan; binds who and what to the logs."""
    bind(key=request.user)
    if requester := await guard.admit(data, key_name=request.user):
        bind(requester=requester)  # masked
    plan = catalog.plan(data)
    bind(dashboard=plan.dashboard)
    return plan
