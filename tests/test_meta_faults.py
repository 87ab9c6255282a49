"""The Meta emulator slow and failing under the real service: each ends in a well-formed problem,
the temp directory is empty after it, the service's Chromium keeps its processes, and the next
upload works."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from .support import browsers
from .support.browsers import ServiceBrowser
from .support.emulator import Emulator, meta_env
from .support.figures import FAULT_FIGURES
from .support.problems import assert_problem
from .support.service import ServiceClient, running_service

pytestmark = pytest.mark.slow


class MediaService(ServiceBrowser):
    def __init__(self, client: ServiceClient, others: set[int], temp_dir: Path) -> None:
        super().__init__(client, others, engine="playwright")
        self.temp_dir = temp_dir


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
    others = set(browsers.browser_leaders())
    async with running_service(env) as client:
        yield MediaService(client, others, root / "images")


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
    leader, baseline = await media_service.warm()
    await emulator.faults(fault, fault)  # every attempt fails

    response = await media_service.http.post("/v1/media", json={"dashboard": "box"})

    problem = assert_problem(response, status, slug)
    assert problem["detail"]
    if status == 503:
        assert int(response.headers["retry-after"]) >= 1
    assert list(media_service.temp_dir.iterdir()) == []
    again = await media_service.http.post("/v1/media", json={"dashboard": "box"})
    assert again.status_code == 200, again.text
    assert again.headers["x-render-readiness"].startswith("ready; condition=load+auto;")
    assert list(media_service.temp_dir.iterdir()) == []
    assert media_service.browser() == leader
    after = await browsers.settle(baseline, lambda: browsers.in_groups({leader}))
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
