"""Settings from the environment and the dashboards file: a wrong value names what to fix."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from screenshot_service.app import create_app
from screenshot_service.dashboards.config import load_dashboards
from screenshot_service.settings import ConfigError, Secret, load_settings

KEYS = {"SCREENSHOT_API_KEYS": "n8n:n8n-key-4f9c2a71e8b3d605"}


def test_defaults_and_types() -> None:
    settings = load_settings({**KEYS, "SCREENSHOT_PORT": "9000", "SCREENSHOT_MAX_SCALE": "2.5"})
    assert settings.port == 9000
    assert settings.max_scale == 2.5
    assert settings.api_keys == {"n8n": "n8n-key-4f9c2a71e8b3d605"}
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


@pytest.mark.parametrize(
    ("keys", "reason"),
    [
        pytest.param("n8n:aaaaaaaaaaaaaaaaaaaa", "different characters", id="one-character"),
        pytest.param("n8n:abababababababababab", "different characters", id="two-characters"),
        pytest.param("n8n:abcdefghijklmnopqrstuvwxyz", "entropy", id="a-run"),
        pytest.param("n8n:0123456789abcdef0123", "entropy", id="digits-then-letters"),
        pytest.param("n8n:qwertyuiopasdfghjkl", "entropy", id="keyboard-row"),
        pytest.param("n8n:change-me-to-a-long-random-key", "placeholder", id="placeholder"),
        pytest.param("n8n:MySuperSecretKey!2024x", "placeholder", id="placeholder-word"),
        pytest.param("n8n:n8n-key-4f9c2a71e8b3d605,n8n:other-Jd5nB1cY6tH0gF2sQ8u", "twice", id="same-name"),
        pytest.param(
            "n8n:n8n-key-4f9c2a71e8b3d605,bot:n8n-key-4f9c2a71e8b3d605", "another name", id="same-key"
        ),
    ],
)
def test_weak_or_duplicate_keys_stop_start_up(keys: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=rf"SCREENSHOT_API_KEYS: .*{reason}") as raised:
        load_settings({"SCREENSHOT_API_KEYS": keys})
    for key in (entry.partition(":")[2] for entry in keys.split(",")):
        assert key not in str(raised.value)  # a weak key is still a secret


@pytest.mark.parametrize("key", [secrets.token_hex(16), secrets.token_hex(24), secrets.token_urlsafe(24)])
def test_random_keys_pass(key: str) -> None:
    assert load_settings({"SCREENSHOT_API_KEYS": f"n8n:{key}"}).api_keys == {"n8n": key}


def test_keys_never_show_in_repr() -> None:
    settings = load_settings({**KEYS, "SCREENSHOT_META_ACCESS_TOKEN": "EAAG-meta-token"})
    assert "n8n-key-4f9c2a71e8b3d605" not in repr(settings)
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
    assert file.dashboards["ops"].split is True


@pytest.mark.parametrize(
    ("viewport", "size"),
    [
        pytest.param('"phone"', (390, 844, 2.0), id="phone"),
        pytest.param('"desktop"', (1280, 800, 1.0), id="desktop"),
        pytest.param("{ width = 800, height = 600 }", (800, 600, 1.0), id="explicit"),
    ],
)
def test_a_viewport_is_a_size_or_a_preset(
    tmp_path: Path, viewport: str, size: tuple[int, int, float]
) -> None:
    path = tmp_path / "dashboards.toml"
    path.write_text(f'[dashboards.a]\nurl = "http://x/"\nviewport = {viewport}', encoding="utf-8")
    view = load_dashboards(str(path), {}).dashboards["a"].view
    assert (view.width, view.height, view.scale) == size


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
        pytest.param(
            '[dashboards.a]\nurl = "http://x/"\nviewport = "tablet"', "viewport", id="viewport-preset"
        ),
        pytest.param('[dashboards.a]\nurl = "http://x/"\nsplit = "yes"', "split", id="split"),
        pytest.param('[dashboards.a]\nurl = "http://x/"\npanels = ""', "panels", id="empty-panels"),
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
