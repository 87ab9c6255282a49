"""Liveness and readiness probes."""

from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from ...browser.probe import BrowserProbe
from ...errors import ServiceError
from ...schemas import Health
from ...settings import Settings


@get("/healthz", summary="Liveness: the process answers", exclude_from_auth=True)
async def healthz() -> Health:
    return Health(status="ok")


@get(
    "/readyz",
    summary="Readiness: the browser renders and uploads are configured",
    responses={
        HTTP_503_SERVICE_UNAVAILABLE: ResponseSpec(
            data_container=Health, description="Not ready: `checks` says what is not", generate_examples=False
        )
    },
)
async def readyz(
    probe: NamedDependency[BrowserProbe], settings: NamedDependency[Settings]
) -> Response[Health]:
    checks: dict[str, str] = {}
    ready = True
    try:
        checks["browser"] = await probe.check()
    except ServiceError as exc:
        checks["browser"] = exc.detail
        ready = False
    checks["meta"] = (
        "ok"
        if settings.meta_configured
        else "not configured: set SCREENSHOT_META_PHONE_NUMBER_ID and SCREENSHOT_META_ACCESS_TOKEN"
    )
    return Response(
        Health(status="ok" if ready else "unavailable", checks=checks),
        status_code=HTTP_200_OK if ready else HTTP_503_SERVICE_UNAVAILABLE,
    )
