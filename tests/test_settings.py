"""Settings from the environment and the dashboards file: a wrong value names what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from screenshot_service.app import create_app
from screenshot_service.dashboards.config import load_dashboards
from screenshot_service.settings import ConfigError, Secret, load_settings

KEYS = {"SCREENSHOT_API_KEYS": "n8n:0123456789abcdef0123"}


def test_defaults_and_types() -> None:
    settings = load_settings({**KEYS, "SCREENSHOT_PORT": "9000", "SCREENSHOT_MAX_SCALE": "2.5"})
    assert settings.port == 9000
    assert settings.max_scale == 2.5
    assert settings.api_keys == {"n8n": "0123456789abcdef0123"}
    assert settings.self_url == "http://127.0.0.1:9000"


@pytest.mark.parametrize(
    ("env", "names"),
    [
        pytest.param({"SCREENSHOT_PORT": "eighty"}, "SCREENSHOT_PORT", id="not-a-number"),
        pytest.param({"SCREENSHOT_PORT": "70000"}, "SCREENSHOT_PORT", id="out-of-range"),
        pytest.param({"SCREENSHOT_ENGINE": "firefox"}, "SCREENSHOT_ENGINE", id="not-a-choice"),
        pytest.param(
            {"SCREENSHOT_RENDER_CONCURRENCY": "0"}, "SCREENSHOT_RENDER_CONCURRENCY", id="zero-slots"
        ),
        pytest.param({"SCREENSHOT_PROT": "80"}, "SCREENSHOT_PROT", id="typo"),
        pytest.param({"SCREENSHOT_API_KEYS": "justakey"}, "SCREENSHOT_API_KEYS", id="key-without-name"),
        pytest.param({"SCREENSHOT_API_KEYS": "n8n:short"}, "SCREENSHOT_API_KEYS", id="short-key"),
    ],
)
def test_wrong_values_name_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        load_settings({**KEYS, **env})


def test_keys_never_show_in_repr() -> None:
    settings = load_settings({**KEYS, "SCREENSHOT_META_ACCESS_TOKEN": "EAAG-meta-token"})
    assert "0123456789abcdef0123" not in repr(settings)
    assert "EAAG-meta-token" not in repr(settings)
    assert isinstance(settings.meta_access_token, Secret)
    assert settings.meta_access_token.reveal() == "EAAG-meta-token"


def test_refuses_to_start_without_an_api_key() -> None:
    with pytest.raises(ConfigError, match="SCREENSHOT_API_KEYS"):
        create_app(load_settings({}))


def test_demo_dashboards_load() -> None:
    file = load_dashboards("", {})
    assert file.default == "sales"
    assert file.dashboards["sales"].params["range"].default == "today"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        pytest.param(
            '[dashboards.a]\nurl = "http://x/{missing}"', "placeholders without a param: missing", id="param"
        ),
        pytest.param('[dashboards.A]\nurl = "http://x/"', "name must be lower-case", id="name"),
        pytest.param(
            '[dashboards.a]\nurl = "http://x/"\nwait = { until = "never" }', "until", id="wait-until"
        ),
        pytest.param('[dashboards.a]\nurl = "http://x/"\nzoom = 2', "zoom", id="unknown-key"),
        pytest.param('default = "b"\n[dashboards.a]\nurl = "http://x/"', "default 'b'", id="default"),
        pytest.param(
            '[dashboards.a]\nurl = "http://x/"\nheaders_env = { "X-T" = "NOT_SET_ANYWHERE" }',
            "NOT_SET_ANYWHERE is not set",
            id="secret-env",
        ),
        pytest.param(
            '[dashboards.a]\nurl = "http://x/{r}"\n'
            '[dashboards.a.params.r]\ndefault = "x y"\npattern = "[a-z]+"',
            "does not match its pattern",
            id="default-vs-pattern",
        ),
        pytest.param(
            '[dashboards.a]\nurl = "http://x/{r}"\n[dashboards.a.params.r]\nvalues = []',
            "list at least one value",
            id="no-values",
        ),
        pytest.param(
            '[dashboards.a]\nurl = "http://x/{r}"\n[dashboards.a.params.r]\ndefault = "1y"\nvalues = ["7d"]',
            "does not match its pattern",
            id="default-not-a-value",
        ),
    ],
)
def test_bad_dashboards_file(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "dashboards.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_dashboards(str(path), {})


def test_missing_dashboards_file_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="SCREENSHOT_DASHBOARDS_FILE"):
        load_dashboards("/nonexistent/dashboards.toml", {})
