"""The Meta emulator as tests use it: settings that point the service at it, and its control API."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from screenshot_service.settings import Settings, load_settings

EMULATOR_TOKEN = "emulator-token-0123456789abcdef"
PHONE_NUMBER_ID = "106540352242922"
API_VERSION = "v21.0"
APP_ID = "1234567890123456"
"""The Meta app whose access token and webhook subscriptions the emulator serves."""
APP_SECRET = "emulator-app-secret-fedcba9876543210"


def meta_env(graph_url: str, temp_dir: Path, **env: str) -> dict[str, str]:
    """Service settings that upload to the emulator at ``graph_url``, with temp images in ``temp_dir``."""
    return {
        "meta_graph_url": graph_url,
        "meta_api_version": API_VERSION,
        "meta_phone_number_id": PHONE_NUMBER_ID,
        "meta_access_token": EMULATOR_TOKEN,
        "temp_dir": str(temp_dir),
        **env,
    }


class Emulator:
    """The emulator's control API, as tests use it."""

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self.url = url
        self.http = client

    async def reset(self) -> None:
        (await self.http.post("/_emulator/reset")).raise_for_status()

    async def faults(self, *faults: dict[str, Any]) -> None:
        """Queue faults for the next matching Graph requests (see ``meta_emulator.Fault``)."""
        (await self.http.post("/_emulator/faults", json={"faults": list(faults)})).raise_for_status()

    async def pending_faults(self) -> list[dict[str, Any]]:
        return await self._list("faults")

    async def uploads(self) -> list[dict[str, Any]]:
        return await self._list("uploads")

    async def messages(self) -> list[dict[str, Any]]:
        return await self._list("messages")

    async def reads(self) -> list[dict[str, Any]]:
        """The ``status: read`` calls received (messages marked read, with their typing indicator)."""
        return await self._list("reads")

    async def subscriptions(self) -> list[dict[str, Any]]:
        """The app's webhook subscriptions, with the verify token each was made with."""
        return await self._list("subscriptions")

    async def requests(self, endpoint: str = "upload") -> list[dict[str, Any]]:
        return [r for r in await self._list("requests") if r["endpoint"] == endpoint]

    async def wait_for_request(self, endpoint: str = "upload") -> None:
        """Return once a request to ``endpoint`` has arrived (a background upload has reached Meta)."""
        for _ in range(1000):
            if await self.requests(endpoint):
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"no {endpoint} request reached the emulator")

    async def _list(self, what: str) -> list[dict[str, Any]]:
        response = await self.http.get(f"/_emulator/{what}")
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()[what]
        return items


def meta_settings(graph_url: str, *, tmp_path: Path | None = None, **env: str) -> Settings:
    """Settings pointing the Meta client at ``graph_url``; ``env`` keys are setting names."""
    base = {
        "SCREENSHOT_META_GRAPH_URL": graph_url,
        "SCREENSHOT_META_API_VERSION": API_VERSION,
        "SCREENSHOT_META_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
        "SCREENSHOT_META_ACCESS_TOKEN": EMULATOR_TOKEN,
        "SCREENSHOT_META_TIMEOUT_MS": "5000",
    }
    if tmp_path is not None:
        base["SCREENSHOT_TEMP_DIR"] = str(tmp_path / "images")
    return load_settings({**base, **{f"SCREENSHOT_{k.upper()}": v for k, v in env.items()}})


def png_bytes(width: int = 320, height: int = 200, color: str = "teal") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()
