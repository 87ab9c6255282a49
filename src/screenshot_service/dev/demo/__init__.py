"""The demo dashboard the service serves itself in ``screenshot-service demo``, so ``make run`` shows a
real picture with no setup: a page, the made-up data it loads late, and the demo's dashboards file."""

from __future__ import annotations

import asyncio
import random
from datetime import date, timedelta
from importlib import resources
from typing import Annotated

from litestar import MediaType, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery, QueryParameter

from ...errors import InvalidParameter

_PAGE = resources.files(__name__).joinpath("sales.html").read_text(encoding="utf-8")
TALL_PAGE = resources.files(__name__).joinpath("tall.html").read_text(encoding="utf-8")
"""A 1280x16000 page of panels whose PNG is over 5 MB: what splitting and fitting are measured on."""
_RANGES = {"today": 1, "7d": 7, "30d": 30, "90d": 90}
_PANELS = ("revenue", "orders", "regions", "products")


@get("/demo/sales", media_type=MediaType.HTML, include_in_schema=False)
async def demo_page() -> str:
    return _PAGE


@get("/demo/tall", media_type=MediaType.HTML, include_in_schema=False)
async def demo_tall_page() -> str:
    return TALL_PAGE


@get("/demo/api/{panel:str}", include_in_schema=False)
async def demo_data(
    panel: FromPath[str],
    period: Annotated[str, QueryParameter(name="range")] = "7d",
    delay_ms: FromQuery[int] = 400,
) -> Response[dict[str, object]]:
    """Made-up numbers that arrive late, as a real dashboard's data does."""
    if panel not in _PANELS:
        raise NotFoundException()
    days = _RANGES.get(period)
    if days is None:
        raise InvalidParameter("range must be one of " + ", ".join(_RANGES), field="range")
    await asyncio.sleep(min(max(delay_ms, 0), 3000) / 1000)
    rng = random.Random(f"{panel}:{period}")  # noqa: S311  stable demo numbers, not security
    end = date(2026, 11, 24)
    series = [
        {"day": (end - timedelta(days=days - 1 - i)).isoformat(), "value": round(rng.uniform(40, 100) * 1000)}
        for i in range(max(days, 7))
    ]
    return Response(
        {"panel": panel, "range": period, "series": series}, headers={"Cache-Control": "no-store"}
    )


DEMO_ROUTES = (demo_page, demo_tall_page, demo_data)
"""What ``create_app(..., extra_routes=DEMO_ROUTES)`` serves beside the API."""
