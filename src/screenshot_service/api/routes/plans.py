"""What both render routes share: their body decoded strictly, then admitted by the guard and planned by
the catalog."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, ValidationException
from litestar.params import JSONBody

from ...dashboards.catalog import Catalog, RenderPlan
from ...guard.checks import Guard
from ...logs import bind
from ...schemas import RenderRequest


async def no_body(request: Request[Any, Any, Any]) -> None:
    """Refuse a body on a route that takes none (GET and HEAD here): it would be ignored, silently."""
    if await request.body():
        raise ClientException(f"{request.method} {request.url.path} takes no body.")


async def strict_body(request: Request[Any, Any, Any]) -> None:
    """Decode the body as a :class:`RenderRequest` with msgspec's strict rules before Litestar does.

    Litestar converts a handler's ``data`` in lax mode (``"20000"`` would pass as ``timeout_ms``) after
    decoding it untyped (a body nested a thousand levels deep exhausts the recursion limit there). A
    typed decode refuses a wrong type at the first byte that shows it, so neither happens: what Litestar
    decodes after this hook has passed it already.
    """
    try:
        msgspec.json.decode(await request.body(), type=RenderRequest)
    except msgspec.ValidationError as exc:
        if str(exc).startswith("Expected `object`"):  # the body itself, not one of its fields
            raise ClientException("The body is not a JSON object.") from None
        raise ValidationException(str(exc), extra=[{"message": str(exc)}]) from None
    except msgspec.DecodeError:
        raise ClientException("The body is not a JSON object.") from None


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
