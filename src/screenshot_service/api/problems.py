"""The one place errors become HTTP: every error, ours or Litestar's, as an RFC 9457 problem.

A :class:`~..errors.ServiceError` carries its status, type and typed attributes (``field``, ``step``,
Meta's ids...); Litestar's own errors (routing, body decoding, size limits) are translated into that
tree first, and anything else is a bug: logged in full, answered without internals.
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    ValidationException,
)
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)
from litestar.status_codes import HTTP_400_BAD_REQUEST, HTTP_413_REQUEST_ENTITY_TOO_LARGE

from .. import metrics
from ..errors import (
    BadRequest,
    BodyTooLarge,
    HttpRefused,
    ImageTooLarge,
    InvalidRequest,
    MetaNotConfigured,
    MethodNotAllowed,
    NotFound,
    RenderTimeout,
    ServiceError,
    Unauthorized,
    UpstreamError,
)

PROBLEM_MEDIA_TYPE = "application/problem+json"
INTERNAL_DETAIL = "Something went wrong on our side; it has been logged."

log = structlog.get_logger(__name__)


def problem_body(error: ServiceError) -> dict[str, Any]:
    """The members of ``error``'s problem: type, title, status, detail, and its typed attributes."""
    body: dict[str, Any] = {
        "type": error.type_uri,
        "title": error.title,
        "status": error.status_code,
        "detail": error.detail,
    }
    if error.field is not None:
        body["field"] = error.field
    if error.step is not None:
        body["step"] = error.step
    if isinstance(error, ImageTooLarge):
        body |= {"bytes": error.size, "limit_bytes": error.limit}
    if isinstance(error, MetaNotConfigured):
        body["missing"] = error.missing
    elif isinstance(error, UpstreamError):
        if error.attempts is not None:
            body["attempts"] = error.attempts
        if error.upstream is not None:
            upstream = error.upstream
            body["meta"] = {
                "status": upstream.status,
                "code": upstream.code,
                "error_subcode": upstream.error_subcode,
                "fbtrace_id": upstream.fbtrace_id,
            }
    return body


def problem_headers(error: ServiceError) -> dict[str, str]:
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, MethodNotAllowed) and error.allow:
        headers["Allow"] = ", ".join(error.allow)
    if isinstance(error, RenderTimeout):
        headers["X-Render-Readiness"] = f"timeout:{error.step}"
    return headers


def from_http_exception(exc: HTTPException) -> ServiceError:
    """Translate Litestar's own errors (routing, body decoding, size limits) into our tree."""
    if isinstance(exc, ValidationException):
        return _validation_error(exc)
    if isinstance(exc, NotAuthorizedException):
        return Unauthorized(exc.detail)
    if isinstance(exc, NotFoundException):
        return NotFound("No such route.")
    if isinstance(exc, MethodNotAllowedException):
        allow = (exc.headers or {}).get("allow", "")
        return MethodNotAllowed(
            "This method is not allowed on this route.",
            allow=[method.strip() for method in allow.split(",") if method.strip()],
        )
    if exc.status_code == HTTP_413_REQUEST_ENTITY_TOO_LARGE:
        return BodyTooLarge("The request body is too large.")
    if exc.status_code == HTTP_400_BAD_REQUEST:
        return BadRequest(exc.detail)
    if 400 <= exc.status_code < 500:
        return HttpRefused(exc.detail, status=exc.status_code)
    return ServiceError(INTERNAL_DETAIL)


def _validation_error(exc: ValidationException) -> InvalidRequest:
    """Name the first offending field of a body that failed to decode."""
    errors = exc.extra if isinstance(exc.extra, list) else []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    message = str(first.get("message") or exc.detail)
    field = str(first.get("key") or "body")
    # msgspec's "... - at `$.viewport.width`", or "... - at `key` in `$.params`" for a mapping's key.
    if located := re.search(r" - at (?:`key` in )?`\$\.([^`]+)`$", message):
        message, field = message[: located.start()], located.group(1)
    elif unknown := re.search(r"unknown field `([^`]+)`", message):
        field = unknown.group(1)
    return InvalidRequest(f"{field}: {message}", field=field)


class _Problem(ProblemDetailsException):
    """Litestar's problem details, with the request id every problem of ours carries."""

    def to_response(self, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        response = super().to_response(request)
        if request_id := request.scope.get("state", {}).get("request_id"):
            response.content["request_id"] = request_id
        return response


def _to_problem(error: ServiceError) -> ProblemDetailsException:
    metrics.PROBLEMS.labels(error.problem_slug, str(error.status_code)).inc()
    body = problem_body(error)
    return _Problem(
        detail=error.detail,
        status_code=error.status_code,
        type_=body.pop("type"),
        title=body.pop("title"),
        extra={k: v for k, v in body.items() if k not in {"status", "detail"}},
        headers=problem_headers(error) or None,
    )


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A bug: logged in full here, answered without internals."""
    log.error("unhandled error", path=request.url.path, exc_info=exc)
    return _to_problem(ServiceError(INTERNAL_DETAIL)).to_response(request)


def problem_details_plugin() -> ProblemDetailsPlugin:
    """Litestar's problem-details plugin, fed by this module's mapping."""
    return ProblemDetailsPlugin(
        ProblemDetailsConfig(
            exception_to_problem_detail_map={
                ServiceError: _to_problem,
                HTTPException: lambda exc: _to_problem(from_http_exception(exc)),
            },
        )
    )
