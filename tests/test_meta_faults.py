"""The Meta emulator slow and failing under the real service: each ends in a well-formed problem,
the temp directory is empty after it, the service's Chromium keeps its processes, and the next
upload works."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from . import proctools
from .conftest import running_service
from .emulator_fixtures import Emulator, meta_env
from .figures import FAULT_FIGURES
from .test_faults import assert_problem


class MediaService:
    def __init__(self, client: httpx.AsyncClient, temp_dir: Path, others: set[int]) -> None:
        self.http = client
        self.temp_dir = temp_dir
        self._others = others

    def browser_processes(self) -> int:
        """Processes of this service's Chromium (not the session service's)."""
        return proctools.in_groups(set(proctools.browser_leaders()) - self._others)


@pytest.fixture(scope="module")
async def media_service(
    meta_emulator_url: str, tmp_path_factory: pytest.TempPathFactory, pages_url: str
) -> AsyncIterator[MediaService]:
    root = tmp_path_factory.mktemp("meta-faults")
    dashboards = root / "dashboards.toml"
    dashboards.write_text(f'[dashboards.box]\nurl = "{pages_url}/box"\n', encoding="utf-8")
    env = meta_env(
        meta_emulator_url,
        root / "images",
        dashboards_file=str(dashboards),
        meta_timeout_ms="1000",
        meta_max_attempts="2",
    )
    others = set(proctools.browser_leaders())
    async with running_service(env) as client:
        yield MediaService(client, root / "images", others)


@pytest.mark.parametrize(
    ("fault", "status", "slug"),
    [
        pytest.param({"kind": "slow", "delay_ms": 3000}, 502, "upstream-error", id="slow-past-timeout"),
        pytest.param({"kind": "http_503"}, 502, "upstream-error", id="503"),
        pytest.param({"kind": "drop"}, 502, "upstream-error", id="connection-dropped"),
        pytest.param({"kind": "throttle", "retry_after": 3}, 503, "upstream-throttled", id="throttled"),
    ],
)
async def test_meta_slow_or_failing_is_a_problem_and_leaves_nothing(  # noqa: PLR0917  (parametrized)
    media_service: MediaService,
    emulator: Emulator,
    no_backoff: None,
    fault: dict[str, Any],
    status: int,
    slug: str,
) -> None:
    assert (await media_service.http.post("/v1/renders", json={"dashboard": "box"})).status_code == 200
    baseline = await proctools.baseline(media_service.browser_processes)
    await emulator.faults(fault, fault)  # every attempt fails

    response = await media_service.http.post("/v1/media", json={"dashboard": "box"})

    problem = assert_problem(response, status, slug)
    assert problem["detail"]
    if status == 503:
        assert int(response.headers["retry-after"]) >= 1
    assert list(media_service.temp_dir.iterdir()) == []
    again = await media_service.http.post("/v1/media", json={"dashboard": "box"})
    assert again.status_code == 200, again.text
    assert again.headers["x-render-readiness"] == "complete"
    assert list(media_service.temp_dir.iterdir()) == []
    after = await proctools.settle(baseline, media_service.browser_processes)
    FAULT_FIGURES.append(f"Meta {fault['kind']}: browser processes before {baseline}, after {after}")
    assert after <= baseline


async def test_the_whole_request_has_a_deadline_naming_the_step_it_was_at(
    meta_emulator_url: str, tmp_path: Path, pages_url: str, emulator: Emulator
) -> None:
    dashboards = tmp_path / "dashboards.toml"
    dashboards.write_text(f'[dashboards.box]\nurl = "{pages_url}/box"\n', encoding="utf-8")
    env = meta_env(
        meta_emulator_url,
        tmp_path / "images",
        dashboards_file=str(dashboards),
        meta_timeout_ms="30000",
        request_timeout_ms="6000",
    )
    await emulator.faults({"kind": "slow", "delay_ms": 20_000})
    async with running_service(env) as client:
        response = await client.post("/v1/media", json={"dashboard": "box"})

        problem = assert_problem(response, 504, "render-timeout")
        assert problem["step"] == "upload"
        assert "6 s" in str(problem["detail"])
        assert list((tmp_path / "images").iterdir()) == []
