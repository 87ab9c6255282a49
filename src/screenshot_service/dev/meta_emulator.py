"""A local stand-in for Meta's Graph API (WhatsApp media and messages) that tests can break on purpose.

It checks requests the way the Cloud API does and answers in Graph's shapes; a control API under
``/_emulator/`` queues faults and shows what was received. Run it with
``python -m screenshot_service.dev.meta_emulator --port 8090 --token T`` and point
``SCREENSHOT_META_GRAPH_URL`` at it. For tests and local runs only: the control API has no auth.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import itertools
import json
import os
import secrets
import sys
from collections.abc import Sequence
from typing import Any, Literal, cast

import msgspec
from litestar import Litestar, Request, Response, delete, get, post
from litestar.datastructures import UploadFile
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.types import ASGIApp, HTTPScope, Receive, ReceiveMessage, Scope, Send

DEFAULT_MAX_BYTES = 5 * 1024 * 1024
IMAGE_TYPES = ("image/jpeg", "image/png")
_MAGIC = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}

FaultKind = Literal["http_500", "http_503", "throttle", "token_expired", "bad_param", "error", "slow", "drop"]
Endpoint = Literal["upload", "messages", "read", "media", "subscriptions", "oauth", "any"]
"""``messages`` is a message sent; ``read`` a ``status: read`` call to the same path."""


# --- Wire shapes ------------------------------------------------------------------------------


class Fault(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One injected fault, used up by the next matching Graph request.

    ``slow`` holds the request ``delay_ms`` and then answers normally (unless the client gave up);
    ``drop`` starts a response and closes the connection mid-body; ``error`` answers any Graph error.
    """

    kind: FaultKind
    on: Endpoint = "upload"
    code: int | None = None
    """Graph error code: ``throttle`` defaults to 130429, ``error`` to 100."""
    subcode: int | None = None
    status: int | None = None
    """HTTP status of an ``error`` fault (default 400)."""
    message: str | None = None
    retry_after: int | None = None
    """Seconds, sent as a ``Retry-After`` header."""
    delay_ms: int = 0


class FaultQueue(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    faults: list[Fault]


class UploadRecord(msgspec.Struct, kw_only=True, frozen=True):
    """An upload request as the emulator received it, accepted or not."""

    status: int
    media_id: str | None
    error_code: int | None
    version: str
    phone_number_id: str
    fields: dict[str, str]
    filename: str | None
    content_type: str | None
    size: int
    sha256: str | None


class MessageRecord(msgspec.Struct, kw_only=True, frozen=True):
    """A message the bot sent: ``type`` is ``text`` or ``image`` (by id or link), ``body`` as posted.

    ``seq`` orders it among the other messages and the read receipts.
    """

    seq: int
    id: str
    phone_number_id: str
    to: str
    type: str
    text: str | None
    media_id: str | None
    media_known: bool
    body: dict[str, Any]


class ReadRecord(msgspec.Struct, kw_only=True, frozen=True):
    """A received message marked as read (``status: read``), with the typing indicator it asked for."""

    seq: int
    phone_number_id: str
    message_id: str
    typing: str | None


class Subscription(msgspec.Struct, kw_only=True, frozen=True):
    """An app's webhook subscription, as ``GET /{app-id}/subscriptions`` lists it."""

    object: str
    callback_url: str
    active: bool
    fields: list[dict[str, str]]
    verify_token: str | None = None
    """Kept so a test can verify the callback as Meta does (Graph never shows it)."""


class RequestRecord(msgspec.Struct, kw_only=True, frozen=True):
    method: str
    path: str
    endpoint: str
    fault: str | None


class MediaInfo(msgspec.Struct, kw_only=True, frozen=True):
    url: str
    mime_type: str
    sha256: str
    file_size: int
    id: str
    messaging_product: str = "whatsapp"


class _Stored(msgspec.Struct, kw_only=True, frozen=True):
    data: bytes
    mime_type: str
    sha256: str
    phone_number_id: str


class EmulatorState:
    """Everything the emulator remembers; one event loop, so no locks."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.media: dict[str, _Stored] = {}
        self.uploads: list[UploadRecord] = []
        self.messages: list[MessageRecord] = []
        self.reads: list[ReadRecord] = []
        self.requests: list[RequestRecord] = []
        # The app's configuration, not a conversation: a reset keeps them.
        self.subscriptions: dict[str, Subscription] = {}
        self.app_tokens: set[str] = set()
        self._seq = itertools.count(1)

    def next_seq(self) -> int:
        return next(self._seq)

    def reset(self) -> None:
        """Forget faults, uploads, media, messages, receipts and requests (not the app's subscription)."""
        for items in (self.faults, self.uploads, self.messages, self.reads, self.requests):
            items.clear()
        self.media.clear()

    def take_fault(self, endpoint: str) -> Fault | None:
        for index, fault in enumerate(self.faults):
            if fault.on in (endpoint, "any"):
                return self.faults.pop(index)
        return None


# --- Graph errors -----------------------------------------------------------------------------


class GraphAPIError(Exception):
    """An error answered in Graph's own shape."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        type_: str = "OAuthException",
        subcode: int | None = None,
        details: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.type = status, code, message, type_
        self.subcode, self.details, self.retry_after = subcode, details, retry_after

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.details is not None:
            # The Cloud API's own addition to Graph errors.
            error["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error["fbtrace_id"] = _fbtrace_id()
        return {"error": error}

    def headers(self, fbtrace_id: str) -> dict[str, str]:
        headers = {"x-fb-trace-id": fbtrace_id}
        if self.code == 190:
            headers["WWW-Authenticate"] = f'OAuth "Facebook Platform" "invalid_token" "{self.message}"'
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        return headers


def _graph_error_response(error: GraphAPIError) -> Response[bytes]:
    body = error.body()
    return Response(
        msgspec.json.encode(body),
        status_code=error.status,
        media_type="application/json",
        headers=error.headers(body["error"]["fbtrace_id"]),
    )


def _fault_error(fault: Fault) -> GraphAPIError:
    if fault.kind == "http_500":
        return GraphAPIError(
            500,
            2,
            fault.message or "An unexpected error has occurred. Please retry your request later.",
            subcode=fault.subcode,
        )
    if fault.kind == "http_503":
        return GraphAPIError(
            503,
            2,
            fault.message or "(#2) Service temporarily unavailable",
            subcode=fault.subcode,
            retry_after=fault.retry_after,
        )
    if fault.kind == "throttle":
        code = fault.code or 130429
        return GraphAPIError(
            400,
            code,
            fault.message or f"(#{code}) Rate limit hit",
            subcode=fault.subcode,
            details="Too many requests were made from this phone number in a short period of time.",
            retry_after=fault.retry_after,
        )
    if fault.kind == "token_expired":
        return GraphAPIError(
            401,
            190,
            fault.message or "Error validating access token: Session has expired.",
            subcode=fault.subcode or 463,
        )
    if fault.kind == "bad_param":
        return GraphAPIError(
            400,
            fault.code or 100,
            fault.message or "(#100) Invalid parameter",
            subcode=fault.subcode,
            details="A parameter of the request is invalid.",
        )
    code = fault.code or 100
    return GraphAPIError(
        fault.status or 400,
        code,
        fault.message or f"(#{code}) Error",
        subcode=fault.subcode,
        retry_after=fault.retry_after,
    )


def _fbtrace_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(17)).decode().rstrip("=")


def _numeric_id() -> str:
    # Graph ids are decimal strings of 15-17 digits.
    return str(10**15 + secrets.randbelow(9 * 10**15))


def _unknown_object(object_id: str, verb: str) -> GraphAPIError:
    return GraphAPIError(
        400,
        100,
        f"Unsupported {verb} request. Object with ID '{object_id}' does not exist, cannot be loaded due to "
        "missing permissions, or does not support this operation.",
        type_="GraphMethodException",
        subcode=33,
    )


# --- Fault injection, below routing -----------------------------------------------------------


def _endpoint(method: str, path: str) -> str | None:
    """Which Graph endpoint a request is for; ``None`` for the control API."""
    parts = path.strip("/").split("/")
    if parts[0] == "_emulator":
        return None
    if parts[0] == "whatsapp_business" or (len(parts) == 2 and method in ("GET", "DELETE")):
        return "media"
    if len(parts) == 3 and parts[2] == "messages":
        return "messages"
    if len(parts) == 3 and parts[2] == "media":
        return "upload"
    if len(parts) == 3 and parts[2] == "subscriptions":
        return "subscriptions"
    if len(parts) == 3 and parts[1] == "oauth":
        return "oauth"
    return "other"


class FaultMiddleware(ASGIMiddleware):
    """Logs every Graph request and answers it with the next queued fault that matches, if any."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        http = cast("HTTPScope", scope)  # `scopes` lets HTTP requests only through
        method, path = http["method"], http["path"]
        endpoint = _endpoint(method, path)
        if endpoint is None:
            await next_app(scope, receive, send)
            return
        # Read the whole request first, as a server does before it answers, so faults are deterministic.
        body = await _drain(receive)
        if body is None:
            return
        if endpoint == "messages" and _is_read_receipt(body):
            endpoint = "read"
        fault = self.state.take_fault(endpoint)
        self.state.requests.append(
            RequestRecord(method=method, path=path, endpoint=endpoint, fault=fault.kind if fault else None)
        )
        if fault is None:
            await next_app(scope, _replay(body, receive), send)
            return
        if fault.kind == "slow":
            if await _client_left(receive, fault.delay_ms / 1000):
                # Meta might still store an upload whose client gave up; not storing it keeps tests exact.
                return
            await next_app(scope, _replay(body, receive), send)
        elif fault.kind == "drop":
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]}
            )
            await send({"type": "http.response.body", "body": b'{"id":', "more_body": True})
            # Returning mid-body makes the server close the connection: the client sees it drop.
        else:
            await _send_graph_error(send, _fault_error(fault))


def _is_read_receipt(messages: list[ReceiveMessage]) -> bool:
    raw = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
    try:
        decoded = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return False
    return isinstance(decoded, dict) and "status" in decoded


async def _send_graph_error(send: Send, error: GraphAPIError) -> None:
    body = error.body()
    headers = [(b"content-type", b"application/json")]
    headers += [
        (k.lower().encode(), v.encode()) for k, v in error.headers(body["error"]["fbtrace_id"]).items()
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": msgspec.json.encode(body), "more_body": False})


async def _drain(receive: Receive) -> list[ReceiveMessage] | None:
    messages: list[ReceiveMessage] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        messages.append(message)
        if not message.get("more_body", False):
            return messages


def _replay(messages: list[ReceiveMessage], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> ReceiveMessage:
        return pending.pop(0) if pending else await receive()

    return replay


async def _client_left(receive: Receive, delay_s: float) -> bool:
    """Wait ``delay_s``; ``True`` if the client disconnected meanwhile (after the body, receive()
    only returns on disconnect)."""
    try:
        message = await asyncio.wait_for(receive(), delay_s)
    except TimeoutError:
        return False
    return message["type"] == "http.disconnect"


# --- The app ----------------------------------------------------------------------------------


def create_emulator_app(
    token: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    phone_number_id: str | None = None,
    app_id: str | None = None,
    app_secret: str | None = None,
    state: EmulatorState | None = None,
) -> Litestar:
    """The emulator as a Litestar app: uploads need ``Bearer <token>``; images up to ``max_bytes``.

    With ``phone_number_id`` set, other phone number ids are refused as Graph refuses unknown objects.
    With ``app_id`` and ``app_secret``, the app's access token (``client_credentials``) and its webhook
    subscriptions are served too, as n8n's WhatsApp Trigger uses them on activation.
    """
    state = state or EmulatorState()

    def graph_error(_: Request[Any, Any, Any], exc: GraphAPIError) -> Response[bytes]:
        return _graph_error_response(exc)

    def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
        return _graph_error_response(
            GraphAPIError(exc.status_code, 100, str(exc.detail), type_="GraphMethodException")
        )

    app = Litestar(
        route_handlers=[
            *_graph_routes(state, token, max_bytes, phone_number_id),
            *_app_routes(state, app_id, app_secret),
            *_control_routes(state),
        ],
        middleware=[FaultMiddleware(state)],
        exception_handlers={GraphAPIError: graph_error, HTTPException: http_error},
        # Oversized uploads must reach the handler, to be refused as Meta refuses them.
        request_max_body_size=max_bytes * 2 + 1024 * 1024,
        openapi_config=None,
    )
    app.state.emulator = state
    return app


def _graph_routes(
    state: EmulatorState, token: str, max_bytes: int, phone_number_id: str | None
) -> list[HTTPRouteHandler]:
    """The Graph API endpoints: media upload, info, bytes and delete, and messages."""

    @post("/{version:str}/{phone:str}/media", status_code=200)
    async def upload_media(
        request: Request[Any, Any, Any], version: FromPath[str], phone: FromPath[str]
    ) -> dict[str, str]:
        fields: dict[str, str] = {}
        upload: UploadFile | None = None
        record: dict[str, Any] = {"version": version, "phone_number_id": phone, "fields": fields}
        try:
            _authorize(request, token)
            _check_phone(phone, phone_number_id)
            form = await request.form()
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    upload = value if name == "file" else upload
                else:
                    fields[name] = value
            data = await upload.read() if upload else b""
            record |= {
                "filename": upload.filename if upload else None,
                "content_type": upload.content_type if upload else None,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest() if upload else None,
            }
            mime_type = _check_upload(fields, upload, data, max_bytes)
        except GraphAPIError as exc:
            state.uploads.append(_upload_record(record, status=exc.status, error_code=exc.code))
            raise
        media_id = _numeric_id()
        digest = hashlib.sha256(data).hexdigest()
        state.media[media_id] = _Stored(data=data, mime_type=mime_type, sha256=digest, phone_number_id=phone)
        state.uploads.append(_upload_record(record, status=200, media_id=media_id))
        return {"id": media_id}

    @get("/{version:str}/{media_id:str}")
    async def media_info(
        request: Request[Any, Any, Any], version: FromPath[str], media_id: FromPath[str]
    ) -> MediaInfo:
        _authorize(request, token)
        stored = _lookup(state, request, media_id, "get")
        return MediaInfo(
            url=f"{str(request.base_url).rstrip('/')}/whatsapp_business/attachments/?mid={media_id}",
            mime_type=stored.mime_type,
            sha256=stored.sha256,
            file_size=len(stored.data),
            id=media_id,
        )

    @get("/whatsapp_business/attachments/")
    async def media_bytes(request: Request[Any, Any, Any], mid: FromQuery[str]) -> Response[bytes]:
        _authorize(request, token)
        stored = _lookup(state, request, mid, "get")
        return Response(stored.data, media_type=stored.mime_type)

    @delete("/{version:str}/{media_id:str}", status_code=200)
    async def delete_media(
        request: Request[Any, Any, Any], version: FromPath[str], media_id: FromPath[str]
    ) -> dict[str, bool]:
        _authorize(request, token)
        _lookup(state, request, media_id, "delete")
        del state.media[media_id]
        return {"success": True}

    @post("/{version:str}/{phone:str}/messages", status_code=200)
    async def send_message(
        request: Request[Any, Any, Any], version: FromPath[str], phone: FromPath[str]
    ) -> dict[str, Any]:
        _authorize(request, token)
        _check_phone(phone, phone_number_id)
        try:
            body = msgspec.json.decode(await request.body(), type=dict[str, Any])
        except msgspec.DecodeError:
            raise GraphAPIError(400, 100, "(#100) The request body is not valid JSON.") from None
        if "status" in body:
            state.reads.append(_check_read(body, phone, state))
            return {"success": True}
        record = _check_message(body, phone, state)
        state.messages.append(record)
        return {
            "messaging_product": "whatsapp",
            "contacts": [{"input": record.to, "wa_id": "".join(c for c in record.to if c.isdigit())}],
            "messages": [{"id": record.id}],
        }

    return [upload_media, media_info, media_bytes, delete_media, send_message]


def _control_routes(state: EmulatorState) -> list[HTTPRouteHandler]:
    """The test-facing API under ``/_emulator/``: queue faults, read what was received, reset."""

    @post("/_emulator/faults", status_code=200)
    async def queue_faults(data: JSONBody[FaultQueue]) -> dict[str, int]:
        state.faults.extend(data.faults)
        return {"queued": len(state.faults)}

    @get("/_emulator/faults")
    async def pending_faults() -> dict[str, list[Fault]]:
        return {"faults": state.faults}

    @get("/_emulator/uploads")
    async def uploads() -> dict[str, list[UploadRecord]]:
        return {"uploads": state.uploads}

    @get("/_emulator/messages")
    async def messages() -> dict[str, list[MessageRecord]]:
        return {"messages": state.messages}

    @get("/_emulator/reads")
    async def reads() -> dict[str, list[ReadRecord]]:
        return {"reads": state.reads}

    @get("/_emulator/subscriptions")
    async def subscriptions() -> dict[str, list[Subscription]]:
        return {"subscriptions": list(state.subscriptions.values())}

    @get("/_emulator/requests")
    async def requests() -> dict[str, list[RequestRecord]]:
        return {"requests": state.requests}

    @post("/_emulator/reset", status_code=204)
    async def reset() -> None:
        state.reset()

    return [queue_faults, pending_faults, uploads, messages, reads, subscriptions, requests, reset]


def _authorize(request: Request[Any, Any, Any], token: str) -> None:
    """Check the access token as Graph does: Bearer header or ``access_token`` query parameter."""
    header = request.headers.get("authorization", "")
    scheme, _, offered = header.partition(" ")
    if scheme.lower() != "bearer":
        offered = request.query_params.get("access_token", "")
    if not offered:
        raise GraphAPIError(
            400, 2500, "An active access token must be used to query information about the current user."
        )
    if not secrets.compare_digest(offered.encode(), token.encode()):
        raise GraphAPIError(401, 190, "Invalid OAuth access token - Cannot parse access token")


def _check_phone(phone: str, phone_number_id: str | None) -> None:
    if phone_number_id is not None and phone != phone_number_id:
        raise _unknown_object(phone, "post")


def _check_upload(fields: dict[str, str], upload: UploadFile | None, data: bytes, max_bytes: int) -> str:
    """The media's MIME type, or the Graph error Meta answers for this upload."""
    product = fields.get("messaging_product")
    if product is None:
        raise GraphAPIError(400, 100, "(#100) The parameter messaging_product is required.")
    if product != "whatsapp":
        raise GraphAPIError(
            400, 100, f'(#100) Param messaging_product must be one of {{WHATSAPP}} - got "{product}".'
        )
    if upload is None:
        raise GraphAPIError(400, 100, "(#100) The parameter file is required.")
    declared = fields.get("type")
    if declared is None:
        raise GraphAPIError(400, 100, "(#100) The parameter type is required.")
    content_type = (upload.content_type or "").split(";")[0].strip().lower()
    for what, value in (("type", declared), ("file", content_type)):
        if value not in IMAGE_TYPES:
            raise GraphAPIError(
                400,
                131053,
                "(#131053) Media upload error",
                details=f"Param {what} must be one of the following types: {', '.join(IMAGE_TYPES)}. "
                f"Received '{value}'.",
            )
    if declared != content_type or not data.startswith(_MAGIC[declared]):
        raise GraphAPIError(
            400,
            131053,
            "(#131053) Media upload error",
            details=f"The file's content does not match its declared type {declared}.",
        )
    if len(data) > max_bytes:
        raise GraphAPIError(
            400,
            131053,
            "(#131053) Media upload error",
            details=f"File size {len(data)} bytes exceeds the maximum of {max_bytes} bytes for {declared}.",
        )
    return declared


def _check_message(body: dict[str, Any], phone: str, state: EmulatorState) -> MessageRecord:
    if body.get("messaging_product") != "whatsapp":
        raise GraphAPIError(400, 100, "(#100) The parameter messaging_product is required.")
    to = body.get("to")
    if not isinstance(to, str) or not to:
        raise GraphAPIError(400, 100, "(#100) The parameter to is required.")
    kind = body.get("type", "text")
    text = media_id = None
    if kind == "text":
        text = (body.get("text") or {}).get("body")
        if not isinstance(text, str) or not text:
            raise GraphAPIError(400, 100, "(#100) The parameter text['body'] is required.")
    elif kind == "image":
        image = body.get("image") or {}
        media_id = image.get("id")
        if not media_id and not image.get("link"):
            raise GraphAPIError(400, 100, "(#100) Param image must contain either id or link.")
    else:
        raise GraphAPIError(400, 100, f"(#100) The emulator does not send messages of type {kind!r}.")
    return MessageRecord(
        seq=state.next_seq(),
        id="wamid." + base64.b64encode(secrets.token_bytes(30)).decode(),
        phone_number_id=phone,
        to=to,
        type=kind,
        text=text,
        media_id=media_id,
        # Meta accepts an unknown id and fails later, by webhook; tests want to know at once.
        media_known=media_id in state.media if media_id else False,
        body=body,
    )


def _check_read(body: dict[str, Any], phone: str, state: EmulatorState) -> ReadRecord:
    """A ``status: read`` request (mark a received message read, optionally showing typing)."""
    if body.get("messaging_product") != "whatsapp":
        raise GraphAPIError(400, 100, "(#100) The parameter messaging_product is required.")
    if body.get("status") != "read":
        got = body.get("status")
        raise GraphAPIError(400, 100, f"(#100) Param status must be one of {{READ}} - got {got!r}.")
    message_id = body.get("message_id")
    if not isinstance(message_id, str) or not message_id.startswith("wamid."):
        raise GraphAPIError(400, 100, "(#100) The parameter message_id is required.")
    typing = body.get("typing_indicator")
    if typing is not None and typing != {"type": "text"}:
        raise GraphAPIError(400, 100, "(#100) Param typing_indicator[type] must be one of {TEXT}.")
    return ReadRecord(
        seq=state.next_seq(),
        phone_number_id=phone,
        message_id=message_id,
        typing=typing["type"] if typing else None,
    )


async def _params(request: Request[Any, Any, Any]) -> dict[str, str]:
    """A Graph call's parameters, from the query string and a form or JSON body, as Graph reads them."""
    params = dict(request.query_params)
    content_type = request.headers.get("content-type", "")
    raw = await request.body()
    if not raw:
        return params
    if "json" in content_type or raw.lstrip().startswith(b"{"):
        try:
            decoded = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            raise GraphAPIError(400, 100, "(#100) The request body is not valid JSON.") from None
        if isinstance(decoded, dict):
            params |= {k: v if isinstance(v, str) else json.dumps(v) for k, v in decoded.items()}
        return params
    form = await request.form()
    params |= {k: v for k, v in form.items() if isinstance(v, str)}
    return params


def _app_routes(state: EmulatorState, app_id: str | None, app_secret: str | None) -> list[HTTPRouteHandler]:
    """The app's own endpoints: its access token (client credentials) and its webhook subscriptions."""

    @post("/{version:str}/oauth/access_token", status_code=200)
    async def access_token(request: Request[Any, Any, Any], version: FromPath[str]) -> dict[str, str]:
        params = await _params(request)
        if app_id is None or params.get("client_id") != app_id:
            raise GraphAPIError(400, 101, "Error validating application. Invalid application ID.")
        if app_secret is None or not secrets.compare_digest(
            params.get("client_secret", "").encode(), app_secret.encode()
        ):
            raise GraphAPIError(400, 1, "Error validating client secret.")
        if params.get("grant_type") != "client_credentials":
            raise GraphAPIError(400, 100, "(#100) Unsupported grant_type.")
        issued = f"{app_id}|{secrets.token_urlsafe(20)}"
        state.app_tokens.add(issued)
        return {"access_token": issued, "token_type": "bearer"}

    def authorize_app(request: Request[Any, Any, Any], app: str) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, offered = header.partition(" ")
        offered = offered if scheme.lower() == "bearer" else request.query_params.get("access_token", "")
        if not offered:
            raise GraphAPIError(
                400, 2500, "An active access token must be used to query information about the current user."
            )
        if offered not in state.app_tokens:
            raise GraphAPIError(401, 190, "Invalid OAuth access token - Cannot parse access token")
        if app != app_id:
            raise _unknown_object(app, "get")

    @get("/{version:str}/{app:str}/subscriptions")
    async def list_subscriptions(
        request: Request[Any, Any, Any], version: FromPath[str], app: FromPath[str]
    ) -> dict[str, list[dict[str, Any]]]:
        authorize_app(request, app)
        return {
            "data": [
                {k: v for k, v in msgspec.to_builtins(s).items() if k != "verify_token"}
                for s in state.subscriptions.values()
            ]
        }

    @post("/{version:str}/{app:str}/subscriptions", status_code=200)
    async def subscribe(
        request: Request[Any, Any, Any], version: FromPath[str], app: FromPath[str]
    ) -> dict[str, bool]:
        authorize_app(request, app)
        params = await _params(request)
        object_, callback = params.get("object", ""), params.get("callback_url", "")
        if object_ != "whatsapp_business_account" or not callback.startswith(("http://", "https://")):
            raise GraphAPIError(400, 100, "(#100) Param object and callback_url are required.")
        raw_fields = params.get("fields", "")
        try:
            fields = json.loads(raw_fields) if raw_fields.startswith("[") else raw_fields.split(",")
        except ValueError:
            raise GraphAPIError(400, 100, "(#100) Param fields is not a list.") from None
        state.subscriptions[object_] = Subscription(
            object=object_,
            callback_url=callback,
            active=True,
            fields=[{"name": str(f).strip(), "version": "v19.0"} for f in fields if str(f).strip()],
            verify_token=params.get("verify_token"),
        )
        return {"success": True}

    @delete("/{version:str}/{app:str}/subscriptions", status_code=200)
    async def unsubscribe(
        request: Request[Any, Any, Any], version: FromPath[str], app: FromPath[str]
    ) -> dict[str, bool]:
        authorize_app(request, app)
        params = await _params(request)
        state.subscriptions.pop(params.get("object", "whatsapp_business_account"), None)
        return {"success": True}

    return [access_token, list_subscriptions, subscribe, unsubscribe]


def _lookup(state: EmulatorState, request: Request[Any, Any, Any], media_id: str, verb: str) -> _Stored:
    stored = state.media.get(media_id)
    wanted_phone = request.query_params.get("phone_number_id")
    if stored is None or (wanted_phone and wanted_phone != stored.phone_number_id):
        raise _unknown_object(media_id, verb)
    return stored


def _upload_record(
    record: dict[str, Any], *, status: int, media_id: str | None = None, error_code: int | None = None
) -> UploadRecord:
    return UploadRecord(
        status=status,
        media_id=media_id,
        error_code=error_code,
        version=record["version"],
        phone_number_id=record["phone_number_id"],
        fields=record["fields"],
        filename=record.get("filename"),
        content_type=record.get("content_type"),
        size=record.get("size", 0),
        sha256=record.get("sha256"),
    )


# --- Running it -------------------------------------------------------------------------------


def run_emulator(host: str, port: int, token: str, **options: Any) -> None:
    """Serve the emulator with uvicorn until interrupted; ``options`` go to :func:`create_emulator_app`."""
    import uvicorn  # noqa: PLC0415  (only the command needs a server)

    # ws="none": the optional pyppeteer engine pins a websockets that uvicorn's ws support cannot use.
    uvicorn.run(create_emulator_app(token, **options), host=host, port=port, log_level="info", ws="none")


def main(argv: Sequence[str] | None = None) -> int:
    """``meta-emulator`` command: the token comes from ``--token`` or ``META_EMULATOR_TOKEN``."""
    parser = argparse.ArgumentParser(prog="meta-emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--token", default=os.environ.get("META_EMULATOR_TOKEN", ""))
    parser.add_argument("--phone-number-id", default=None, help="refuse other phone number ids")
    parser.add_argument("--app-id", default=None, help="the Meta app whose token and webhooks are served")
    parser.add_argument("--app-secret", default=os.environ.get("META_EMULATOR_APP_SECRET"))
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES, help="largest image accepted")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("give the access token to accept: --token T or META_EMULATOR_TOKEN=T")
    run_emulator(
        args.host,
        args.port,
        args.token,
        max_bytes=args.max_bytes,
        phone_number_id=args.phone_number_id,
        app_id=args.app_id,
        app_secret=args.app_secret,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
