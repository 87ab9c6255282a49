"""The operations kit in deploy/: rules checked and unit-tested by promtool, then a real Prometheus
(Debian's package, on 127.0.0.1) scraping a running service while it renders, uploads and refuses,
with every recording rule and every Grafana panel query answered with data through its HTTP API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from screenshot_service import metrics

from .support.emulator import Emulator, meta_env
from .support.metrics import Metrics
from .support.servers import closed_port
from .support.service import ServiceClient, running_service, wait_until_ready

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "screenshot-service.rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "tests" / "screenshot-service.test.yml"
OPERATOR_RULE = ROOT / "deploy" / "kubernetes" / "prometheusrule.yaml"
GRAFANA = ROOT / "deploy" / "grafana" / "screenshot-service.json"
JOB = "screenshot-service"
DATA_TIMEOUT_S = 120


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        message = f"{name} is not installed (Debian's `prometheus` package provides it)"
        if os.environ.get("REQUIRE_PROMETHEUS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return groups


def recording_rules() -> list[str]:
    return [rule["record"] for group in rule_groups() for rule in group["rules"] if "record" in rule]


def alert_names() -> list[str]:
    return [rule["alert"] for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(GRAFANA.read_text(encoding="utf-8"))
    return loaded


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, query) of every Grafana panel target, its variables as 'All' selects them."""
    return [
        (panel["title"], target["expr"]) for panel in dashboard()["panels"] for target in panel["targets"]
    ]


def as_prometheus_sees_it(query: str) -> str:
    """A Grafana query with its variables filled in: every instance and dashboard, a 1m rate window."""
    return query.replace("$__rate_interval", "1m").replace("$instance", ".*").replace("$dashboard", ".*")


def test_rules_are_valid() -> None:
    result = subprocess.run(
        [tool("promtool"), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_and_stays_quiet_in_promtools_unit_tests() -> None:
    tested = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    cases = [case for group in tested for case in group.get("alert_rule_test", [])]
    for alert in alert_names():
        outcomes = {bool(case.get("exp_alerts")) for case in cases if case["alertname"] == alert}
        assert outcomes == {True, False}, f"{alert} must be tested both firing and not firing"

    result = subprocess.run(
        [tool("promtool"), "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_operator_rule_carries_the_same_groups() -> None:
    operator_rule = yaml.safe_load(OPERATOR_RULE.read_text(encoding="utf-8"))
    assert operator_rule["kind"] == "PrometheusRule"
    assert operator_rule["spec"]["groups"] == rule_groups()
    # A ServiceMonitor's job label is its Service's name: the rules select that job.
    service = yaml.safe_load((OPERATOR_RULE.parent / "service.yaml").read_text(encoding="utf-8"))
    assert service["metadata"]["name"] == JOB


def test_every_alert_says_what_to_do() -> None:
    for group in rule_groups():
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
                assert set(rule["annotations"]) == {"summary", "runbook"}, rule["alert"]
                assert len(rule["annotations"]["runbook"]) > 80, rule["alert"]


def test_the_grafana_dashboard_is_importable_with_a_datasource_variable() -> None:
    board = dashboard()
    assert board["uid"] == JOB
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        area = {
            (x, y) for x in range(box["x"], box["x"] + box["w"]) for y in range(box["y"], box["y"] + box["h"])
        }
        assert not cells & area, f"{panel['title']} overlaps another panel"
        cells |= area


# --- A real Prometheus ------------------------------------------------------------------------------


class Prometheus:
    """Prometheus's HTTP API, as the test asks it."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def query(self, expr: str) -> list[dict[str, Any]]:
        response = await self.client.get("/api/v1/query", params={"query": expr})
        body = response.json()
        assert body["status"] == "success", f"{expr}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def has_data(self, expr: str) -> bool:
        """Whether ``expr`` answers at least one sample that is a number (not NaN)."""
        return any(sample["value"][1] not in {"NaN", "+Inf", "-Inf"} for sample in await self.query(expr))

    async def wait_for(self, expr: str, timeout_s: float = DATA_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not await self.has_data(expr):
            assert time.monotonic() < deadline, f"no data for {expr} after {timeout_s} s"
            await asyncio.sleep(0.5)  # the next scrape or rule evaluation (both every second)

    async def rules(self) -> list[dict[str, Any]]:
        response = await self.client.get("/api/v1/rules")
        return [rule for group in response.json()["data"]["groups"] for rule in group["rules"]]


def start_prometheus(
    config: Path, port: int, target: str, scrape_configs: list[dict[str, Any]] | None = None
) -> subprocess.Popen[bytes]:
    """Prometheus scraping ``target`` as the job the rules select (or with ``scrape_configs``)."""
    scrape = scrape_configs or [{"job_name": JOB, "static_configs": [{"targets": [target]}]}]
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "scrape_configs": scrape,
            }
        ),
        encoding="utf-8",
    )
    return subprocess.Popen(
        [
            tool("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={config.parent / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def traffic(service: ServiceClient, emulator: Emulator) -> None:
    """A bot's worth of every kind: pictures, a failed page, an upload retried, refusals, readiness."""
    assert (await service.post("/v1/renders", json={"dashboard": "box"})).status_code == 200
    assert (await service.post("/v1/renders", json={"dashboard": "broken"})).status_code == 502
    assert (await service.post("/v1/renders", json={"dashboard": "nope"})).status_code == 404
    await emulator.faults({"kind": "http_500"})
    assert (await service.post("/v1/media", json={"dashboard": "box"})).status_code == 200
    # One render slot and no queue: a second render while the first hangs is refused (429 overloaded).
    hanging = asyncio.ensure_future(
        service.post("/v1/renders", json={"dashboard": "hang", "timeout_ms": 60_000})
    )
    deadline = time.monotonic() + DATA_TIMEOUT_S
    while (await Metrics.read(service)).value("screenshot_renders_in_flight") < 1:
        assert time.monotonic() < deadline, "the hanging render never took its slot"
    assert (await service.post("/v1/renders", json={"dashboard": "box"})).status_code == 429
    hanging.cancel()  # the client hangs up: the service cancels the render and frees the slot
    with contextlib.suppress(asyncio.CancelledError):
        await hanging
    assert (await wait_until_ready(service)).status_code == 200


async def test_a_real_prometheus_scrapes_the_service_and_every_rule_and_panel_has_data(
    dashboards_file: Path, meta_emulator_url: str, emulator: Emulator, tmp_path: Path, no_backoff: None
) -> None:
    env = meta_env(
        meta_emulator_url,
        tmp_path / "images",
        dashboards_file=str(dashboards_file),
        render_concurrency="1",
        render_queue_size="0",
        browser_recycle_after="3",  # so the recycle panel has data too
    )
    async with running_service(env) as service:
        config, port = tmp_path / "prometheus.yml", closed_port()
        process = start_prometheus(config, port, f"127.0.0.1:{service.base_url.port}")
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                prometheus = Prometheus(client)
                await wait_for_prometheus(client, process)
                await prometheus.wait_for(f'up{{job="{JOB}"}} == 1')
                # Twice, with a scrape between: rates need a counter that grew between two samples.
                await traffic(service, emulator)
                await prometheus.wait_for('screenshot_renders_total{outcome="render-failed"}')
                await traffic(service, emulator)

                for record in recording_rules():
                    await prometheus.wait_for(record)
                for title, query in panel_queries():
                    expr = as_prometheus_sees_it(query)
                    assert "$" not in expr, f"{title}: a variable the test does not fill in"
                    await prometheus.wait_for(expr)
                for rule in await prometheus.rules():
                    assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"
                loaded = {rule["name"] for rule in await prometheus.rules()}
                assert loaded == set(recording_rules()) | set(alert_names())
        finally:
            process.terminate()
            process.wait(timeout=30)


async def test_a_real_prometheus_scrapes_metrics_behind_the_token(tmp_path: Path) -> None:
    """SCREENSHOT_METRICS_TOKEN as an operator deploys it: a scrape config with the token's file gets
    the metrics, one without it is refused (the ServiceMonitor's ``authorization`` does the same)."""
    token = "metrics-Pq7Rw2Xz9Ls4Vn8Kt3Jb"
    token_file = tmp_path / "metrics-token"
    token_file.write_text(token, encoding="utf-8")
    async with running_service({"metrics_token": token}) as service:
        target = [{"targets": [f"127.0.0.1:{service.base_url.port}"]}]
        jobs: list[dict[str, Any]] = [
            {
                "job_name": "with-token",
                "static_configs": target,
                "authorization": {"credentials_file": str(token_file)},
            },
            {"job_name": "without-token", "static_configs": target},
        ]
        config, port = tmp_path / "prometheus.yml", closed_port()
        process = start_prometheus(config, port, "", scrape_configs=jobs)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                prometheus = Prometheus(client)
                await wait_for_prometheus(client, process)
                await prometheus.wait_for('up{job="with-token"} == 1')
                await prometheus.wait_for('up{job="without-token"} == 0')
                await prometheus.wait_for('screenshot_http_requests_total{job="with-token"}')
                assert not await prometheus.has_data('screenshot_http_requests_total{job="without-token"}')
        finally:
            process.terminate()
            process.wait(timeout=30)


async def wait_for_prometheus(client: httpx.AsyncClient, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + DATA_TIMEOUT_S
    while True:
        assert process.poll() is None, "prometheus exited"
        try:
            if (await client.get("/-/ready")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "prometheus did not get ready"
        await asyncio.sleep(0.2)


def test_panel_queries_name_only_metrics_the_service_exports() -> None:
    """A typo in a panel would show an empty graph forever: every metric a query names is ours."""
    exported = {
        name
        for value in vars(metrics).values()
        if hasattr(value, "_name")
        for name in (value._name, f"{value._name}_total", f"{value._name}_bucket")
    }
    exported |= {"up"} | set(recording_rules())
    for title, query in panel_queries():
        for name in re.findall(r"\b(screenshot[:_][a-z0-9_:]+|up)\b(?=\s*[{\[)])", query):
            assert name in exported, f"{title}: {name}"
