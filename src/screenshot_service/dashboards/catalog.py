"""The dashboard registry: turns a render request into a checked plan (URL, context, capture)."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import zoneinfo
from collections.abc import Mapping
from typing import TypeVar
from urllib.parse import quote, urlsplit

import msgspec

from ..browser.capture import CaptureSpec, ContextSpec
from ..errors import Forbidden, InvalidParameter, InvalidRequest, UnknownDashboard
from ..guard.netpolicy import NetPolicy, origin_of
from ..schemas import DashboardInfo, DashboardList, ParamInfo, RenderRequest, ViewportOverride
from ..settings import Secret, Settings
from .config import Dashboard, DashboardsFile, load_dashboards

N = TypeVar("N", bound=float)
RAW_URL = "raw-url"
"""The ``dashboard`` of a raw URL render in logs and metrics."""


class RenderPlan(msgspec.Struct, kw_only=True, frozen=True):
    """Everything one render needs, checked: what the browser is asked to do and under which limits."""

    dashboard: str
    context_key: str | None
    """Key of the shared context to render in; None for a fresh one."""
    context: ContextSpec
    capture: CaptureSpec
    timeout_ms: int
    cache_ttl_s: int = 0
    """How long the media id of this render may be reused (the dashboard's ``cache_ttl_s``)."""
    split: bool = False
    """Cut the image into phone-sized parts between the panels (``capture.panels``) the page reports."""

    def whole(self) -> RenderPlan:
        """This plan as one image: not split, no panel boxes asked of the page."""
        if not self.split:
            return self
        return msgspec.structs.replace(
            self, split=False, capture=msgspec.structs.replace(self.capture, panels=None)
        )

    @property
    def mime_type(self) -> str:
        return f"image/{self.capture.format}"

    @property
    def key(self) -> str:
        """Identical plans (dashboard, URL, viewport, context, capture) have the same key; it is a
        hash, so the header and cookie values in the plan never show in it."""
        return hashlib.sha256(msgspec.json.encode(self)).hexdigest()


class Catalog:
    """The configured dashboards, with the secret values their headers and cookies need."""

    def __init__(self, file: DashboardsFile, secrets: Mapping[str, Secret], settings: Settings) -> None:
        self._dashboards = file.dashboards
        self.default = file.default
        self._secrets = dict(secrets)
        self._settings = settings
        self._policy = NetPolicy.from_settings(settings)

    @classmethod
    def load(cls, settings: Settings, environ: Mapping[str, str] | None = None) -> Catalog:
        """Read the dashboards file named by the settings and the env vars its secrets come from."""
        env = os.environ if environ is None else environ
        file = load_dashboards(settings.dashboards_file, env)
        needed = {
            name
            for d in file.dashboards.values()
            for name in [*d.headers_env.values(), *(c.value_env for c in d.cookies)]
        }
        return cls(file, {name: Secret(env[name]) for name in needed}, settings)

    def secret_values(self) -> list[str]:
        """The dashboards' header and cookie values, for the log redactor to look for."""
        return [secret.reveal() for secret in self._secrets.values()]

    def describe(self) -> DashboardList:
        """The public view of the catalog: names, titles and parameters, never URLs or secrets."""
        return DashboardList(
            default=self.default,
            dashboards=[
                DashboardInfo(
                    name=d.name,
                    title=d.title,
                    description=d.description,
                    params=[
                        ParamInfo(
                            name=n,
                            default=p.default,
                            pattern=p.pattern,
                            description=p.description,
                            values=list(p.values) if p.values else None,
                        )
                        for n, p in d.params.items()
                    ],
                )
                for d in self._dashboards.values()
            ],
        )

    def plan(self, request: RenderRequest) -> RenderPlan:
        """Check a request against its dashboard and the service's limits; raise a 4xx error if wrong."""
        if request.url is not None:
            if not self._settings.allow_raw_urls:
                raise Forbidden("Raw URLs are not enabled on this service; name a dashboard instead.")
            if request.dashboard is not None or request.params:
                field = "dashboard" if request.dashboard is not None else "params"
                raise InvalidRequest(
                    f"{field}: a raw URL is rendered as it is; send one or the other.", field=field
                )
            self._policy.check_raw_url(request.url)
            return self._plan_raw(request.url, request)
        name = request.dashboard or self.default
        if name is None:
            raise InvalidRequest("Name a dashboard; this service has no default.", field="dashboard")
        dashboard = self._dashboards.get(name)
        if dashboard is None:
            raise UnknownDashboard(f"There is no dashboard named {name!r}; GET /v1/dashboards lists them.")
        return self._plan_dashboard(dashboard, request)

    def _plan_raw(self, url: str, request: RenderRequest) -> RenderPlan:
        """A raw URL: a dashboard of defaults, in a fresh context that trusts no origin."""
        plan = self._plan_dashboard(Dashboard(name=RAW_URL, url=url), request, url=url)
        context = msgspec.structs.replace(plan.context, trusted_origin=None, allowlisted_navigation=True)
        return msgspec.structs.replace(plan, context_key=None, context=context)

    def _plan_dashboard(
        self, dashboard: Dashboard, request: RenderRequest, url: str | None = None
    ) -> RenderPlan:
        settings = self._settings
        url = url or self._build_url(dashboard, request.params)
        view = request.viewport or ViewportOverride()
        width = _bounded("viewport.width", view.width, dashboard.view.width, settings.max_viewport_width)
        height = _bounded("viewport.height", view.height, dashboard.view.height, settings.max_viewport_height)
        scale = _bounded("viewport.scale", view.scale, dashboard.view.scale, settings.max_scale)
        timeout_ms = _bounded(
            "timeout_ms",
            request.timeout_ms,
            dashboard.timeout_ms or settings.render_timeout_ms,
            settings.max_timeout_ms,
        )
        if request.timezone is not None and request.timezone not in _time_zones():
            raise InvalidRequest(
                f"timezone: {request.timezone!r} is not an IANA time zone.", field="timezone"
            )
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
        context = ContextSpec(
            width=width,
            height=height,
            scale=scale,
            timezone=request.timezone or dashboard.timezone,
            locale=request.locale or dashboard.locale,
            headers={header: self._secrets[env].reveal() for header, env in dashboard.headers_env.items()},
            cookies=[
                (c.name, self._secrets[c.value_env].reveal(), origin + c.path) for c in dashboard.cookies
            ],
            trusted_origin=origin_of(url),
        )
        fmt = request.format or dashboard.format
        split = dashboard.split if request.split is None else request.split
        capture = CaptureSpec(
            url=url,
            width=width,
            height=height,
            wait=dashboard.wait,
            selector=request.selector or dashboard.selector,
            full_page=dashboard.full_page if request.full_page is None else request.full_page,
            format=fmt,
            quality=(request.quality or dashboard.quality or 85) if fmt == "jpeg" else None,
            panels=dashboard.panels if split else None,
        )
        # Viewport size is per page; scale, timezone and locale are per context, so overriding them
        # needs a fresh context rather than a change to the dashboard's shared one.
        shared = (scale, context.timezone, context.locale) == (
            dashboard.view.scale,
            dashboard.timezone,
            dashboard.locale,
        )
        return RenderPlan(
            dashboard=dashboard.name,
            context_key=dashboard.name if shared else None,
            context=context,
            capture=capture,
            timeout_ms=timeout_ms,
            cache_ttl_s=dashboard.cache_ttl_s,
            split=split,
        )

    def _build_url(self, dashboard: Dashboard, params: Mapping[str, str]) -> str:
        if unknown := sorted(params.keys() - dashboard.params.keys()):
            raise InvalidParameter(
                f"params.{unknown[0]}: dashboard {dashboard.name!r} has no such parameter.",
                field=f"params.{unknown[0]}",
            )
        values: dict[str, str] = {"service": self._settings.self_url}
        for pname, param in dashboard.params.items():
            value = params.get(pname, param.default)
            if value is None:
                raise InvalidParameter(f"params.{pname} is required.", field=f"params.{pname}")
            if param.values and value not in param.values:
                raise InvalidParameter(
                    f"params.{pname} must be one of: {', '.join(param.values)}.", field=f"params.{pname}"
                )
            if not re.fullmatch(param.pattern, value):
                raise InvalidParameter(f"params.{pname} must match {param.pattern}.", field=f"params.{pname}")
            values[pname] = quote(value, safe="")
        return dashboard.url.format_map(values)


def _bounded(field: str, value: N | None, default: N, limit: N) -> N:
    if value is None:
        return default
    if value > limit:
        raise InvalidRequest(f"{field} must be at most {limit}.", field=field)
    return value


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())
