"""The service's exception tree and its one mapping to RFC 9457 problem details.

    ServiceError                     500 internal
    ├── BadRequest                   400 bad-request
    ├── Unauthorized                 401 unauthorized
    ├── Forbidden                    403 forbidden
    │   ├── ForbiddenUrl             403 forbidden-url        (SSRF policy; names the field)
    │   └── RequesterNotAllowed      403 requester-not-allowed
    ├── NotFound                     404 not-found
    │   └── UnknownDashboard         404 unknown-dashboard
    ├── MethodNotAllowed             405 method-not-allowed
    ├── BodyTooLarge                 413 body-too-large
    ├── InvalidRequest               422 invalid-request      (names the field)
    │   ├── InvalidParameter         422 invalid-parameter
    │   └── ImageTooLarge            422 image-too-large
    ├── TooManyRequests              429 rate-limited         (Retry-After)
    │   └── Overloaded               429 overloaded           (render queue full; Retry-After)
    ├── LimiterUnavailable           503 limiter-unavailable  (the rate-limit store is down)
    ├── QueueTimeout                 503 queue-timeout        (no render slot in time; Retry-After)
    ├── RenderError                  502 render-failed
    │   ├── RenderTimeout            504 render-timeout       (names the step)
    │   ├── PageCrashed              502 page-crashed         (the tab died, e.g. out of memory)
    │   └── BrowserUnavailable       503 browser-unavailable
    └── UpstreamError                502 upstream-error       (Meta's code, subcode, fbtrace id)
        ├── UpstreamThrottled        503 upstream-throttled   (Retry-After)
        └── MetaNotConfigured        503 meta-not-configured

Raise these deep down with a public ``detail``; the app turns them into HTTP in one place.
Details are written for the caller: never a secret, a stack trace or a full phone number.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    ValidationException,
)
from litestar.status_codes import HTTP_413_REQUEST_ENTITY_TOO_LARGE

PROBLEM_TYPE_PREFIX = "urn:screenshot-service:problem:"
PROBLEM_MEDIA_TYPE = "application/problem+json"


class ServiceError(Exception):
    """Base of every error the service reports to a caller."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        extra: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}
        self.retry_after = retry_after

    @property
    def type_uri(self) -> str:
        """The stable ``type`` of the problem; clients switch on it."""
        return PROBLEM_TYPE_PREFIX + self.slug


class Unauthorized(ServiceError):
    status, slug, title = 401, "unauthorized", "Missing or wrong API key"


class Forbidden(ServiceError):
    status, slug, title = 403, "forbidden", "Not allowed"


class ForbiddenUrl(Forbidden):
    slug, title = "forbidden-url", "Destination not allowed"


class RequesterNotAllowed(Forbidden):
    slug, title = "requester-not-allowed", "Requester not allowed"


class NotFound(ServiceError):
    status, slug, title = 404, "not-found", "Not found"


class UnknownDashboard(NotFound):
    slug, title = "unknown-dashboard", "Unknown dashboard"


class BadRequest(ServiceError):
    status, slug, title = 400, "bad-request", "Bad request"


class MethodNotAllowed(ServiceError):
    status, slug, title = 405, "method-not-allowed", "Method not allowed"


class BodyTooLarge(ServiceError):
    status, slug, title = 413, "body-too-large", "Request body too large"


class InvalidRequest(ServiceError):
    status, slug, title = 422, "invalid-request", "Invalid request"

    def __init__(self, detail: str, *, field: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail, extra={"field": field, **(extra or {})})
        self.field = field


class InvalidParameter(InvalidRequest):
    slug, title = "invalid-parameter", "Invalid dashboard parameter"


class ImageTooLarge(InvalidRequest):
    slug, title = "image-too-large", "Image too large"


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
        super().__init__(detail, extra={"step": step})
        self.step = step


class PageCrashed(RenderError):
    slug, title = "page-crashed", "Page crashed"


class BrowserUnavailable(RenderError):
    status, slug, title = 503, "browser-unavailable", "Browser unavailable"


class UpstreamError(ServiceError):
    status, slug, title = 502, "upstream-error", "WhatsApp upload failed"


class UpstreamThrottled(UpstreamError):
    status, slug, title = 503, "upstream-throttled", "WhatsApp is throttling uploads"


class MetaNotConfigured(UpstreamError):
    status, slug, title = 503, "meta-not-configured", "WhatsApp upload not configured"


def problem_body(error: ServiceError, request_id: str | None) -> dict[str, Any]:
    """The JSON object of a problem-details response for ``error``."""
    body: dict[str, Any] = {
        "type": error.type_uri,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        **error.extra,
    }
    if request_id:
        body["request_id"] = request_id
    return body


def from_http_exception(exc: HTTPException) -> ServiceError:
    """Translate Litestar's own errors (routing, body decoding, size limits) into our tree."""
    if isinstance(exc, ValidationException):
        return _validation_error(exc)
    if isinstance(exc, NotAuthorizedException):
        return Unauthorized(exc.detail)
    if isinstance(exc, NotFoundException):
        return NotFound("No such route.")
    if isinstance(exc, MethodNotAllowedException):
        return MethodNotAllowed("This method is not allowed on this route.")
    if exc.status_code == HTTP_413_REQUEST_ENTITY_TOO_LARGE:
        return BodyTooLarge("The request body is too large.")
    if 400 <= exc.status_code < 500:
        return BadRequest(exc.detail)
    return ServiceError("Something went wrong on our side; it has been logged.")


def _validation_error(exc: ValidationException) -> InvalidRequest:
    """Name the first offending field of a body that failed to decode."""
    errors = exc.extra if isinstance(exc.extra, list) else []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    message = str(first.get("message") or exc.detail)
    field = str(first.get("key") or "body")
    if " - at `$." in message:
        message, _, path = message.partition(" - at `$.")
        field = path.rstrip("`")
    elif unknown := re.search(r"unknown field `([^`]+)`", message):
        field = unknown.group(1)
    return InvalidRequest(f"{field}: {message}", field=field)
