"""Guard settings: limits, allowlists and networks are checked at start-up, naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from screenshot_service.dashboards.config import load_dashboards
from screenshot_service.settings import ConfigError, load_settings

KEYS = {"SCREENSHOT_API_KEYS": "n8n:n8n-key-4f9c2a71e8b3d605"}


def test_guard_defaults() -> None:
    settings = load_settings(KEYS)
    assert settings.key_rate_limit == ("minute", 60)
    assert settings.phone_rate_limit == ("minute", 10)
    assert not settings.allow_raw_urls
    assert not settings.allow_private_networks
    assert settings.phone_allowlist == frozenset()


def test_guard_values_are_parsed() -> None:
    settings = load_settings(
        {
            **KEYS,
            "SCREENSHOT_RATE_LIMIT_PER_KEY": "off",
            "SCREENSHOT_RATE_LIMIT_PER_PHONE": "5/hour",
            "SCREENSHOT_PHONE_ALLOWLIST": "+976 9911-2233, 97688000111",
            "SCREENSHOT_ALLOW_RAW_URLS": "true",
            "SCREENSHOT_URL_ALLOWLIST": "Grafana.Example.com, *.example.org",
            "SCREENSHOT_ALLOWED_NETWORKS": "10.20.0.0/16, 192.168.1.7",
        }
    )
    assert settings.key_rate_limit is None
    assert settings.phone_rate_limit == ("hour", 5)
    assert settings.phone_allowlist == {"97699112233", "97688000111"}
    assert settings.url_allowlist == ("grafana.example.com", "*.example.org")
    assert settings.allowed_networks == ("10.20.0.0/16", "192.168.1.7/32")


@pytest.mark.parametrize(
    ("env", "names"),
    [
        pytest.param({"SCREENSHOT_RATE_LIMIT_PER_KEY": "60/fortnight"}, "RATE_LIMIT_PER_KEY", id="unit"),
        pytest.param({"SCREENSHOT_RATE_LIMIT_PER_PHONE": "0/minute"}, "RATE_LIMIT_PER_PHONE", id="zero"),
        pytest.param({"SCREENSHOT_PHONE_ALLOWLIST": "976-abc"}, "PHONE_ALLOWLIST", id="phone"),
        pytest.param({"SCREENSHOT_URL_ALLOWLIST": "https://x.com"}, "URL_ALLOWLIST", id="scheme"),
        pytest.param({"SCREENSHOT_URL_ALLOWLIST": "x.com."}, "URL_ALLOWLIST", id="trailing-dot"),
        pytest.param({"SCREENSHOT_URL_ALLOWLIST": "*.com.*"}, "URL_ALLOWLIST", id="wildcard"),
        pytest.param({"SCREENSHOT_URL_ALLOWLIST": "x.com:8080"}, "URL_ALLOWLIST", id="port"),
        pytest.param({"SCREENSHOT_ALLOWED_NETWORKS": "10.0.0.0/33"}, "ALLOWED_NETWORKS", id="cidr"),
        pytest.param({"SCREENSHOT_ALLOW_RAW_URLS": "true"}, "URL_ALLOWLIST", id="raw-without-allowlist"),
    ],
)
def test_wrong_guard_values_name_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        load_settings({**KEYS, **env})


def test_a_parameter_cannot_choose_the_dashboard_host(tmp_path: Path) -> None:
    path = tmp_path / "dashboards.toml"
    path.write_text(
        '[dashboards.a]\nurl = "http://{tenant}.example.com/"\n[dashboards.a.params.tenant]\ndefault = "x"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="scheme, host or port"):
        load_dashboards(str(path), {})
