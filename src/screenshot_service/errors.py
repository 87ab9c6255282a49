"""The service's exception tree: what went wrong, for whom, in typed attributes (no HTTP here).

    ServiceError                     500 internal
    ├── BadRequest                   400 bad-request
    ├── Unauthorized                 401 unauthorized
    ├── Forbidden                    403 forbidden
    │   ├── ForbiddenUrl             403 forbidden-url        (SSRF policy; field or step)
    │   └── RequesterNotAllowed      403 requester-not-allowed
    ├── NotFound                     404 not-found
    │   └── UnknownDashboard         404 unknown-dashboard
    ├── MethodNotAllowed             405 method-not-allowed   (allow)
    ├── BodyTooLarge                 413 body-too-large
    ├── HttpRefused                  4xx named for its status (unsupported-media-type...)
    ├── InvalidRequest               422 invalid-request      (field)
    │   ├── InvalidParameter         422 invalid-parameter
    │   └── ImageTooLarge            422 image-too-large      (size, limit)
    ├── TooManyRequests              429 rate-limited         (Retry-After)
    │   └── Overloaded               429 overloaded           (render queue full; Retry-After)
    ├── LimiterUnavailable           503 limiter-unavailable  (the rate-limit store is down)
    ├── QueueTimeout                 503 queue-timeout        (no render slot in time; Retry-After)
    ├── RenderError                  502 render-failed        (step)
    │   ├── RenderTimeout            504 render-timeout       (step)
    │   ├── PageCrashed              502 page-crashed         (the tab died, e.g. out of memory)
    │   └── BrowserUnavailable       503 browser-unavailable
    └── UpstreamError                502 upstream-error       (Meta's status, code, subcode, fbtrace id)
        ├── UpstreamThrottled        503 upstream-throttled   (Retry-After)
        └── MetaNotConfigured        503 meta-not-configured  (missing)

Raise these deep down with a public ``detail``, translating a library's errors where it is called;
``api.problems`` turns them into HTTP problem details, in one place. Details are written for the
caller: never a secret, a stack trace or a full phone number.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import ClassVar

import msgspec

PROBLEM_TYPE_PREFIX = "urn:screenshot-service:problem:"


class UpstreamDetails(msgspec.Struct, kw_only=True, frozen=True):
    """What Meta said about a failed call: its HTTP status and Graph error ids (never its token)."""

    status: int | None = None
    code: int | None = None
    error_subcode: int | None = None
    fbtrace_id: str | None = None


class ServiceError(Exception):
    """Base of every error the service reports to a caller.

    ``field`` names the offending request field, ``step`` the render step it happened at, and
    ``retry_after`` (seconds) when coming back later can help.
    """

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        field: str | None = None,
        step: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.step = step
        self.retry_after = retry_after

    @property
    def status_code(self) -> int:
        """The HTTP status of this error (:class:`HttpRefused` carries its own)."""
        return self.status

    @property
    def type_uri(self) -> str:
        """The stable ``type`` of the problem; clients switch on it."""
        return PROBLEM_TYPE_PREFIX + self.problem_slug

    @property
    def problem_slug(self) -> str:
        """The last part of ``type``: the class's ``slug`` (:class:`HttpRefused` names its status)."""
        return self.slug


class BadRequest(ServiceError):
    status, slug, title = 400, "bad-request", "Bad request"


class Unauthorized(ServiceError):
    status, slug, title = 401, "unauthorized", "Missing or wrong API key"


class Forbidden(ServiceError):
    status, slug, title = 403, "forbidden", "Not allowed"


class ForbiddenUrl(Forbidden):
    slug, title = "forbidden-url", "Destination not allowed"


class RequesterNotAllowed(Forbidden):
    slug, title = "requester-not-allowed", "Requester not allowed"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, field="requester")


class NotFound(ServiceError):
    status, slug, title = 404, "not-found", "Not found"


class UnknownDashboard(NotFound):
    slug, title = "unknown-dashboard", "Unknown dashboard"


class MethodNotAllowed(ServiceError):
    """``allow`` lists the methods the route takes, for the ``Allow`` header a 405 must carry."""

    status, slug, title = 405, "method-not-allowed", "Method not allowed"

    def __init__(self, detail: str, *, allow: list[str]) -> None:
        super().__init__(detail)
        self.allow = allow


class BodyTooLarge(ServiceError):
    status, slug, title = 413, "body-too-large", "Request body too large"


class HttpRefused(ServiceError):
    """Another 4xx of the HTTP layer (406, 415...): it keeps its status, and its type is named for it."""

    status, slug, title = 400, "refused", "Request refused"

    def __init__(self, detail: str, *, status: int) -> None:
        super().__init__(detail)
        self.http_status = status

    @property
    def status_code(self) -> int:
        return self.http_status

    @property
    def problem_slug(self) -> str:
        return HTTPStatus(self.http_status).phrase.lower().replace(" ", "-")


class InvalidRequest(ServiceError):
    status, slug, title = 422, "invalid-request", "Invalid request"

    def __init__(self, detail: str, *, field: str) -> None:
        super().__init__(detail, field=field)


class InvalidParameter(InvalidRequest):
    slug, title = "invalid-parameter", "Invalid dashboard parameter"


class ImageTooLarge(InvalidRequest):
    slug, title = "image-too-large", "Image too large"

    def __init__(self, detail: str, *, size: int, limit: int) -> None:
        super().__init__(detail, field="image")
        self.size = size
        self.limit = limit


class TooManyRequests(ServiceError):
    status, slug, title = 429, "rate-limited", "Too many requests"


class Overloaded(TooManyRequests):
    slug, title = "overloaded", "Service overloaded"


class QueueTimeout(ServiceError):
    status, slug, title = 503, "queue-timeout", "No render slot in time"


class LimiterUnavailable(ServiceError):
    status, slug, title = 503, "limiter-unavailable", "Rate limiter unavailable"


class RenderError(ServiceError):
    status, slug, title = 502, "render-failed", "Render failed"


class RenderTimeout(RenderError):
    status, slug, title = 504, "render-timeout", "Render timed out"

    def __init__(self, detail: str, *, step: str) -> None:
        super().__init__(detail, step=step)
        self.step: str = step


class PageCrashed(RenderError):
    slug, title = "page-crashed", "Page crashed"


class BrowserUnavailable(RenderError):
    status, slug, title = 503, "browser-unavailable", "Browser unavailable"


class UpstreamError(ServiceError):
    """Meta refused or kept failing; ``upstream`` holds what it said, ``attempts`` how often we tried."""

    status, slug, title = 502, "upstream-error", "WhatsApp upload failed"

    def __init__(
        self,
        detail: str,
        *,
        upstream: UpstreamDetails | None = None,
        attempts: int | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.upstream = upstream
        self.attempts = attempts


class UpstreamThrottled(UpstreamError):
    status, slug, title = 503, "upstream-throttled", "WhatsApp is throttling uploads"


class MetaNotConfigured(UpstreamError):
    status, slug, title = 503, "meta-not-configured", "WhatsApp upload not configured"

    def __init__(self, detail: str, *, missing: list[str]) -> None:
        super().__init__(detail)
        self.missing = missing
