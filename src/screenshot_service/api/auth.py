"""API-key authentication for ``/v1/*`` (``X-API-Key`` or a bearer token) and the metrics token, both
compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import ASGIApp, Guard

from .. import metrics
from ..errors import Unauthorized
from ..settings import Secret


class ApiKeys:
    """The configured keys, kept only as SHA-256 digests; lookup answers the key's name."""

    def __init__(self, keys: Mapping[str, Secret]) -> None:
        self._digests = [(name, _digest(key.reveal())) for name, key in keys.items()]

    def __bool__(self) -> bool:
        return bool(self._digests)

    def name_of(self, presented: str) -> str | None:
        """The name of the key ``presented`` is, or None; every key is compared, so timing tells nothing."""
        digest = _digest(presented)
        found = None
        for name, expected in self._digests:
            if hmac.compare_digest(digest, expected):
                found = name
        return found


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def presented_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The key a request presents, from ``X-API-Key`` or a bearer token."""
    if key := connection.headers.get("x-api-key"):
        return key
    return bearer_token(connection)


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def bearer_guard(token: Secret) -> Guard:
    """A route guard that admits only ``Authorization: Bearer <token>`` (401 otherwise)."""
    expected = _digest(token.reveal())

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        presented = bearer_token(connection)
        if presented is None or not hmac.compare_digest(_digest(presented), expected):
            raise Unauthorized("Send the metrics token as Authorization: Bearer <token>.")

    return guard


class ApiKeyMiddleware(AbstractAuthenticationMiddleware):
    """Rejects a request without a valid key before anything else runs; the key's name becomes ``user``."""

    def __init__(self, app: ASGIApp, keys: ApiKeys, **kwargs: object) -> None:
        super().__init__(app, **kwargs)  # type: ignore[arg-type]
        self._keys = keys

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        key = presented_key(connection)
        if key is None:
            metrics.AUTH_FAILURES.labels("missing").inc()
            raise Unauthorized("Send an API key in the X-API-Key header.")
        name = self._keys.name_of(key)
        if name is None:
            metrics.AUTH_FAILURES.labels("invalid").inc()
            raise Unauthorized("The API key is not valid.")
        connection.scope["state"]["key_name"] = name
        return AuthenticationResult(user=name, auth=None)
