"""Meta's Graph API client: uploads images to WhatsApp Cloud API media, retrying only what a retry can fix.

Retries are stamina's, bounded in attempts and time; they are counted and logged here, once
(``screenshot_meta_upload_retries_total`` and the one ``upload`` line), so stamina's own Prometheus and
structlog hooks are switched off for the process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import math
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import httpx
import msgspec
import stamina
import structlog

from ..errors import ImageTooLarge, MetaNotConfigured, UpstreamDetails, UpstreamError, UpstreamThrottled
from ..metrics import UPLOAD_BYTES, UPLOAD_RETRIES, UPLOAD_SECONDS, UPLOADS
from ..settings import Settings
from .imaging import IMAGE_MIME_TYPES, MAX_IMAGE_BYTES

log = structlog.get_logger(__name__)
stamina.instrumentation.set_on_retry_hooks([])  # retries are counted and logged by us, once

# Graph API codes that mean "slow down", not "you are wrong": app (4), user (17), page (32), custom (613),
# WhatsApp Business Account (80007), Cloud API throughput (130429), spam rate (131048), pair rate (131056).
THROTTLE_CODES = frozenset({4, 17, 32, 613, 80007, 130429, 131048, 131056})
# "API Unknown" and "API Service": Meta's own words are "temporary issue due to downtime, wait and retry".
TRANSIENT_CODES = frozenset({1, 2})
TOKEN_CODES = frozenset({190, 102})
# When Meta throttles without a Retry-After, tell our caller to come back after this long.
DEFAULT_THROTTLE_RETRY_AFTER_S = 60

Outcome = Literal["ok", "throttled", "rejected", "server_error", "timeout", "unreachable", "bad_response"]
"""Label values of the upload metrics (plus ``cancelled``); also the ``reason`` of a retry."""


class Uploaded(msgspec.Struct, kw_only=True, frozen=True):
    """An image stored by Meta: send it in a message by ``media_id``."""

    media_id: str
    upload_ms: int
    attempts: int


class GraphError(msgspec.Struct, kw_only=True, frozen=True):
    """The ``error`` object of a Graph API error body; every field is optional in practice."""

    message: str = ""
    type: str = ""
    code: int | None = None
    error_subcode: int | None = None
    fbtrace_id: str | None = None
    is_transient: bool = False


class _ErrorBody(msgspec.Struct, frozen=True):
    error: GraphError


class _MediaCreated(msgspec.Struct, frozen=True):
    id: str


class _AttemptFailed(Exception):
    """One attempt failed: what the retry predicate decides on and the final error is built from."""

    def __init__(
        self,
        outcome: Outcome,
        *,
        retryable: bool,
        status: int | None = None,
        graph: GraphError | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(outcome, status, graph.code if graph else None)
        self.outcome = outcome
        self.retryable = retryable
        self.status = status
        self.graph = graph
        self.retry_after = retry_after


class GraphClient:
    """Talks to the Graph API over one pooled HTTP client, opened once for the app's life.

    ``async with GraphClient(settings) as graph: await graph.upload(path, "image/png")``
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        base = settings.meta_graph_url.rstrip("/")
        self.media_url = f"{base}/{settings.meta_api_version}/{settings.meta_phone_number_id}/media"
        self._client: httpx.AsyncClient | None = None

    @property
    def configured(self) -> bool:
        """Whether uploads can be attempted (phone number id and token are set)."""
        return self.settings.meta_configured

    async def start(self) -> None:
        """Open the HTTP client; idempotent."""
        if self._client is not None:
            return
        timeout_s = self.settings.meta_timeout_ms / 1000
        limits = httpx.Limits(
            max_connections=self.settings.meta_max_connections,
            max_keepalive_connections=self.settings.meta_max_connections,
        )
        headers = {"User-Agent": "screenshot-service"}
        if token := self.settings.meta_access_token:
            # httpx shows Authorization as "[secure]" in reprs, so the token stays out of debug output.
            headers["Authorization"] = f"Bearer {token.reveal()}"
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            limits=limits,
            headers=headers,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        """Close the HTTP client and its connections; idempotent."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def upload(self, path: Path, mime_type: str) -> Uploaded:
        """Upload the image at ``path`` as WhatsApp media; retries transient failures within the budget.

        Raises :class:`MetaNotConfigured`, :class:`UpstreamThrottled` (503, ``retry_after``),
        :class:`UpstreamError` (502) or :class:`ImageTooLarge`; their ``extra`` names Meta's error.
        """
        self.check_configured()
        if mime_type not in IMAGE_MIME_TYPES:
            raise ValueError(f"WhatsApp takes image/png or image/jpeg, not {mime_type}")
        size = (await asyncio.to_thread(path.stat)).st_size
        if size > MAX_IMAGE_BYTES:
            # imaging.fit_image makes images fit; reaching here is a bug, and Meta would refuse it anyway.
            raise ImageTooLarge(
                f"The image is {size} bytes; WhatsApp takes at most {MAX_IMAGE_BYTES}.",
                size=size,
                limit=MAX_IMAGE_BYTES,
            )
        started = time.perf_counter()
        attempts = 0
        failed: _AttemptFailed | None = None
        media_id = ""
        try:
            async for attempt in stamina.retry_context(on=self._retry_hook(), **self._retry_bounds()):
                with attempt:
                    attempts = attempt.num
                    if failed is not None:
                        UPLOAD_RETRIES.labels(failed.outcome).inc()
                    try:
                        media_id = await self._attempt(path, mime_type)
                    except _AttemptFailed as exc:
                        failed = exc
                        raise
        except _AttemptFailed as exc:
            upload_ms = _ms_since(started)
            error = self._service_error(exc, attempts)
            UPLOADS.labels(exc.outcome).inc()
            UPLOAD_SECONDS.labels(exc.outcome).observe(upload_ms / 1000)
            log.warning(
                "upload",
                outcome=exc.outcome,
                attempts=attempts,
                upload_ms=upload_ms,
                bytes=size,
                meta_status=exc.status,
                meta_code=exc.graph.code if exc.graph else None,
                meta_subcode=exc.graph.error_subcode if exc.graph else None,
                fbtrace_id=exc.graph.fbtrace_id if exc.graph else None,
            )
            raise error from exc
        except asyncio.CancelledError:
            # The caller went away (client disconnect, deadline): still one line and one count.
            upload_ms = _ms_since(started)
            UPLOADS.labels("cancelled").inc()
            UPLOAD_SECONDS.labels("cancelled").observe(upload_ms / 1000)
            log.info("upload", outcome="cancelled", attempts=attempts, upload_ms=upload_ms, bytes=size)
            raise
        upload_ms = _ms_since(started)
        UPLOADS.labels("ok").inc()
        UPLOAD_SECONDS.labels("ok").observe(upload_ms / 1000)
        UPLOAD_BYTES.observe(size)
        log.info(
            "upload",
            outcome="ok",
            media_id=media_id,
            mime_type=mime_type,
            bytes=size,
            attempts=attempts,
            upload_ms=upload_ms,
        )
        return Uploaded(media_id=media_id, upload_ms=upload_ms, attempts=attempts)

    # --- one attempt ---------------------------------------------------------------------------

    async def _attempt(self, path: Path, mime_type: str) -> str:
        """POST the multipart upload once; returns the media id or raises :class:`_AttemptFailed`."""
        if self._client is None:
            raise RuntimeError("GraphClient is not started: use `async with GraphClient(settings)`")
        # httpx streams a file object in chunks (and sets Content-Length from its size), so the
        # image is not held in memory twice; each attempt reopens it to start from the first byte.
        file = await asyncio.to_thread(path.open, "rb")
        try:
            response = await self._client.post(
                self.media_url,
                data={"messaging_product": "whatsapp", "type": mime_type},
                files={"file": (path.name, file, mime_type)},
            )
        except httpx.TimeoutException as exc:
            raise _AttemptFailed("timeout", retryable=True) from exc
        except httpx.TransportError as exc:
            raise _AttemptFailed("unreachable", retryable=True) from exc
        finally:
            file.close()
        return _media_id(response)

    # --- retries -------------------------------------------------------------------------------

    def _retry_bounds(self) -> dict[str, Any]:
        budget_s = self.settings.meta_retry_budget_ms / 1000
        if budget_s == 0:
            # No time to retry in: one attempt (stamina warns on timeout=0).
            return {"attempts": 1, "timeout": None}
        return {
            "attempts": self.settings.meta_max_attempts,
            "timeout": budget_s,
            "wait_initial": min(0.25, budget_s),
            "wait_max": min(4.0, budget_s),
            "wait_jitter": min(0.5, budget_s),
        }

    def _retry_hook(self) -> Callable[[Exception], bool | float]:
        """The ``on=`` predicate for one upload: retry transient failures, and wait as Meta asks."""
        deadline = time.monotonic() + self.settings.meta_retry_budget_ms / 1000

        def retry(exc: Exception) -> bool | float:
            if not isinstance(exc, _AttemptFailed) or not exc.retryable:
                return False
            if exc.retry_after is None:
                return True
            if time.monotonic() + exc.retry_after > deadline:
                # Waiting as asked would outlive the budget: give up now and pass Retry-After on.
                return False
            return exc.retry_after

        return retry

    # --- errors --------------------------------------------------------------------------------

    def check_configured(self) -> None:
        missing = [
            f"SCREENSHOT_{name.upper()}"
            for name in ("meta_phone_number_id", "meta_access_token")
            if not getattr(self.settings, name)
        ]
        if missing:
            raise MetaNotConfigured(
                f"Uploading to WhatsApp needs {' and '.join(missing)} to be set.", missing=missing
            )

    def _service_error(self, exc: _AttemptFailed, attempts: int) -> UpstreamError:
        """Our public error for the last failed attempt; Meta's ids are named, the token never."""
        graph = exc.graph
        upstream = UpstreamDetails(
            status=exc.status,
            code=graph.code if graph else None,
            error_subcode=graph.error_subcode if graph else None,
            fbtrace_id=graph.fbtrace_id if graph else None,
        )
        said = f": {self._scrub(graph.message).rstrip('.')}" if graph and graph.message else ""
        tries = f" ({attempts} attempts)" if attempts > 1 else ""
        if exc.outcome == "throttled":
            retry_after = math.ceil(exc.retry_after) if exc.retry_after else DEFAULT_THROTTLE_RETRY_AFTER_S
            return UpstreamThrottled(
                f"WhatsApp is throttling uploads{said}{tries}; try again in {retry_after} s.",
                upstream=upstream,
                attempts=attempts,
                retry_after=retry_after,
            )
        if exc.outcome == "rejected" and graph is not None and graph.code in TOKEN_CODES:
            detail = f"WhatsApp refused the access token{said}. Check SCREENSHOT_META_ACCESS_TOKEN."
        elif exc.outcome == "rejected":
            detail = f"WhatsApp refused the upload (HTTP {exc.status}){said}."
        elif exc.outcome == "timeout":
            detail = f"WhatsApp did not answer within {self.settings.meta_timeout_ms} ms{tries}."
        elif exc.outcome == "unreachable":
            detail = f"Could not reach WhatsApp's API{tries}."
        elif exc.outcome == "bad_response":
            detail = f"WhatsApp answered HTTP {exc.status} without a media id."
        else:
            detail = f"WhatsApp's API failed (HTTP {exc.status}){said}{tries}."
        return UpstreamError(detail, upstream=upstream, attempts=attempts)

    def _scrub(self, text: str) -> str:
        """Meta's message, shortened, with the token cut out should Meta ever echo it."""
        if token := self.settings.meta_access_token.reveal():
            text = text.replace(token, "[redacted]")
        return text[:300]


def _media_id(response: httpx.Response) -> str:
    """The media id of a 200, or :class:`_AttemptFailed` classified for the retry predicate."""
    status = response.status_code
    if status == httpx.codes.OK:
        try:
            return msgspec.json.decode(response.content, type=_MediaCreated).id
        except msgspec.DecodeError:
            raise _AttemptFailed("bad_response", retryable=False, status=status) from None
    try:
        graph: GraphError | None = msgspec.json.decode(response.content, type=_ErrorBody).error
    except msgspec.DecodeError:
        graph = None  # a proxy's HTML page, say: judged by the status alone
    code = graph.code if graph else None
    retry_after = _retry_after(response.headers.get("retry-after"))
    if code in THROTTLE_CODES or status == httpx.codes.TOO_MANY_REQUESTS:
        raise _AttemptFailed("throttled", retryable=True, status=status, graph=graph, retry_after=retry_after)
    if (
        status >= httpx.codes.INTERNAL_SERVER_ERROR
        or code in TRANSIENT_CODES
        or (graph and graph.is_transient)
    ):
        raise _AttemptFailed(
            "server_error", retryable=True, status=status, graph=graph, retry_after=retry_after
        )
    raise _AttemptFailed("rejected", retryable=False, status=status, graph=graph)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; ``None`` if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
