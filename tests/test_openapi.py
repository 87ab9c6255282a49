"""The OpenAPI document tells the truth: every problem a route answers, as application/problem+json;
unknown fields refused where the decoder refuses them; the service's own bounds; metrics as text."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .support.service import running_service

PROBLEM_REF = "#/components/schemas/Problem"


async def document(service: httpx.AsyncClient) -> dict[str, Any]:
    response = await service.get("/openapi/openapi.json")
    response.raise_for_status()
    doc: dict[str, Any] = response.json()
    return doc


@pytest.mark.parametrize(
    ("path", "method", "statuses"),
    [
        pytest.param(
            "/v1/renders",
            "post",
            {400, 401, 403, 404, 413, 422, 429, 502, 503, 504},
            id="renders",
        ),
        pytest.param("/v1/media", "post", {400, 401, 403, 404, 413, 422, 429, 502, 503, 504}, id="media"),
        pytest.param("/v1/dashboards", "get", {400, 401, 429, 503}, id="dashboards"),
    ],
)
async def test_every_problem_status_is_documented_as_a_problem(
    service: httpx.AsyncClient, path: str, method: str, statuses: set[int]
) -> None:
    responses = (await document(service))["paths"][path][method]["responses"]
    problems = {int(code) for code in responses if code.startswith(("4", "5"))}
    assert problems == statuses
    for code in problems:
        content = responses[str(code)]["content"]
        assert list(content) == ["application/problem+json"], code
        assert content["application/problem+json"]["schema"] == {"$ref": PROBLEM_REF}


async def test_the_problem_schema_and_the_request_schemas(service: httpx.AsyncClient) -> None:
    doc = await document(service)
    schemas = doc["components"]["schemas"]
    assert set(schemas["Problem"]["required"]) == {"type", "title", "status", "detail"}
    # Refused unknown fields are said to be refused; what the decoder bounds, the document bounds.
    assert schemas["RenderRequest"]["additionalProperties"] is False
    assert schemas["ViewportOverride"]["additionalProperties"] is False
    params = schemas["RenderRequest"]["properties"]["params"]
    assert (params["maxProperties"], params["propertyNames"]["maxLength"]) == (32, 64)
    assert params["additionalProperties"] == {"type": "string", "maxLength": 256}
    assert schemas["ViewportOverride"]["properties"]["scale"]["exclusiveMinimum"] == 0
    # Only the render routes take a body.
    assert "requestBody" not in doc["paths"]["/v1/dashboards"]["get"]
    renders = doc["paths"]["/v1/renders"]["post"]["responses"]["200"]["content"]
    assert set(renders) == {"image/png", "image/jpeg"}
    readyz = doc["paths"]["/readyz"]["get"]["responses"]
    assert readyz["503"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Health"}


async def test_the_service_bounds_are_in_the_document() -> None:
    env = {"max_viewport_width": "640", "max_viewport_height": "480", "max_scale": "1.5"}
    async with running_service({**env, "max_timeout_ms": "9000"}) as service:
        schemas = (await document(service))["components"]["schemas"]
    viewport = schemas["ViewportOverride"]["properties"]
    assert [viewport[f]["maximum"] for f in ("width", "height", "scale")] == [640, 480, 1.5]
    assert schemas["RenderRequest"]["properties"]["timeout_ms"]["maximum"] == 9000


@pytest.mark.parametrize("token", ["", "metrics-Qm4t7Zx2Lp9Vw3Ks8Rb"])
async def test_metrics_is_text_and_its_token_is_documented(token: str) -> None:
    async with running_service({"metrics_token": token}) as service:
        doc = await document(service)
    metrics = doc["paths"]["/metrics"]["get"]
    assert all(media.startswith("text/plain") for media in metrics["responses"]["200"]["content"])
    if token:
        assert metrics["security"] == [{"metricsToken": []}]
        assert doc["components"]["securitySchemes"]["metricsToken"] == {"type": "http", "scheme": "bearer"}
        assert metrics["responses"]["401"]["content"]["application/problem+json"]
        assert token not in str(doc)  # the scheme is described, the secret is not
    else:
        assert "security" not in metrics
        assert "401" not in metrics["responses"]
