"""``POST /v1/renders``: render a dashboard and answer with the image itself."""

from __future__ import annotations

from typing import Annotated

from litestar import Response, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.spec import Example
from litestar.params import Body

from ...dashboards.catalog import RenderPlan
from ...errors import InvalidRequest
from ...rendering.renderer import Renderer
from ...schemas import RenderRequest
from ..openapi import RENDER, ImageOperation, problem_responses
from . import plans

RENDER_EXAMPLE = Example(
    summary="The sales dashboard for the last 7 days",
    value={"dashboard": "sales", "params": {"range": "7d"}, "requester": "97699112233"},
)


@post(
    "/renders",
    summary="Render a dashboard to an image",
    description=(
        "Answers with the PNG (or JPEG) bytes, the whole capture in one image: a dashboard's `split` "
        "does not apply here, and a request's `split: true` is refused (422; `POST /v1/media` splits). "
        "Errors are RFC 9457 problem details."
    ),
    status_code=200,
    before_request=plans.strict_body,
    dependencies={"plan": Provide(plans.admitted_plan)},
    media_type="image/png",
    responses=problem_responses(*RENDER),
    operation_class=ImageOperation,
)
async def create_render(
    data: Annotated[RenderRequest, Body(examples=[RENDER_EXAMPLE])],  # decoded for the plan dependency
    plan: NamedDependency[RenderPlan],
    renderer: NamedDependency[Renderer],
) -> Response[bytes]:
    if data.split:
        raise InvalidRequest(
            "split: only POST /v1/media cuts an image into parts; this route answers one image.",
            field="split",
        )
    rendered = await renderer.render(plan.whole())
    return Response(
        rendered.data,
        media_type=rendered.mime_type,
        headers={
            "Cache-Control": "no-store",
            "X-Render-Ms": str(rendered.render_ms),
            "X-Queue-Ms": str(rendered.queue_ms),
            "X-Render-Readiness": rendered.readiness.header(),
        },
    )
