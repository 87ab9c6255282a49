"""The one problem assertion: an RFC 9457 problem of ours, with its status, type and request id."""

from __future__ import annotations

from typing import Any

import httpx

PROBLEM = "urn:screenshot-service:problem:"


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """``response`` is our problem ``slug`` with ``status``; returns its members."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM + slug
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert isinstance(body["detail"], str)
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body
