"""The exported n8n workflows' structure: wiring, credentials by name, one place for settings, no secrets."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from screenshot_service.settings import Settings

from .n8nkit import BOT, ERROR_HANDLER, FIXTURES, load

WORKFLOWS = [pytest.param(BOT, id="bot"), pytest.param(ERROR_HANDLER, id="error-handler")]
TRIGGERS = {"n8n-nodes-base.whatsAppTrigger", "n8n-nodes-base.errorTrigger"}
SENDERS = {"Send text", "Send image"}


def targets(workflow: dict[str, Any]) -> Iterator[tuple[str, int, str]]:
    """(source node, output index, target node) for every connection."""
    for source, kinds in workflow["connections"].items():
        for index, output in enumerate(kinds["main"]):
            for link in output:
                yield source, index, link["node"]


def strings(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """Every (key, string value) in a JSON document, nested ones included."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from strings(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v, key)
    elif isinstance(value, str):
        yield key, value


@pytest.mark.parametrize("path", WORKFLOWS)
def test_every_node_is_connected(path: Path) -> None:
    workflow = load(path)
    names = {n["name"] for n in workflow["nodes"]}
    links = list(targets(workflow))
    assert {s for s, _, _ in links} | {t for _, _, t in links} <= names
    fed = {t for _, _, t in links}
    feeding = {s for s, _, _ in links}
    for node in workflow["nodes"]:
        if node["type"] in TRIGGERS:
            assert node["name"] not in fed
            assert node["name"] in feeding
        else:
            assert node["name"] in fed, f"{node['name']} has no input"
    assert len(names) == len(workflow["nodes"]), "node names must be unique"


def test_every_switch_output_goes_somewhere() -> None:
    workflow = load(BOT)
    for node in workflow["nodes"]:
        if node["type"] == "n8n-nodes-base.switch":
            outputs = workflow["connections"][node["name"]]["main"]
            assert len(outputs) == len(node["parameters"]["rules"]["values"])
            assert all(outputs), f"{node['name']} has an output that goes nowhere"


def test_only_the_senders_end_the_bot() -> None:
    workflow = load(BOT)
    ends = {n["name"] for n in workflow["nodes"]} - {s for s, _, _ in targets(workflow)}
    assert ends == SENDERS


def test_bot_starts_at_the_whatsapp_trigger_for_messages() -> None:
    [trigger] = [n for n in load(BOT)["nodes"] if n["type"] in TRIGGERS]
    assert trigger["type"] == "n8n-nodes-base.whatsAppTrigger"
    assert trigger["parameters"]["updates"] == ["messages"]
    # An empty list makes the trigger drop status updates before a run starts.
    assert trigger["parameters"]["options"]["messageStatusUpdates"] == []


def test_error_workflow_is_linked() -> None:
    assert load(BOT)["settings"]["errorWorkflow"] == load(ERROR_HANDLER)["id"]


@pytest.mark.parametrize("path", WORKFLOWS)
def test_credentials_are_referenced_by_name_only(path: Path) -> None:
    for node in load(path)["nodes"]:
        for kind, ref in node.get("credentials", {}).items():
            # n8n's import finds a credential by type and name when the file gives no id.
            assert set(ref) == {"name"}, f"{node['name']} holds more than the name of its {kind}"
            assert ref["name"]


def test_service_calls_use_the_api_key_credential() -> None:
    calls = [n for n in load(BOT)["nodes"] if n["type"] == "n8n-nodes-base.httpRequest"]
    assert {n["name"] for n in calls} == {"Fetch dashboards", "Render dashboard"}
    for node in calls:
        params = node["parameters"]
        assert (params["authentication"], params["genericAuthType"]) == (
            "genericCredentialType",
            "httpHeaderAuth",
        )
        assert node["credentials"]["httpHeaderAuth"]["name"] == "Screenshot service API key"
        assert params["url"].startswith("={{ $('Config').first().json.serviceUrl")
        headers = {h["name"]: h["value"] for h in params["headerParameters"]["parameters"]}
        assert headers == {"X-Request-ID": "={{ $execution.id }}"}
        assert node["onError"] == "continueRegularOutput"
        assert params["options"]["response"]["response"] == {
            "fullResponse": True,
            "neverError": True,
            "responseFormat": "json",  # problems are application/problem+json, which n8n takes for text
        }


def test_render_timeout_is_above_the_services_own() -> None:
    render = next(n for n in load(BOT)["nodes"] if n["name"] == "Render dashboard")
    # The service answers within its whole-request deadline; n8n must not give up before it does.
    [limit] = (f.default for f in msgspec.structs.fields(Settings) if f.name == "request_timeout_ms")
    assert render["parameters"]["options"]["timeout"] > limit


def test_settings_live_in_the_config_node_only() -> None:
    workflow = load(BOT)
    [config] = [n for n in workflow["nodes"] if n["name"] == "Config"]
    names = [a["name"] for a in config["parameters"]["assignments"]["assignments"]]
    assert {"serviceUrl", "allowedNumbers", "answerStrangers"} <= set(names)
    text = json.dumps([n for n in workflow["nodes"] if n["name"] != "Config"])
    assert "https://" not in text, "the service URL must be set in Config only"
    assert "http://" not in text, "the service URL must be set in Config only"
    assert (
        "allowedNumbers"
        in next(n for n in workflow["nodes"] if n["name"] == "Check sender")["parameters"]["jsCode"]
    )


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PHONE = re.compile(r"\+?\d(?:[ \-.]?\d){6,14}")
SECRET_WORDS = re.compile(r"(?i)(api[_-]?key|token|secret|password|bearer|authorization)")


@pytest.mark.parametrize("path", WORKFLOWS)
def test_no_phone_number_or_secret_in_the_file(path: Path) -> None:
    workflow = load(path)
    fixture_numbers = {"97699112233", "4915112345678", "106540352242922", "102290129340398", "15550783881"}
    for key, value in strings(workflow):
        if key in {"id", "webhookId"}:
            continue
        bare = UUID.sub("", value)
        assert not PHONE.search(bare), f"a phone-number-like value in {key}: {value[:60]!r}"
        assert not any(n in value for n in fixture_numbers)
        if key not in {"jsCode", "notes"}:
            assert not SECRET_WORDS.search(value), f"{key} looks like it holds a secret: {value[:60]!r}"


def test_fixtures_are_metas_webhook_payloads() -> None:
    for path in FIXTURES.glob("*.json"):
        body = json.loads(path.read_text(encoding="utf-8"))
        assert body["object"] == "whatsapp_business_account"
        assert body["entry"][0]["changes"][0]["field"] == "messages"
