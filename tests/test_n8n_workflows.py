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
STICKY = "n8n-nodes-base.stickyNote"
SENDERS = {"Send text", "Send image"}
GRAPH = "https://graph.facebook.com/"


def nodes(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """The workflow's nodes, without its sticky notes (which are not wired)."""
    return [n for n in workflow["nodes"] if n["type"] != STICKY]


def node(workflow: dict[str, Any], name: str) -> dict[str, Any]:
    return next(n for n in workflow["nodes"] if n["name"] == name)


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
    names = {n["name"] for n in nodes(workflow)}
    links = list(targets(workflow))
    assert {s for s, _, _ in links} | {t for _, _, t in links} <= names
    fed = {t for _, _, t in links}
    feeding = {s for s, _, _ in links}
    for each in nodes(workflow):
        if each["type"] in TRIGGERS:
            assert each["name"] not in fed
            assert each["name"] in feeding
        else:
            assert each["name"] in fed, f"{each['name']} has no input"
    assert len({n["name"] for n in workflow["nodes"]}) == len(workflow["nodes"]), "node names must be unique"


def test_every_switch_output_goes_somewhere() -> None:
    workflow = load(BOT)
    for each in workflow["nodes"]:
        if each["type"] == "n8n-nodes-base.switch":
            outputs = workflow["connections"][each["name"]]["main"]
            assert len(outputs) == len(each["parameters"]["rules"]["values"])
            assert all(outputs), f"{each['name']} has an output that goes nowhere"


def test_only_the_senders_end_the_bot() -> None:
    workflow = load(BOT)
    ends = {n["name"] for n in nodes(workflow)} - {s for s, _, _ in targets(workflow)}
    assert ends == SENDERS - {"Send image"}  # pictures are sent in a loop that ends when all are
    assert ("Image, retry or failure", 0, "One message per part") in targets(workflow)


def test_several_parts_are_sent_one_at_a_time_in_order() -> None:
    """The WhatsApp node sends a node's items at once; a loop of one item sends the parts in order."""
    workflow = load(BOT)
    loop = node(workflow, "Each part in turn")
    assert (loop["type"], loop["typeVersion"]) == ("n8n-nodes-base.splitInBatches", 3)
    assert loop["parameters"]["batchSize"] == 1
    assert ("One message per part", 0, "Each part in turn") in targets(workflow)
    assert workflow["connections"]["Each part in turn"]["main"][0] == []  # done: nothing left to send
    assert ("Each part in turn", 1, "Send image") in targets(workflow)
    assert ("Send image", 0, "Each part in turn") in targets(workflow)


def test_repeated_deliveries_are_dropped_by_message_id_before_anything_else() -> None:
    workflow = load(BOT)
    dedup = node(workflow, "Skip repeated deliveries")
    assert dedup["type"] == "n8n-nodes-base.removeDuplicates"
    assert dedup["parameters"]["operation"] == "removeItemsSeenInPreviousExecutions"
    assert dedup["parameters"]["dedupeValue"] == "={{ $json.messageId }}"
    assert ("Parse message", 0, "Skip repeated deliveries") in targets(workflow)
    assert ("Skip repeated deliveries", 0, "Check sender") in targets(workflow)


def test_the_message_is_marked_read_before_the_service_is_asked() -> None:
    workflow = load(BOT)
    ack = node(workflow, "Mark read, show typing")
    params = ack["parameters"]
    assert (params["authentication"], params["nodeCredentialType"]) == (
        "predefinedCredentialType",
        "whatsAppApi",
    )
    assert params["url"].startswith(f"={GRAPH}")
    assert "status: 'read'" in params["jsonBody"]
    assert "typing_indicator: { type: 'text' }" in params["jsonBody"]
    assert ack["onError"] == "continueRegularOutput", "a failed read receipt must not cost the answer"
    assert ("Route", 1, "Mark read, show typing") in targets(workflow)
    assert ("Mark read, show typing", 0, "Use cached dashboards") in targets(workflow)


def test_a_retry_waits_then_renders_again() -> None:
    workflow = load(BOT)
    assert ("Image, retry or failure", 1, "Wait before retrying") in targets(workflow)
    assert ("Wait before retrying", 0, "Render dashboard") in targets(workflow)
    wait = node(workflow, "Wait before retrying")["parameters"]
    assert (wait["amount"], wait["unit"]) == ("={{ $json.waitSeconds }}", "seconds")


def test_bot_starts_at_the_whatsapp_trigger_for_messages() -> None:
    [trigger] = [n for n in load(BOT)["nodes"] if n["type"] in TRIGGERS]
    assert trigger["type"] == "n8n-nodes-base.whatsAppTrigger"
    assert trigger["parameters"]["updates"] == ["messages"]
    # An empty list makes the trigger drop status updates before a run starts.
    assert trigger["parameters"]["options"]["messageStatusUpdates"] == []


def test_error_workflow_is_linked() -> None:
    assert load(BOT)["settings"]["errorWorkflow"] == load(ERROR_HANDLER)["id"]


CREDENTIALS = {
    "whatsAppTriggerApi": "WhatsApp OAuth account",
    "httpHeaderAuth": "Screenshot service API key",
    "whatsAppApi": "WhatsApp account",
}


@pytest.mark.parametrize("path", WORKFLOWS)
def test_credentials_are_found_by_name_on_import(path: Path) -> None:
    for each in load(path)["nodes"]:
        for kind, ref in each.get("credentials", {}).items():
            # n8n looks a credential up by type and name only when its id is null: with the id left
            # out, its import binds the first credential of the type, and the editor's Import from
            # File drops the reference (workflow-helpers.js, useCanvasOperations).
            assert ref == {"id": None, "name": CREDENTIALS[kind]}, f"{each['name']}'s {kind}"


def test_service_calls_use_the_api_key_credential() -> None:
    calls = [
        n
        for n in load(BOT)["nodes"]
        if n["type"] == "n8n-nodes-base.httpRequest" and "genericAuthType" in n["parameters"]
    ]
    assert {n["name"] for n in calls} == {"Fetch dashboards", "Render dashboard"}
    for call in calls:
        params = call["parameters"]
        assert (params["authentication"], params["genericAuthType"]) == (
            "genericCredentialType",
            "httpHeaderAuth",
        )
        assert call["credentials"]["httpHeaderAuth"]["name"] == "Screenshot service API key"
        assert params["url"].startswith("={{ $('Config').first().json.serviceUrl")
        headers = {h["name"]: h["value"] for h in params["headerParameters"]["parameters"]}
        assert headers == {"X-Request-ID": "={{ $execution.id }}"}
        assert call["onError"] == "continueRegularOutput"
        assert params["options"]["response"]["response"] == {
            "fullResponse": True,
            "neverError": True,
            # As text, every answer keeps its status: "json" makes a proxy's HTML 502 or a text 429 an
            # error without one. The Code nodes parse the problem (application/problem+json) themselves.
            "responseFormat": "text",
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
    text = json.dumps([n for n in nodes(workflow) if n["name"] != "Config"]).replace(GRAPH, "")
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
        if key not in {"jsCode", "notes", "content"}:
            assert not SECRET_WORDS.search(value), f"{key} looks like it holds a secret: {value[:60]!r}"


def test_the_error_workflow_tells_the_operator() -> None:
    workflow = load(ERROR_HANDLER)
    names = [a["name"] for a in node(workflow, "Config")["parameters"]["assignments"]["assignments"]]
    assert names == ["operatorNumber", "phoneNumberId", "operatorWebhookUrl"]
    assert ("Notify where", 0, "Tell the operator on WhatsApp") in targets(workflow)
    assert ("Notify where", 1, "Tell the operator by webhook") in targets(workflow)
    assert node(workflow, "Notify where")["parameters"]["options"] == {"allMatchingOutputs": True}


def test_sticky_notes_tell_what_to_set_up() -> None:
    for path in (BOT, ERROR_HANDLER):
        notes = [n["parameters"]["content"] for n in load(path)["nodes"] if n["type"] == STICKY]
        assert any(note.startswith("## Set up") and "Publish" in note for note in notes), path.name


def test_fixtures_are_metas_webhook_payloads() -> None:
    for path in FIXTURES.glob("*.json"):
        body = json.loads(path.read_text(encoding="utf-8"))
        assert body["object"] == "whatsapp_business_account"
        assert body["entry"][0]["changes"][0]["field"] == "messages"
