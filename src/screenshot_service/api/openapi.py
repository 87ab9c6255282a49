"""What the OpenAPI document says beyond the handlers' signatures: every problem a route can answer, as
``application/problem+json``, and the render route's second image type."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPI, OpenAPIMediaType, OpenAPIType, Operation, Reference, Schema

from .. import schemas
from ..errors import HttpRefused, ServiceError
from ..schemas import Problem
from ..settings import Settings
from .problems import PROBLEM_MEDIA_TYPE

# The problems of every /v1 route: no key, too many requests for it, a rate limiter that is down.
V1 = (401, 429, 503)
# ...and of a render request: its body, its fields, its allowlists, its dashboard, the render itself.
RENDER = (*V1, 400, 403, 404, 413, 422, 502, 504)


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """Problem responses for ``statuses``, each described by the problem types it may carry."""
    slugs: dict[int, list[str]] = {}
    for error in _error_classes(ServiceError):
        if error is not HttpRefused:
            slugs.setdefault(error.status, []).append(error.slug)
    specs = {}
    for status in sorted(set(statuses)):
        kinds = ", ".join(f"`{slug}`" for slug in sorted(slugs.get(status, []))) or "named for the status"
        specs[status] = ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_MEDIA_TYPE,
            description=f"An RFC 9457 problem; its type is one of {kinds}.",
            generate_examples=False,
        )
    return specs


def _error_classes(root: type[ServiceError]) -> Iterator[type[ServiceError]]:
    for sub in root.__subclasses__():
        yield sub
        yield from _error_classes(sub)


@dataclasses.dataclass
class ImageOperation(Operation):
    """An operation answering an image: PNG by default, JPEG when asked (``format``)."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        content = getattr(ok, "content", None)
        if content and (png := content.get("image/png")) is not None:
            content["image/jpeg"] = OpenAPIMediaType(schema=png.schema)


def tell_the_truth(document: OpenAPI, settings: Settings) -> None:
    """Complete the document Litestar generated with what it cannot know: unknown fields refused, and the
    bounds this service's settings put on a request."""
    components = (document.components.schemas if document.components else None) or {}
    _close_refusing_structs(components)
    bounds = {
        ("ViewportOverride", "width"): settings.max_viewport_width,
        ("ViewportOverride", "height"): settings.max_viewport_height,
        ("ViewportOverride", "scale"): settings.max_scale,
        ("RenderRequest", "timeout_ms"): settings.max_timeout_ms,
    }
    for (struct, field), maximum in bounds.items():
        component = components.get(struct)
        prop = (component.properties or {}).get(field) if isinstance(component, Schema) else None
        if isinstance(prop, Schema):
            prop.maximum = maximum
    # ...and the bounds of the params mapping, its names and its values.
    request = components.get("RenderRequest")
    params = (request.properties or {}).get("params") if isinstance(request, Schema) else None
    if isinstance(params, Schema):
        params.max_properties = schemas.PARAMS_MAX
        params.property_names = Schema(max_length=schemas.PARAM_NAME_MAX)
        params.additional_properties = Schema(type=OpenAPIType.STRING, max_length=schemas.PARAM_VALUE_MAX)
    # Litestar drops the scale's lower bound (``gt=0``) beside the upper one.
    viewport = components.get("ViewportOverride")
    scale = (viewport.properties or {}).get("scale") if isinstance(viewport, Schema) else None
    if isinstance(scale, Schema):
        scale.exclusive_minimum = 0


def _close_refusing_structs(components: Mapping[str, Schema | Reference]) -> None:
    """``additionalProperties: false`` on the schema of every request struct that refuses unknown fields
    (``forbid_unknown_fields``): Litestar's schema generation leaves it out, msgspec's decoder enforces it."""
    for name, schema in components.items():
        struct = getattr(schemas, name, None)
        if (
            isinstance(schema, Schema)
            and isinstance(struct, type)
            and issubclass(struct, msgspec.Struct)
            and struct.__struct_config__.forbid_unknown_fields
        ):
            schema.additional_properties = False
