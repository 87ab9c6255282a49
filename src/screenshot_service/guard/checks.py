"""The checks a decoded render request passes before it is planned: requester, allowlists, limits."""

from __future__ import annotations

import structlog
from litestar.stores.base import Store

from .. import metrics
from ..errors import ForbiddenUrl, InvalidRequest, RequesterNotAllowed, TooManyRequests
from ..schemas import RenderRequest
from ..settings import Settings
from .limits import FixedWindow
from .netpolicy import NetPolicy
from .phones import Masker, normalise
from .selectors import check_selector

log = structlog.get_logger(__name__)


class Guard:
    """Checks a decoded render request before anything is planned: requester, allowlists, limits."""

    def __init__(self, settings: Settings, store: Store, masker: Masker) -> None:
        self._allowlist = settings.phone_allowlist
        self._raw_urls = settings.allow_raw_urls
        self._engine = settings.engine
        self._policy = NetPolicy.from_settings(settings)
        self._masker = masker
        limit = settings.phone_rate_limit
        self._per_phone = FixedWindow(store, "phone", *limit) if limit else None

    async def admit(self, request: RenderRequest, key_name: str) -> str | None:
        """Refuse (4xx) a request that may not render; the masked requester for the logs, if any."""
        number = None
        if request.requester is not None:
            number = normalise(request.requester)
            if number is None:
                raise InvalidRequest(
                    "requester must be an international number: 7 to 15 digits, '+' and separators allowed.",
                    field="requester",
                )
        masked = self._masker.mask(number) if number else None
        if request.selector is not None:
            check_selector(request.selector, self._engine)
        if self._allowlist and number not in self._allowlist:
            metrics.FORBIDDEN.labels(key_name, "requester").inc()
            log.warning("requester refused", key=key_name, requester=masked)
            detail = (
                "This number is not allowed to request renders."
                if number
                else "This service serves allowlisted numbers only: name the requester."
            )
            raise RequesterNotAllowed(detail)
        if (
            number
            and self._per_phone
            and (retry_after := await self._per_phone.hit(self._masker.digest(number)))
        ):
            metrics.RATE_LIMITED.labels(key_name, "phone").inc()
            log.warning("rate limited", key=key_name, scope="phone", requester=masked)
            raise TooManyRequests(
                "This number has asked for too many renders; try again later.", retry_after=retry_after
            )
        # A raw URL's addresses are checked here, before the browser is involved, for a clear refusal;
        # its syntax and the rest of the request are the planner's, and the browser checks it again.
        if request.url is not None and self._raw_urls and request.dashboard is None and not request.params:
            try:
                await self._policy.check_raw_url_addresses(request.url)
            except ForbiddenUrl:
                metrics.FORBIDDEN.labels(key_name, "url").inc()
                log.warning("raw url refused", key=key_name)
                raise
        return masked
