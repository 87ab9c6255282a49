"""``POST /v1/media``: render a dashboard, upload it to WhatsApp, answer with the media id."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, post
from litestar.di import NamedDependency, Provide
from litestar.params import Body

from ...dashboards.catalog import RenderPlan
from ...schemas import MediaResponse, RenderRequest, UploadedImage
from ...whatsapp.publisher import Publisher
from ..openapi import RENDER, problem_responses
from . import plans
from .renders import RENDER_EXAMPLE


@post(
    "/media",
    summary="Render a dashboard and upload it to WhatsApp",
    description=(
        "Renders like `POST /v1/renders`, makes the image fit WhatsApp's 5 MB, uploads it to the "
        "WhatsApp Cloud API and answers with the media id to send. The image is not kept. With "
        "`split` (or the dashboard's), a tall capture is cut between its panels into parts a phone "
        "shows legibly, each uploaded in order and listed in `parts` (the top level is the first "
        "part's). Errors are RFC 9457 problem details."
    ),
    status_code=200,
    before_request=plans.strict_body,
    dependencies={"plan": Provide(plans.admitted_plan)},
    responses=problem_responses(*RENDER),
)
async def create_media(
    request: Request[str, None, Any],
    data: Annotated[RenderRequest, Body(examples=[RENDER_EXAMPLE])],  # decoded for the plan dependency
    plan: NamedDependency[RenderPlan],
    publisher: NamedDependency[Publisher],
) -> Response[MediaResponse]:
    published = await publisher.publish(plan)
    uploaded = {name: getattr(published, name) for name in UploadedImage.__struct_fields__}
    body = MediaResponse(**uploaded, request_id=request.scope["state"]["request_id"])
    return Response(
        body,
        headers={"X-Queue-Ms": str(published.queue_ms), "X-Render-Readiness": published.readiness.header()},
    )
