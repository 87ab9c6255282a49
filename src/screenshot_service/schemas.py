"""Request and response bodies of the HTTP API (v1): the contract n8n and the OpenAPI document read."""

from __future__ import annotations

from typing import Annotated

import msgspec

from .browser.capture import ImageFormat, Readiness

PARAMS_MAX, PARAM_NAME_MAX, PARAM_VALUE_MAX = 32, 64, 256
ParamValue = Annotated[str, msgspec.Meta(max_length=PARAM_VALUE_MAX)]
# The characters a written phone number may have; ``guard.phones.normalise`` decides whether it is one.
REQUESTER_PATTERN = r"^\+?[0-9 ().-]{7,31}$"
LOCALE_PATTERN = r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?$"


class ViewportOverride(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Overrides of the dashboard's viewport; bounds are checked against the service's limits."""

    width: Annotated[int, msgspec.Meta(ge=64)] | None = None
    height: Annotated[int, msgspec.Meta(ge=64)] | None = None
    scale: Annotated[float, msgspec.Meta(gt=0)] | None = None


class RenderRequest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """What to render: a configured dashboard and its parameters, with optional bounded overrides."""

    dashboard: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    params: Annotated[
        dict[Annotated[str, msgspec.Meta(max_length=PARAM_NAME_MAX)], ParamValue],
        msgspec.Meta(max_length=PARAMS_MAX),
    ] = msgspec.field(default_factory=dict)
    url: Annotated[str, msgspec.Meta(max_length=2048)] | None = None
    """A raw URL instead of a dashboard; only when the operator enabled raw URLs."""
    requester: Annotated[str, msgspec.Meta(max_length=32, pattern=REQUESTER_PATTERN)] | None = None
    """The WhatsApp number the render is for: allowlisted, rate limited, logged masked. Digits with an
    optional leading ``+``; spaces, dashes, dots and brackets are ignored (``+976 (9911) 22-33``)."""
    viewport: ViewportOverride | None = None
    full_page: bool | None = None
    selector: Annotated[str, msgspec.Meta(min_length=1, max_length=512)] | None = None
    format: ImageFormat | None = None
    quality: Annotated[int, msgspec.Meta(ge=1, le=100)] | None = None
    timezone: Annotated[str, msgspec.Meta(max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_+/-]*$")] | None = None
    """An IANA time zone, e.g. ``Asia/Ulaanbaatar``."""
    locale: Annotated[str, msgspec.Meta(max_length=35, pattern=LOCALE_PATTERN)] | None = None
    """A BCP 47 language tag: language, optional script and region, e.g. ``mn-MN``, ``zh-Hant-TW``."""
    timeout_ms: Annotated[int, msgspec.Meta(ge=500)] | None = None
    split: bool | None = None
    """``POST /v1/media`` only: cut a tall capture into parts a phone shows legibly, between the page's
    panels, each uploaded (answered in ``parts``). Unset: the dashboard's ``split`` (default false)."""


class PartBox(msgspec.Struct, kw_only=True, frozen=True):
    """Where a part is on the page, in the page's CSS pixels (top-left corner of the page is 0, 0)."""

    x: float
    y: float
    width: float
    height: float


class ImagePart(msgspec.Struct, kw_only=True, frozen=True):
    """One part of a split image, uploaded to WhatsApp: send the parts by ``media_id``, in order."""

    media_id: str
    mime_type: str
    bytes: int
    width: int
    height: int
    box: PartBox
    fitted: str | None = None


class UploadedImage(msgspec.Struct, kw_only=True, frozen=True):
    """A rendered image uploaded to WhatsApp: send it by ``media_id``."""

    media_id: str
    mime_type: str
    bytes: int
    width: int
    height: int
    render_ms: int
    upload_ms: int
    cached: bool = False
    """Uploaded earlier and reused (the dashboard's ``cache_ttl_s``), not rendered for this request."""
    fitted: str | None = None
    """How the image was made to fit WhatsApp's size limit, if it had to be (e.g. ``jpeg q85``)."""
    readiness: Readiness = msgspec.field(default_factory=Readiness)
    """How the page became ready: the conditions that held (``state`` ``ready``), or ``partial``
    with what still moved when the time to wait ran out; for a reused media id, its render's."""
    parts: list[ImagePart] | msgspec.UnsetType = msgspec.UNSET
    """With ``split``: every part, top to bottom (one when the page fits in one). The top-level
    ``media_id``, ``mime_type``, ``bytes``, ``width``, ``height`` and ``fitted`` are then the first
    part's, and ``upload_ms`` is all uploads'. Without ``split``: absent."""


class MediaResponse(UploadedImage, kw_only=True, frozen=True):
    """The answer of ``POST /v1/media``."""

    request_id: str


class ParamInfo(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    default: str | None
    pattern: str
    description: str
    values: list[str] | None = None
    """The allowed values, when the dashboard lists them (the pattern then matches exactly these)."""


class DashboardInfo(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    title: str
    description: str
    params: list[ParamInfo]


class DashboardList(msgspec.Struct, kw_only=True, frozen=True):
    default: str | None
    dashboards: list[DashboardInfo]


class Health(msgspec.Struct, kw_only=True, frozen=True):
    status: str
    checks: dict[str, str] = msgspec.field(default_factory=dict)


class Problem(msgspec.Struct, kw_only=True, frozen=True):
    """An RFC 9457 problem (``application/problem+json``): switch on ``type``; ``field`` or ``step`` say
    where, when there is a where. Some types carry more members (``meta``, ``attempts``, ``missing``...)."""

    type: str
    title: str
    status: int
    detail: str
    request_id: str | None = None
    field: str | None = None
    step: str | None = None
