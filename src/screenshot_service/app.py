"""Composition root: builds the Litestar app from settings, wires plugins, and owns the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from litestar import Litestar, Request, Response, Router
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.plugins.structlog import StructlogConfig, StructlogPlugin

from . import __version__, metrics
from .admission import Admission
from .auth import ApiKeyMiddleware, ApiKeys
from .browser import BrowserPool, EngineFactory
from .dashboards import Catalog
from .disconnects import CancelOnDisconnect
from .engines import create_engine
from .errors import (
    PROBLEM_MEDIA_TYPE,
    BrowserUnavailable,
    RenderTimeout,
    ServiceError,
    from_http_exception,
    problem_body,
)
from .guard import STORE_NAME, Guard, create_store, key_rate_limit
from .logs import Redactor, RequestIdMiddleware, structlog_config
from .media import Publisher
from .meta import MetaClient
from .phones import Masker
from .render import Renderer
from .routes import dashboards, demo, health, media, renders
from .settings import ConfigError, Settings
from .tempfiles import TempImages

log = structlog.get_logger(__name__)


def create_app(
    settings: Settings,
    catalog: Catalog | None = None,
    *,
    engine_factory: EngineFactory = create_engine,
) -> Litestar:
    """Build the service for ``settings``; tests build their own apps the same way."""
    if not settings.api_keys:
        raise ConfigError("SCREENSHOT_API_KEYS: at least one API key is needed (name:key, comma separated)")
    catalog = catalog or Catalog.load(settings)
    pool = BrowserPool(settings, engine_factory)
    admission = Admission(
        settings.render_concurrency, settings.render_queue_size, settings.render_queue_timeout_ms
    )
    renderer = Renderer(catalog, pool, admission)
    meta = MetaClient(settings)
    temp = TempImages.from_settings(settings)
    temp.ensure()  # a temp directory we cannot trust stops start-up, naming SCREENSHOT_TEMP_DIR
    publisher = Publisher(renderer, temp, meta, settings)
    store = create_store(settings)
    masker = Masker(settings.log_hash_key.reveal() or None)
    guard = Guard(settings, store, masker)
    key_limit = key_rate_limit(settings)
    redactor = Redactor(
        [
            *(key.reveal() for key in settings.api_keys.values()),
            settings.meta_access_token.reveal(),
            settings.redis_url.reveal(),
            settings.log_hash_key.reveal(),
            *catalog.secret_values(),
        ],
        masker,
    )
    metrics.BROWSER_CONTEXTS.set_function(lambda: pool.open_targets()[0])
    metrics.BROWSER_PAGES.set_function(lambda: pool.open_targets()[1])

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await temp.sweep()  # what a crash left behind
        try:
            await pool.start()
        except BrowserUnavailable as exc:
            # Keep serving: /readyz reports it, renders answer 503 and retry the launch.
            log.error("browser did not start", detail=exc.detail)  # noqa: TRY400  (expected; no traceback)
        try:
            async with store, meta:  # a Redis connection pool; Meta's HTTP client
                yield
        finally:
            await pool.close()
            await temp.sweep()

    api = Router(
        "/v1",
        route_handlers=[renders.create_render, media.create_media, dashboards.list_dashboards],
        # Cheapest refusal first: no key, then too many requests for this key.
        middleware=[
            DefineMiddleware(ApiKeyMiddleware, keys=ApiKeys(settings.api_keys)),
            *([key_limit.middleware] if key_limit else []),
            CancelOnDisconnect,
        ],
        security=[{"apiKey": []}],
        tags=["v1"],
    )
    prometheus = PrometheusConfig(app_name="screenshot-service", prefix="screenshot_http", group_path=True)
    app = Litestar(
        route_handlers=[
            api,
            health.healthz,
            health.readyz,
            demo.demo_page,
            demo.demo_data,
            PrometheusController,
        ],
        dependencies={
            "renderer": Provide(lambda: renderer, use_cache=True, sync_to_thread=False),
            "settings": Provide(lambda: settings, use_cache=True, sync_to_thread=False),
            "guard": Provide(lambda: guard, use_cache=True, sync_to_thread=False),
            "publisher": Provide(lambda: publisher, use_cache=True, sync_to_thread=False),
        },
        stores={STORE_NAME: store},
        lifespan=[lifespan],
        middleware=[prometheus.middleware],
        plugins=[
            StructlogPlugin(
                StructlogConfig(
                    structlog_logging_config=structlog_config(
                        settings.log_level, settings.log_format, redactor
                    ),
                    enable_middleware_logging=False,
                )
            ),
            ProblemDetailsPlugin(
                ProblemDetailsConfig(
                    exception_to_problem_detail_map={
                        ServiceError: _to_problem,
                        HTTPException: lambda exc: _to_problem(from_http_exception(exc)),
                    },
                )
            ),
        ],
        exception_handlers={Exception: _internal_error},
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Dashboard screenshot service",
            version=__version__,
            description="Renders configured dashboards to PNG and uploads them to WhatsApp for an n8n bot.",
            path="/openapi",
            components=Components(
                security_schemes={
                    "apiKey": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header")
                }
            ),
        ),
    )
    # Outside Litestar's own exception handling, so routing errors and auth failures carry the id too.
    app.asgi_handler = RequestIdMiddleware(app.asgi_handler)
    return app


class _Problem(ProblemDetailsException):
    """Litestar's problem details, with the request id every problem of ours carries."""

    def to_response(self, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        response = super().to_response(request)
        if request_id := request.scope.get("state", {}).get("request_id"):
            response.content["request_id"] = request_id
        return response


def _to_problem(error: ServiceError) -> ProblemDetailsException:
    body = problem_body(error, None)
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, RenderTimeout):
        headers["X-Render-Readiness"] = f"timeout:{error.step}"
    return _Problem(
        detail=error.detail,
        status_code=error.status,
        type_=body.pop("type"),
        title=body.pop("title"),
        extra={k: v for k, v in body.items() if k not in {"status", "detail"}},
        headers=headers or None,
    )


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A bug: logged in full here, answered without internals."""
    log.error("unhandled error", path=request.url.path, exc_info=exc)
    error = ServiceError("Something went wrong on our side; it has been logged.")
    return _to_problem(error).to_response(request)


__all__ = ["PROBLEM_MEDIA_TYPE", "create_app"]
