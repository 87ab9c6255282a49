"""Composition root: builds the Litestar app from settings, wires plugins, and owns the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import structlog
from litestar import Litestar, Router
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig
from litestar.plugins.structlog import StructlogConfig, StructlogPlugin
from litestar.stores.base import NamespacedStore
from litestar.stores.memory import MemoryStore
from litestar.types import ControllerRouterHandler

from . import __version__
from .api.auth import ApiKeyMiddleware, ApiKeys
from .api.middleware import CancelOnDisconnect, RequestId
from .api.openapi import tell_the_truth
from .api.problems import internal_error, problem_details_plugin
from .api.routes import dashboards, health, media, plans, renders
from .api.routes.metrics import metrics_controller
from .browser.capture import EngineFactory, create_engine
from .browser.probe import BrowserProbe
from .browser.supervisor import Supervisor
from .dashboards.catalog import Catalog
from .errors import BrowserUnavailable
from .guard.checks import Guard
from .guard.limits import STORE_NAME, create_store, key_rate_limit
from .guard.phones import Masker
from .logs import Redactor, structlog_config
from .rendering.admission import Admission
from .rendering.renderer import Renderer
from .settings import ConfigError, Settings
from .whatsapp.graph import GraphClient
from .whatsapp.publisher import Publisher
from .whatsapp.tempfiles import TempImages

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
    supervisor = Supervisor(settings, engine_factory)
    admission = Admission(
        settings.render_concurrency, settings.render_queue_size, settings.render_queue_timeout_ms
    )
    renderer = Renderer(supervisor, admission)
    graph = GraphClient(settings)
    temp = TempImages.from_settings(settings)
    temp.ensure()  # a temp directory we cannot trust stops start-up, naming SCREENSHOT_TEMP_DIR
    store = create_store(settings)
    # Media ids in the same place as the counters: replicas on Redis share them too.
    media_cache = store.with_namespace("media") if isinstance(store, NamespacedStore) else MemoryStore()
    publisher = Publisher(renderer, temp, graph, media_cache, settings)
    masker = Masker(settings.log_hash_key.reveal() or None)
    guard = Guard(settings, store, masker)
    key_limit = key_rate_limit(settings)
    redactor = Redactor(
        [
            *(key.reveal() for key in settings.api_keys.values()),
            settings.meta_access_token.reveal(),
            settings.redis_url.reveal(),
            settings.log_hash_key.reveal(),
            settings.metrics_token.reveal(),
            *catalog.secret_values(),
        ],
        masker,
    )

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await temp.sweep()  # what a crash left behind
        try:
            await supervisor.start()
        except BrowserUnavailable as exc:
            # Keep serving: /readyz reports it, renders answer 503 and retry the launch.
            log.error("browser did not start", detail=exc.detail)  # noqa: TRY400  (expected; no traceback)
        try:
            async with store, graph:  # a Redis connection pool; Meta's HTTP client
                yield
        finally:
            await supervisor.close()
            await temp.sweep()

    api = Router(
        "/v1",
        route_handlers=[renders.create_render, media.create_media, dashboards.list_dashboards],
        # Cheapest refusal first: no key, then too many requests for this key.
        middleware=[
            DefineMiddleware(ApiKeyMiddleware, keys=ApiKeys(settings.api_keys)),
            *([key_limit.middleware] if key_limit else []),
            CancelOnDisconnect(),
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
            metrics_controller(settings),
            *_demo_routes(settings),
        ],
        dependencies={
            name: Provide(_constant(value), use_cache=True, sync_to_thread=False)
            for name, value in {
                "settings": settings,
                "catalog": catalog,
                "guard": guard,
                "renderer": renderer,
                "publisher": publisher,
                "probe": BrowserProbe(supervisor, settings.ready_cache_s),
            }.items()
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
            problem_details_plugin(),
        ],
        exception_handlers={Exception: internal_error},
        before_request=plans.no_body,  # the render routes decode theirs with plans.strict_body instead
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Dashboard screenshot service",
            version=__version__,
            description="Renders configured dashboards to PNG and uploads them to WhatsApp for an n8n bot.",
            path="/openapi",
            components=Components(
                security_schemes={
                    "apiKey": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header"),
                    **(
                        {"metricsToken": SecurityScheme(type="http", scheme="bearer")}
                        if settings.metrics_token
                        else {}
                    ),
                }
            ),
        ),
    )
    tell_the_truth(app.openapi_schema, settings)
    app.state.supervisor = supervisor  # for tests that count what the browser has open
    # Outside Litestar's own exception handling, so routing errors and auth failures carry the id too.
    app.asgi_handler = RequestId()(app.asgi_handler)
    return app


def _demo_routes(settings: Settings) -> Sequence[ControllerRouterHandler]:
    """The demo's page and data, served only with the demo's dashboards (no dashboards file set), which
    only a development install has: a configured service serves nothing of the demo."""
    if settings.dashboards_file:
        return ()
    from .dev.demo import DEMO_ROUTES  # noqa: PLC0415  (development installs only)

    return DEMO_ROUTES


def _constant(value: Any) -> Any:
    def provide() -> Any:
        return value

    return provide
