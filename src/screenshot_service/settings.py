"""Typed settings: the ``SCREENSHOT_*`` environment variables, validated once at start-up."""

from __future__ import annotations

import ipaddress
import itertools
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Literal

import msgspec

from .guard.phones import normalise as normalise_phone

ENV_PREFIX = "SCREENSHOT_"

Engine = Literal["playwright", "pyppeteer"]
RateLimitText = Annotated[str, msgspec.Meta(pattern=r"^(off|[1-9][0-9]{0,6}/(second|minute|hour|day))$")]
RateLimitUnit = Literal["second", "minute", "hour", "day"]


class ConfigError(Exception):
    """A setting or the dashboards file is wrong; the message names what to fix."""


class Secret(str):
    """A string that never shows itself in ``repr``, logs or tracebacks."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('**********')"

    def reveal(self) -> str:
        """The value itself, for the one place that must send it."""
        return str.__str__(self)


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    """Everything the service reads from its environment. Field ``x`` is ``SCREENSHOT_X``."""

    api_keys: dict[str, Secret] = msgspec.field(default_factory=dict)
    """``name:key`` pairs separated by commas; the name, never the key, is logged. Names are unique, and
    each key is at least 16 characters of at least 10 different ones, with 64 bits or more of estimated
    entropy (length times the Shannon entropy of its characters, and of the steps between them) and no
    placeholder word (``changeme``, ``password``, ``secret``, ``example``...): a weak key stops start-up."""
    host: str = "127.0.0.1"
    """Address the HTTP server listens on (``0.0.0.0`` in a container)."""
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8000
    """TCP port of the HTTP server."""
    public_url: str = ""
    """Where the service's own pages are reachable (the demo dashboard); defaults to http://host:port."""
    dashboards_file: str = ""
    """TOML file of dashboards; empty means the demo dashboards shipped with the package."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Least severe log level written."""
    log_format: Literal["json", "console"] = "json"
    """JSON lines for log collectors, or coloured text for a terminal."""

    # Browser
    engine: Engine = "playwright"
    """Browser library driving Chromium (pyppeteer needs the ``pyppeteer`` extra)."""
    chromium_path: str = "/usr/bin/chromium"
    """Chromium executable to launch (never downloaded)."""
    browser_ws_endpoint: str = ""
    """Use a running Chromium instead of launching one: its DevTools ``http://host:port`` (survives the
    browser's restarts) or ``ws://`` URL. It is connected to, never stopped, and reconnected to when lost."""
    render_concurrency: Annotated[int, msgspec.Meta(ge=1, le=64)] = 4
    """Render slots: pages rendering at once."""
    render_queue_size: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 16
    """Renders that may wait for a slot; beyond that a request is refused at once (429, Retry-After)."""
    render_queue_timeout_ms: Annotated[int, msgspec.Meta(ge=100, le=300_000)] = 15_000
    """How long a render may wait for a slot before it is refused (503, Retry-After)."""
    browser_recycle_after: Annotated[int, msgspec.Meta(ge=0)] = 1000
    """Replace the browser after this many renders (0: never); renders in flight finish on the old one."""
    browser_max_rss_mb: Annotated[int, msgspec.Meta(ge=0)] = 2048
    """Replace the browser when its processes' resident memory passes this (0: no limit); each process
    counts its proportional share (PSS) of the pages it shares with others."""
    page_pool_size: Annotated[int, msgspec.Meta(ge=-1, le=64)] = -1
    """Blank pages each dashboard's context keeps opened and prepared ahead of need, so a render starts
    at navigation; a page is used by one render and closed, the pool refilled after it. ``-1``: half the
    render slots (``SCREENSHOT_RENDER_CONCURRENCY``), at least one: each warm page is a renderer process,
    and a render that finds the pool empty only opens its own page, as without one. ``0``: no pool.
    Raw-URL renders never get one."""
    browser_idle_release_s: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = 300
    """Close the browser after this many seconds without renders (0: never); the next render launches it
    again (the readiness probe does not, so a kubelet's probes cannot keep it up). 300 s by default: a
    bot that sends a few pictures an hour idles far longer than it renders, so its memory goes back to
    the node between conversations, while the follow-ups of one conversation find the browser warm."""
    context_idle_s: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = 600
    """Close the shared context (and its warm pages) of a dashboard not rendered for this many seconds
    (0: never); the next render of it opens a new one."""
    page_heap_mb: Annotated[int, msgspec.Meta(ge=0, le=16_384)] = 1024
    """JavaScript heap limit of a page; a page that passes it crashes its tab, not the service (0: V8's)."""
    encode_timeout_ms: Annotated[int, msgspec.Meta(ge=100, le=120_000)] = 10_000
    """Bound of the step that re-encodes or scales an image to fit WhatsApp's size limit."""
    request_timeout_ms: Annotated[int, msgspec.Meta(ge=1000, le=600_000)] = 90_000
    """Bound of a whole ``/v1/media`` request: queue, render, encode and upload together."""
    drain_timeout_s: Annotated[float, msgspec.Meta(ge=0, le=600)] = 30
    """On SIGTERM, how long requests in flight may take to finish before they are cancelled."""
    ready_cache_s: Annotated[float, msgspec.Meta(ge=0, le=300)] = 5
    """How long ``/readyz`` reuses its last real render check."""
    render_timeout_ms: Annotated[int, msgspec.Meta(ge=500, le=120_000)] = 20_000
    """Deadline of a render when neither the dashboard nor the request sets one."""
    max_timeout_ms: Annotated[int, msgspec.Meta(ge=500, le=300_000)] = 60_000
    """Largest ``timeout_ms`` a request may ask for."""

    # Request limits
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024, le=1_048_576)] = 16_384
    """Largest request body accepted (413 beyond)."""
    max_viewport_width: Annotated[int, msgspec.Meta(ge=64, le=8192)] = 3840
    """Largest viewport width a request may ask for, in CSS pixels."""
    max_viewport_height: Annotated[int, msgspec.Meta(ge=64, le=16384)] = 4320
    """Largest viewport height a request may ask for, in CSS pixels."""
    max_scale: Annotated[float, msgspec.Meta(gt=0, le=4)] = 3.0
    """Largest device scale factor a request may ask for."""

    # Meta (WhatsApp Cloud API)
    meta_graph_url: str = "https://graph.facebook.com"
    """Base URL of Meta's Graph API (the local emulator's in tests and the demo)."""
    meta_api_version: str = "v21.0"
    """Graph API version in upload URLs."""
    meta_phone_number_id: str = ""
    """WhatsApp Business phone number id that uploads belong to; needed by ``/v1/media``."""
    meta_access_token: Secret = Secret("")
    """Graph API access token (a system user's); needed by ``/v1/media``."""
    meta_timeout_ms: Annotated[int, msgspec.Meta(ge=100, le=120_000)] = 15_000
    """Timeout of one upload attempt to Meta."""
    meta_max_attempts: Annotated[int, msgspec.Meta(ge=1, le=10)] = 4
    """Upload attempts at most, retries included (only retryable failures are retried)."""
    meta_retry_budget_ms: Annotated[int, msgspec.Meta(ge=0, le=120_000)] = 10_000
    """Total time retries of one upload may take."""
    meta_max_connections: Annotated[int, msgspec.Meta(ge=1, le=100)] = 10
    """Connections the Graph API client keeps open at most (uploads beyond wait for one)."""
    temp_dir: str = ""
    """Private directory for images between render and upload; empty means a per-user directory in /tmp."""

    # Guards
    rate_limit_per_key: RateLimitText = "60/minute"
    """Requests per API key (every /v1 route): ``N/second|minute|hour|day``, or ``off``."""
    rate_limit_per_phone: RateLimitText = "10/minute"
    """Renders per requester number, ``N/unit`` or ``off``."""
    redis_url: Secret = Secret("")
    """Keep rate-limit counters in Redis (shared by replicas) instead of in process memory, e.g.
    ``redis://:password@redis:6379/0``; the per-phone limit then needs ``SCREENSHOT_LOG_HASH_KEY``."""
    phone_allowlist: frozenset[str] = frozenset()
    """Comma-separated numbers; when set, only these requesters are served (and one must be named)."""
    allow_raw_urls: bool = False
    """Accept ``url`` instead of ``dashboard`` in requests, for hosts on ``SCREENSHOT_URL_ALLOWLIST``."""
    url_allowlist: tuple[str, ...] = ()
    """Hosts raw URLs may name: ``grafana.example.com`` exactly, or ``*.example.com`` for its subdomains."""
    allow_private_networks: bool = False
    """Let the browser reach private, loopback, link-local and CGNAT addresses (never metadata)."""
    allowed_networks: tuple[str, ...] = ()
    """CIDRs the browser may reach even though they are private (e.g. ``10.20.0.0/16``)."""
    egress_proxy_host: str = "127.0.0.1"
    """Address the browser's egress proxy listens on (every connection Chromium makes goes through it and
    the network policy); set it to an address a remote browser (``SCREENSHOT_BROWSER_WS_ENDPOINT``) can
    reach when that browser runs on another host."""
    metrics_token: Secret = Secret("")
    """When set, ``GET /metrics`` needs ``Authorization: Bearer <token>`` (401 otherwise); empty means
    public, for a scrape from inside the cluster only. It shows API key names and dashboard names."""
    log_hash_key: Secret = Secret("")
    """Key of the hash in masked phone numbers; random per process when empty (unstable across restarts)."""

    @property
    def self_url(self) -> str:
        """Base URL of the service itself, used for the demo dashboard's template."""
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"

    @property
    def pool_size(self) -> int:
        """Warm pages per dashboard context: ``page_pool_size``, or half the render slots when it is -1."""
        return -(-self.render_concurrency // 2) if self.page_pool_size < 0 else self.page_pool_size

    @property
    def meta_configured(self) -> bool:
        """Whether uploads to Meta can be attempted."""
        return bool(self.meta_phone_number_id and self.meta_access_token)

    @property
    def key_rate_limit(self) -> tuple[RateLimitUnit, int] | None:
        """``rate_limit_per_key`` as Litestar's ``(unit, count)``; None when off."""
        return _rate_limit(self.rate_limit_per_key)

    @property
    def phone_rate_limit(self) -> tuple[RateLimitUnit, int] | None:
        """``rate_limit_per_phone`` as ``(unit, count)``; None when off."""
        return _rate_limit(self.rate_limit_per_phone)


def _rate_limit(text: str) -> tuple[RateLimitUnit, int] | None:
    if text == "off":
        return None
    count, _, unit = text.partition("/")
    return msgspec.convert(unit, RateLimitUnit), int(count)


_HOST_ENTRY = re.compile(
    r"(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)


def _split(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _parse_phones(raw: str) -> frozenset[str]:
    numbers = set()
    for entry in _split(raw):
        number = normalise_phone(entry)
        if number is None:
            raise ConfigError(
                f"{ENV_PREFIX}PHONE_ALLOWLIST: {entry[:3]}... is not an international number (7-15 digits)"
            )
        numbers.add(number)
    return frozenset(numbers)


def _parse_hosts(raw: str) -> tuple[str, ...]:
    hosts = []
    for entry in _split(raw):
        host = entry.lower()
        if not (_HOST_ENTRY.fullmatch(host) or _is_ip(host.strip("[]"))):
            raise ConfigError(
                f"{ENV_PREFIX}URL_ALLOWLIST: {entry!r} is not a host name, an IP address or *.domain "
                "(no scheme, port, path or trailing dot; write IDNs in their xn-- form)"
            )
        hosts.append(host)
    return tuple(hosts)


def _parse_networks(raw: str) -> tuple[str, ...]:
    networks = []
    for entry in _split(raw):
        try:
            networks.append(str(ipaddress.ip_network(entry, strict=False)))
        except ValueError:
            raise ConfigError(f"{ENV_PREFIX}ALLOWED_NETWORKS: {entry!r} is not a CIDR") from None
    return tuple(networks)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


KEY_MIN_LENGTH = 16
KEY_MIN_DISTINCT = 10
KEY_MIN_BITS = 64
# Words of placeholders and defaults people leave in place, looked for in the key's letters and digits.
_PLACEHOLDERS = ("changeme", "password", "placeholder", "replaceme", "secret", "example")


def key_weakness(key: str) -> str | None:
    """Why ``key`` is too easy to guess, or None: the rule of ``SCREENSHOT_API_KEYS``, said in the README."""
    if len(key) < KEY_MIN_LENGTH:
        return f"shorter than {KEY_MIN_LENGTH} characters"
    if len(set(key)) < KEY_MIN_DISTINCT:
        return f"fewer than {KEY_MIN_DISTINCT} different characters"
    # Length times the Shannon entropy of its characters' frequencies, and of the steps between
    # neighbours (so that runs like 'abcdefghijklmnop' score as low as repeats): a cheap upper bound of
    # how guessable it is. A random hex key of 32 characters scores about 115.
    steps = [ord(b) - ord(a) for a, b in itertools.pairwise(key)]
    bits = min(_shannon_bits(key), _shannon_bits(steps) * len(key) / len(steps))
    if bits < KEY_MIN_BITS:
        return f"under {KEY_MIN_BITS} bits of estimated entropy ({max(bits, 0):.0f})"
    letters = re.sub(r"[^a-z0-9]", "", key.lower())
    if word := next((w for w in _PLACEHOLDERS if w in letters), None):
        return f"contains the placeholder word {word!r}"
    return None


def _shannon_bits(items: Sequence[object]) -> float:
    return -sum(n * math.log2(n / len(items)) for n in Counter(items).values())


def _parse_api_keys(raw: str) -> dict[str, Secret]:
    keys: dict[str, Secret] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, key = item.partition(":")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise ConfigError(
                f"{ENV_PREFIX}API_KEYS: each entry must be name:key with a name of letters, digits, '_.-'"
            )
        # Only the name is ever said: the key is a secret even when it is a bad one.
        if name in keys:
            raise ConfigError(f"{ENV_PREFIX}API_KEYS: the name {name!r} is given twice; names must be unique")
        if key in keys.values():
            raise ConfigError(f"{ENV_PREFIX}API_KEYS: the key of {name!r} is also another name's key")
        if weakness := key_weakness(key):
            raise ConfigError(
                f"{ENV_PREFIX}API_KEYS: the key of {name!r} is too weak: {weakness} (use a random key, "
                "e.g. `openssl rand -hex 24`)"
            )
        keys[name] = Secret(key)
    return keys


_LIST_PARSERS: dict[str, Callable[[str], object]] = {
    "api_keys": _parse_api_keys,
    "phone_allowlist": _parse_phones,
    "url_allowlist": _parse_hosts,
    "allowed_networks": _parse_networks,
}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``SCREENSHOT_*`` variables into :class:`Settings`; a wrong value raises :class:`ConfigError`."""
    env = os.environ if environ is None else environ
    fields = {f.name for f in msgspec.structs.fields(Settings)}
    raw: dict[str, object] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key.removeprefix(ENV_PREFIX).lower()
        if name not in fields:
            raise ConfigError(f"{key}: unknown setting")
        raw[name] = _LIST_PARSERS[name](value) if name in _LIST_PARSERS else value
    try:
        settings = msgspec.convert(raw, Settings, strict=False, dec_hook=_decode_secret)
    except msgspec.ValidationError as exc:
        raise ConfigError(_name_variable(str(exc))) from None
    if settings.allow_raw_urls and not settings.url_allowlist:
        raise ConfigError(f"{ENV_PREFIX}URL_ALLOWLIST: raw URLs are enabled but no host is allowed")
    if settings.redis_url and settings.phone_rate_limit and not settings.log_hash_key:
        # Per-phone counters are keyed by the number's keyed hash: replicas must share the key to share them.
        raise ConfigError(
            f"{ENV_PREFIX}LOG_HASH_KEY: needed with {ENV_PREFIX}REDIS_URL, so that replicas count a "
            f"number's renders together (or set {ENV_PREFIX}RATE_LIMIT_PER_PHONE=off)"
        )
    return settings


def _decode_secret(type_: type, value: object) -> object:
    if type_ is Secret and isinstance(value, str):
        return Secret(value)
    raise NotImplementedError


def _name_variable(message: str) -> str:
    """Turn msgspec's ``... - at `$.port``` into ``SCREENSHOT_PORT: ...``."""
    match = re.search(r" - at `\$\.(\w+)[^`]*`$", message)
    if not match:
        return message
    return f"{ENV_PREFIX}{match.group(1).upper()}: {message[: match.start()]}"
