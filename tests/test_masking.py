"""Masked logs: a full run of the real service, then its logs, problems and metrics are searched for
every secret and the full requester number."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from screenshot_service.guard.phones import Masker, normalise

from .support.service import API_KEY, OTHER_KEY, service_processes

NUMBER = "97688123456"
META_TOKEN = "EAAG-meta-token-never-logged-4242"
DASHBOARD_HEADER = "grafana-header-secret-5151"
DASHBOARD_COOKIE = "grafana-cookie-secret-6161"
HASH_KEY = "log-hash-key-for-tests-7171"
WRONG_KEY = "wrong-key-presented-8181"
METRICS_TOKEN = "metrics-token-never-logged-9Xq4"


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        pytest.param("+976 8812-3456", NUMBER, id="plus-spaces-dashes"),
        pytest.param("97688123456", NUMBER, id="digits"),
        pytest.param("+1 (202) 555-0147", "12025550147", id="parentheses"),
        pytest.param("976.8812.3456", NUMBER, id="dots"),
        pytest.param("12345", None, id="too-short"),
        pytest.param("1234567890123456", None, id="too-long"),
        pytest.param("0976 9911 2233", None, id="trunk-prefix"),
        pytest.param("++97699112233", None, id="double-plus"),
        pytest.param("９７６９９１１２２３３", None, id="fullwidth-digits"),  # noqa: RUF001
    ],
)
def test_normalise(written: str, expected: str | None) -> None:
    assert normalise(written) == expected


def test_mask_is_stable_per_key_and_keyed() -> None:
    masked = Masker(HASH_KEY).mask(NUMBER)
    assert re.fullmatch(r"…456#[0-9a-f]{8}", masked)
    assert Masker(HASH_KEY).mask(NUMBER) == masked
    assert Masker("another-key-000000").mask(NUMBER) != masked
    assert Masker(None).mask(NUMBER) != Masker(None).mask(NUMBER)  # random key per process


def test_full_run_logs_no_secret_and_no_number(tmp_path: Path, pages_url: str) -> None:
    dashboards = tmp_path / "dashboards.toml"
    dashboards.write_text(
        f"""
[dashboards.sales]
url = "{pages_url}/demo/sales?range=7d"
wait = {{ selector = "body[data-ready='true']" }}
headers_env = {{ "X-Grafana-Token" = "GRAFANA_TOKEN" }}
cookies = [{{ name = "grafana_session", value_env = "GRAFANA_SESSION" }}]
""",
        encoding="utf-8",
    )
    env = {
        "SCREENSHOT_API_KEYS": f"n8n:{API_KEY},other:{OTHER_KEY}",
        "SCREENSHOT_DASHBOARDS_FILE": str(dashboards),
        "SCREENSHOT_META_ACCESS_TOKEN": META_TOKEN,
        "SCREENSHOT_META_PHONE_NUMBER_ID": "1234567",
        "SCREENSHOT_LOG_HASH_KEY": HASH_KEY,
        "SCREENSHOT_METRICS_TOKEN": METRICS_TOKEN,
        "SCREENSHOT_LOG_LEVEL": "debug",
        "SCREENSHOT_RATE_LIMIT_PER_PHONE": "2/minute",
        "SCREENSHOT_RATE_LIMIT_PER_KEY": "8/minute",
        "SCREENSHOT_PHONE_ALLOWLIST": f"+{NUMBER}",
        "GRAFANA_TOKEN": DASHBOARD_HEADER,
        "GRAFANA_SESSION": DASHBOARD_COOKIE,
    }
    answers: list[str] = []
    with (
        service_processes(env) as (service,),
        httpx.Client(base_url=service.base, headers={"X-API-Key": API_KEY}, timeout=30) as client,
    ):

        def render(body: dict[str, object], **headers: str) -> httpx.Response:
            response = client.post("/v1/renders", json=body, headers=headers)
            answers.append(response.text if response.status_code != 200 else "")
            return response

        ok = render({"dashboard": "sales", "requester": "+976 8812-3456"}, **{"X-Request-ID": "run-1"})
        assert ok.status_code == 200, ok.text
        assert render({"dashboard": "nope", "requester": NUMBER}).status_code == 404
        assert render({"dashboard": "sales", "requester": NUMBER}).status_code == 429  # per phone
        assert render({"dashboard": "sales", "requester": "97600000001"}).status_code == 403
        assert render({"dashboard": "sales", "requester": f"{NUMBER}x"}).status_code == 422
        assert render({"url": f"{service.base}/", "requester": NUMBER}).status_code in (403, 429)
        assert render({"dashboard": "sales"}, **{"X-API-Key": WRONG_KEY}).status_code == 401
        assert render({"dashboard": "sales"}, **{"X-API-Key": META_TOKEN}).status_code == 401
        assert (
            render(
                {"dashboard": "sales"}, **{"X-API-Key": "", "Authorization": f"Bearer {DASHBOARD_HEADER}"}
            ).status_code
            == 401
        )
        for _ in range(3):
            render({"dashboard": "nope"})
        assert render({"dashboard": "nope"}).status_code == 429  # per key
        assert render({"dashboard": "sales"}, **{"X-API-Key": METRICS_TOKEN}).status_code == 401
        refused = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN[:-1]}"})
        assert refused.status_code == 401
        answers.append(refused.text)
        scraped = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert scraped.status_code == 200
        answers.append(scraped.text)
        answers.append(client.get("/openapi/openapi.json").text)
    output = service.log
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    renders = [line for line in lines if line.get("event") == "render"]
    assert len(renders) == 1
    assert renders[0]["request_id"] == "run-1"
    assert renders[0]["requester"] == Masker(HASH_KEY).mask(NUMBER)
    assert any(line.get("event") == "rate limited" and line["scope"] == "phone" for line in lines)
    everything = output + "\n".join(answers)
    secrets = (API_KEY, OTHER_KEY, META_TOKEN, DASHBOARD_HEADER, DASHBOARD_COOKIE, HASH_KEY, WRONG_KEY)
    for secret in (*secrets, METRICS_TOKEN):
        assert secret not in everything, secret[:6]
    for number in (NUMBER, "8812-3456", "88123456", "97600000001"):
        assert number not in everything, number[-3:]
