"""Prometheus metrics of renders and the browser; request metrics come from Litestar's plugin."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RENDER_SECONDS = Histogram(
    "screenshot_render_seconds",
    "Time to render one image, from a free render slot to image bytes.",
    ["dashboard", "outcome"],
    buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 8, 13, 21, 34, 60),
)
RENDERS = Counter("screenshot_renders_total", "Renders by outcome.", ["dashboard", "outcome"])
RENDERS_IN_FLIGHT = Gauge("screenshot_renders_in_flight", "Renders running or waiting for a slot.")
BROWSER_RESTARTS = Counter("screenshot_browser_restarts_total", "Times the browser was relaunched.")
BROWSER_CONTEXTS = Gauge("screenshot_browser_contexts_open", "Browser contexts open in Chromium.")
BROWSER_PAGES = Gauge("screenshot_browser_pages_open", "Pages open in Chromium.")
AUTH_FAILURES = Counter(
    "screenshot_auth_failures_total", "Requests refused for a missing or wrong API key.", ["reason"]
)
IMAGE_BYTES = Histogram(
    "screenshot_image_bytes",
    "Size of rendered images.",
    buckets=(50e3, 100e3, 250e3, 500e3, 1e6, 2e6, 5e6, 10e6),
)

# Guards: labels are key *names*, scopes and reasons, never a key, a number or a URL.
RATE_LIMITED = Counter("screenshot_rate_limited_total", "Requests refused by a rate limit.", ["key", "scope"])
FORBIDDEN = Counter(
    "screenshot_forbidden_total",
    "Requests with a valid API key refused by an allowlist or the URL policy.",
    ["key", "reason"],
)
BLOCKED_REQUESTS = Counter(
    "screenshot_blocked_requests_total",
    "Requests the browser (or a raw URL) was not allowed to make, by reason (loopback, metadata...).",
    ["reason"],
)
CLIENT_DISCONNECTS = Counter(
    "screenshot_client_disconnects_total", "Requests cancelled because their client hung up."
)
