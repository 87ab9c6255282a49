"""``/readyz`` proves itself with a real render of a blank page, reused for a few seconds."""

from __future__ import annotations

import httpx


def checks_made(metrics_text: str) -> float:
    return sum(
        float(line.split()[-1])
        for line in metrics_text.splitlines()
        if line.startswith("screenshot_ready_checks_total{")
    )


async def test_readyz_renders_and_reuses_its_check_for_a_few_seconds(service: httpx.AsyncClient) -> None:
    before = checks_made((await service.get("/metrics")).text)

    answers = [await service.get("/readyz") for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[0].json()["checks"]["browser"] == "ok"
    made = checks_made((await service.get("/metrics")).text) - before
    assert made <= 1  # three probes within SCREENSHOT_READY_CACHE_S (5 s): one render at most
