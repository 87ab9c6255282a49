"""The dashboards file (TOML): its schema, and the checks that stop start-up when it is wrong."""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from ..browser.capture import ImageFormat, Wait
from ..settings import ENV_PREFIX, ConfigError

DEMO_DASHBOARDS = ("screenshot_service.dev.demo", "dashboards.toml")
"""Where the demo's dashboards are, when the development package is installed (not in the image)."""


class Param(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One URL template parameter: its default and the pattern a value must match in full.

    With ``values``, only those values are allowed, and the pattern is derived from them.
    """

    default: str | None = None
    pattern: str = r"[A-Za-z0-9_-]{1,64}"
    description: str = ""
    values: list[str] | None = None


class Viewport(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Page size in CSS pixels and device scale factor."""

    width: Annotated[int, msgspec.Meta(ge=64, le=8192)] = 1280
    height: Annotated[int, msgspec.Meta(ge=64, le=16384)] = 800
    scale: Annotated[float, msgspec.Meta(gt=0, le=4)] = 1.0


ViewportPreset = Literal["phone", "desktop"]
VIEWPORT_PRESETS: dict[str, Viewport] = {
    # A phone in CSS pixels (iPhone 12 to 16, most Androids are 360 to 412 wide), at twice the pixels:
    # for dashboards with a mobile layout (media queries on the width), read at their own size.
    "phone": Viewport(width=390, height=844, scale=2),
    "desktop": Viewport(),
}
"""What ``viewport = "phone"`` (or ``"desktop"``) in the dashboards file stands for."""

DEFAULT_PANELS = (
    "header, footer, nav, section, article, figure, table, tr, img, svg, canvas, video, "
    "h1, h2, h3, h4, h5, h6, p, li, .react-grid-item, "
    "[class*=panel], [class*=card], [class*=chart], [class*=widget], [class*=tile]"
)
"""Elements a split never cuts through, unless one is taller than a part: dashboard apps' panels (Grafana's
grid items, cards, widgets), and what reads badly cut in two (charts, images, text, table rows)."""


class Cookie(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A cookie set in the dashboard's own browser context; its value comes from an env var."""

    name: str
    value_env: str
    path: str = "/"


class Dashboard(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A configured dashboard: where it lives, what it takes, and how to capture it."""

    name: str = ""
    title: str = ""
    description: str = ""
    url: str
    """URL template: ``{param}`` placeholders, and ``{service}`` for the service's own base URL."""
    params: dict[str, Param] = msgspec.field(default_factory=dict)
    viewport: Viewport | ViewportPreset = msgspec.field(default_factory=Viewport)
    """The page size, or a preset's name: ``"phone"`` (390x844 at scale 2) or ``"desktop"``."""
    wait: Wait = msgspec.field(default_factory=Wait)
    selector: str | None = None
    """Capture only the first element matching this CSS selector."""
    full_page: bool = False
    format: ImageFormat = "png"
    quality: Annotated[int, msgspec.Meta(ge=1, le=100)] | None = None
    timezone: str | None = None
    locale: str | None = None
    timeout_ms: Annotated[int, msgspec.Meta(ge=500, le=300_000)] | None = None
    headers_env: dict[str, str] = msgspec.field(default_factory=dict)
    """Extra HTTP headers: header name -> name of the env var holding its (secret) value."""
    cookies: list[Cookie] = msgspec.field(default_factory=list)
    cache_ttl_s: Annotated[int, msgspec.Meta(ge=0)] = 0
    split: bool = False
    """``POST /v1/media`` cuts a tall capture into phone-sized parts (a request's ``split`` overrides)."""
    panels: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)] = DEFAULT_PANELS
    """CSS selector of the elements a split cuts between (never through, unless taller than a part)."""

    @property
    def view(self) -> Viewport:
        """The viewport, a preset resolved."""
        return self.viewport if isinstance(self.viewport, Viewport) else VIEWPORT_PRESETS[self.viewport]


class DashboardsFile(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The dashboards file: a default dashboard and a ``[dashboards.NAME]`` table each."""

    default: str | None = None
    dashboards: dict[str, Dashboard] = msgspec.field(default_factory=dict)


NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def load_dashboards(path: str, environ: Mapping[str, str]) -> DashboardsFile:
    """Parse and check the dashboards file; ``""`` loads the demo's, where it is installed."""
    if path:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{ENV_PREFIX}DASHBOARDS_FILE: cannot read {path}: {exc.strerror}") from None
    else:
        data = _demo_dashboards()
        path = "(demo)"
    try:
        parsed = msgspec.toml.decode(data, type=DashboardsFile)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ConfigError(f"dashboards file {path}: {exc}") from None
    dashboards = {
        name: msgspec.structs.replace(
            d,
            name=name,
            title=d.title or name,
            params={pname: _with_values(p) for pname, p in d.params.items()},
        )
        for name, d in parsed.dashboards.items()
    }
    for name, dashboard in dashboards.items():
        _check_dashboard(path, name, dashboard, environ)
    if parsed.default is not None and parsed.default not in dashboards:
        raise ConfigError(f"dashboards file {path}: default {parsed.default!r} is not a dashboard")
    return DashboardsFile(default=parsed.default, dashboards=dashboards)


def _check_dashboard(path: str, name: str, dashboard: Dashboard, environ: Mapping[str, str]) -> None:
    where = f"dashboards file {path}: dashboards.{name}"
    if not NAME_RE.fullmatch(name):
        raise ConfigError(f"{where}: name must be lower-case letters, digits, '-' or '_'")
    authority = dashboard.url.partition("://")[2].partition("/")[0]
    if set(re.findall(r"{(\w+)}", authority)) - {"service"}:
        # The dashboard's origin is trusted by the browser's network policy: no request may choose it.
        raise ConfigError(f"{where}.url: parameters may not appear in the scheme, host or port")
    placeholders = set(re.findall(r"{(\w+)}", dashboard.url)) - {"service"}
    if missing := placeholders - dashboard.params.keys():
        raise ConfigError(f"{where}.url: placeholders without a param: {', '.join(sorted(missing))}")
    for pname, param in dashboard.params.items():
        if param.values is not None and (not param.values or not all(param.values)):
            raise ConfigError(f"{where}.params.{pname}.values: list at least one value, none empty")
        try:
            pattern = re.compile(param.pattern)
        except re.error as exc:
            raise ConfigError(f"{where}.params.{pname}.pattern: {exc}") from None
        if param.default is not None and not pattern.fullmatch(param.default):
            raise ConfigError(f"{where}.params.{pname}.default does not match its pattern")
    for env_name in [*dashboard.headers_env.values(), *(c.value_env for c in dashboard.cookies)]:
        if env_name not in environ:
            raise ConfigError(f"{where}: environment variable {env_name} is not set")


def _with_values(param: Param) -> Param:
    """A parameter with allowed values matches exactly those: its pattern is derived from them."""
    if not param.values:
        return param
    return msgspec.structs.replace(param, pattern="|".join(re.escape(v) for v in param.values))


def _demo_dashboards() -> bytes:
    package, name = DEMO_DASHBOARDS
    try:
        return resources.files(package).joinpath(name).read_bytes()
    except ModuleNotFoundError:
        raise ConfigError(
            f"{ENV_PREFIX}DASHBOARDS_FILE: set it to your dashboards file "
            "(the demo's dashboards are not installed here)"
        ) from None
