"""Every Prometheus metric of the service, declared once; request metrics come from Litestar's plugin.

Labels take few values (an outcome, a step, a key *name*), never a key, a number or a URL.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RENDER_SECONDS = Histogram(
    "screenshot_render_seconds",
    "Time to render one image, from a free render slot to image bytes.",
    ["dashboard", "outcome"],
    buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 8, 13, 21, 34, 60),
)
STEP_SECONDS = Histogram(
    "screenshot_render_step_seconds",
    "Time of each named step of a render (context, open-page, navigate, selector, capture...), by outcome.",
    ["step", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60),
)
RENDERS = Counter("screenshot_renders_total", "Renders by outcome.", ["dashboard", "outcome"])
RENDERS_IN_FLIGHT = Gauge("screenshot_renders_in_flight", "Renders running or waiting for a slot.")
BROWSER_RESTARTS = Counter("screenshot_browser_restarts_total", "Times the browser was relaunched.")
BROWSER_CRASHES = Counter(
    "screenshot_browser_crashes_total", "Times the browser died or its connection was lost."
)
BROWSER_RECYCLES = Counter(
    "screenshot_browser_recycles_total", "Healthy browsers replaced, by reason (renders, memory).", ["reason"]
)
BROWSER_RSS = Gauge(
    "screenshot_browser_rss_bytes",
    "Resident memory of the current browser's processes (their proportional shares, PSS, summed).",
)
BROWSER_RSS_LIMIT = Gauge(
    "screenshot_browser_rss_limit_bytes",
    "The resident memory past which the browser is recycled (SCREENSHOT_BROWSER_MAX_RSS_MB; 0 = none).",
)
BROWSER_UP = Gauge(
    "screenshot_browser_up", "1 while a browser is connected and rendering; 0 while it is down or released."
)
BROWSER_RELEASED = Gauge(
    "screenshot_browser_released",
    "1 while the browser is closed on purpose for idleness (SCREENSHOT_BROWSER_IDLE_RELEASE_S); the next "
    "render launches it again.",
)
"""Both read from the running browser supervisors when scraped (see ``browser.supervisor``)."""
BROWSER_IDLE_RELEASES = Counter(
    "screenshot_browser_idle_releases_total", "Times the browser was closed after a quiet period."
)
CONTEXTS_TRIMMED = Counter(
    "screenshot_contexts_trimmed_total", "Shared dashboard contexts closed for not being used lately."
)
PAGE_POOL = Counter(
    "screenshot_page_pool_total",
    "Renders in a dashboard context that took a warm page (hit) or had to open one (miss).",
    ["result"],
)
QUEUE_DEPTH = Gauge("screenshot_render_queue_depth", "Renders waiting for a render slot.")
QUEUE_WAIT_SECONDS = Histogram(
    "screenshot_render_queue_wait_seconds",
    "Time a render waited for a slot (admitted ones; refused ones are counted by the next metric).",
    buckets=(0.005, 0.025, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60),
)
ADMISSION_REFUSED = Counter(
    "screenshot_render_refused_total",
    "Renders refused before a slot, by reason (queue-full, queue-timeout).",
    ["reason"],
)
RENDERS_SHARED = Counter(
    "screenshot_renders_shared_total", "Requests answered by an identical render already under way."
)
MEDIA_REUSED = Counter(
    "screenshot_media_reused_total",
    "Media requests answered without an upload of their own, by how (single-flight, cache).",
    ["how"],
)
READY_CHECKS = Counter(
    "screenshot_ready_checks_total", "Real render checks made by /readyz (cached between them).", ["outcome"]
)
READINESS = Counter(
    "screenshot_render_readiness_total",
    "How pages became ready: the conditions that held (load+auto, load+selector...), partial, "
    "or timeout:<step> (selector, expression, network-idle, auto...).",
    ["outcome"],
)
BROWSER_CONTEXTS = Gauge("screenshot_browser_contexts_open", "Browser contexts open in Chromium.")
BROWSER_PAGES = Gauge("screenshot_browser_pages_open", "Pages open in Chromium.")
"""Both read from the running browser supervisors when scraped (see ``browser.supervisor``)."""
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
PROBLEMS = Counter(
    "screenshot_problems_total",
    "Problem answers (RFC 9457) by problem type and HTTP status: every refusal and failure the API gives.",
    ["type", "status"],
)
CLIENT_DISCONNECTS = Counter(
    "screenshot_client_disconnects_total", "Requests cancelled because their client hung up."
)

# Uploads to Meta (WhatsApp Cloud API media)
UPLOAD_SECONDS = Histogram(
    "screenshot_meta_upload_seconds",
    "Time to upload one image to WhatsApp, retries and backoff included.",
    ["outcome"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60),
)
UPLOADS = Counter("screenshot_meta_uploads_total", "Uploads to WhatsApp by outcome.", ["outcome"])
UPLOAD_RETRIES = Counter(
    "screenshot_meta_upload_retries_total",
    "Upload attempts repeated, by why the one before failed.",
    ["reason"],
)
UPLOAD_BYTES = Histogram(
    "screenshot_meta_upload_bytes",
    "Size of images sent to WhatsApp.",
    buckets=(50e3, 100e3, 250e3, 500e3, 1e6, 2e6, 3e6, 4e6, 5e6),
)
