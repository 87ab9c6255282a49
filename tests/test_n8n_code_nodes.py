"""The JavaScript of every Code node in the n8n workflows, run under Node with the inputs n8n gives it."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from screenshot_service.dashboards.catalog import Catalog
from screenshot_service.settings import load_settings

from .n8nkit import ALLOWED, BOT, ERROR_HANDLER, load, payload, run_code_node

STRANGER = "4915112345678"
PHONE_NUMBER_ID = "106540352242922"
TESTED = {
    "Parse message",
    "Check sender",
    "Plan request",
    "Read render result",
    "Explain failure",
    "Summarise failure",
}


def config(**overrides: Any) -> dict[str, Any]:
    """The Config node's values as the workflow ships them, with the operator's edits."""
    node = next(n for n in load(BOT)["nodes"] if n["name"] == "Config")
    values = {a["name"]: a["value"] for a in node["parameters"]["assignments"]["assignments"]}
    return {**values, "allowedNumbers": ALLOWED, **overrides}


def parse(*items: dict[str, Any]) -> list[dict[str, Any]]:
    return run_code_node(BOT, "Parse message", list(items), {"Config": [config()]})


def dashboards_answer() -> dict[str, Any]:
    """GET /v1/dashboards for the demo dashboards, as the service encodes it, in n8n's full-response shape."""
    catalog = Catalog.load(load_settings({"SCREENSHOT_API_KEYS": "t:n8n-key-4f9c2a71e8b3d605"}))
    body = msgspec.to_builtins(catalog.describe())
    return {"statusCode": 200, "statusMessage": "OK", "headers": {}, "body": body}


def message(text: str, sender: str = ALLOWED) -> dict[str, Any]:
    return parse({"body": _text_payload(text, sender)})[0]


def _text_payload(text: str, sender: str) -> dict[str, Any]:
    body = payload("text-help")
    value = body["entry"][0]["changes"][0]["value"]
    value["messages"][0]["text"]["body"] = text
    value["messages"][0]["from"] = sender
    return body


def trigger_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """What the WhatsApp Trigger node emits for a webhook body: each change's value, with its field
    (``WhatsAppTrigger.node.ts``'s ``webhook()``)."""
    return [
        {**change["value"], "field": change["field"]}
        for entry in body["entry"]
        for change in entry["changes"]
    ]


def test_every_code_node_is_tested_here() -> None:
    names = {
        n["name"]
        for wf in (BOT, ERROR_HANDLER)
        for n in load(wf)["nodes"]
        if n["type"] == "n8n-nodes-base.code"
    }
    assert names == TESTED


# --- Parse message ------------------------------------------------------------------------------

HELP = config()["helpText"]


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        pytest.param("text-help", {"action": "reply", "text": HELP}, id="help-any-case-and-spaces"),
        pytest.param("text-list", {"action": "list"}, id="list"),
        pytest.param(
            "text-sales-7d", {"action": "render", "dashboard": "sales", "args": ["7d"]}, id="sales-7d"
        ),
        pytest.param(
            "text-unknown", {"action": "render", "dashboard": "борлуулалт", "args": []}, id="unknown"
        ),
        pytest.param("image-message", {"action": "reply", "text": HELP}, id="image-gets-help"),
    ],
)
@pytest.mark.parametrize("shape", ["webhook-node", "whatsapp-trigger"])
def test_parse_reads_each_message(fixture: str, expected: dict[str, Any], shape: str) -> None:
    body = payload(fixture)
    items = [{"body": body, "headers": {}, "query": {}}] if shape == "webhook-node" else trigger_items(body)
    [item] = parse(*items)
    assert item == {
        "from": ALLOWED,
        "phoneNumberId": PHONE_NUMBER_ID,
        "messageId": body["entry"][0]["changes"][0]["value"]["messages"][0]["id"],
        **expected,
    }


@pytest.mark.parametrize("fixture", ["status-delivered", "status-failed"])
@pytest.mark.parametrize("shape", ["webhook-node", "whatsapp-trigger"])
def test_parse_ignores_status_updates(fixture: str, shape: str) -> None:
    body = payload(fixture)
    items = [{"body": body}] if shape == "webhook-node" else trigger_items(body)
    assert parse(*items) == []


@pytest.mark.parametrize(
    ("text", "dashboard", "args"),
    [("  SALES   7D ", "sales", ["7d"]), ("Revenue\t30d", "revenue", ["30d"]), ("sales", "sales", [])],
)
def test_parse_is_case_and_space_insensitive(text: str, dashboard: str, args: list[str]) -> None:
    item = message(text)
    assert (item["action"], item["dashboard"], item["args"]) == ("render", dashboard, args)


def test_parse_gives_one_item_per_message_in_a_batch() -> None:
    body = payload("text-list")
    value = body["entry"][0]["changes"][0]["value"]
    value["messages"].append({**value["messages"][0], "text": {"body": "help"}})
    assert [i["action"] for i in parse({"body": body})] == ["list", "reply"]


def test_parse_skips_other_webhook_fields_and_objects() -> None:
    body = payload("text-list")
    body["entry"][0]["changes"][0]["field"] = "account_update"
    assert parse({"body": body}) == []
    assert parse({"body": {"object": "page", "entry": []}}) == []


# --- Check sender ---------------------------------------------------------------------------------


def check(items: list[dict[str, Any]], **settings: Any) -> list[dict[str, Any]]:
    return run_code_node(BOT, "Check sender", items, {"Config": [config(**settings)]})


def test_allowed_sender_passes_unchanged() -> None:
    item = message("sales 7d")
    assert check([item]) == [item]


@pytest.mark.parametrize("listed", ["+976 9911-2233", "4912345, +976 9911 2233", "4912345\n97699112233"])
def test_allowlist_entries_are_compared_as_digits(listed: str) -> None:
    item = message("sales")
    assert check([item], allowedNumbers=listed) == [item]


def test_stranger_gets_one_polite_refusal() -> None:
    [item] = parse({"body": payload("text-stranger")})
    assert check([item]) == [
        {
            "from": STRANGER,
            "phoneNumberId": PHONE_NUMBER_ID,
            "action": "reply",
            "text": config()["refusalText"],
        }
    ]


def test_stranger_gets_nothing_when_so_configured() -> None:
    [item] = parse({"body": payload("text-stranger")})
    assert check([item], answerStrangers=False) == []


def test_empty_allowlist_lets_nobody_render() -> None:
    assert check([message("sales")], allowedNumbers="")[0]["action"] == "reply"


# --- Plan request ---------------------------------------------------------------------------------


def plan(text: str, answer: dict[str, Any] | None = None) -> dict[str, Any]:
    msg = message(text)
    [out] = run_code_node(
        BOT, "Plan request", [answer or dashboards_answer()], {"Config": [config()], "Check sender": [msg]}
    )
    return out


def test_plan_maps_positional_options_to_params_in_order() -> None:
    assert plan("Sales 7d") == {
        "from": ALLOWED,
        "phoneNumberId": PHONE_NUMBER_ID,
        "action": "render",
        "dashboard": "sales",
        "title": "Sales",
        "params": {"range": "7d"},
        "request": {"dashboard": "sales", "params": {"range": "7d"}, "requester": ALLOWED},
    }


def test_plan_leaves_missing_options_to_the_defaults() -> None:
    assert plan("revenue")["request"] == {"dashboard": "revenue", "params": {}, "requester": ALLOWED}


def test_plan_lists_dashboards_by_title_and_name() -> None:
    reply = plan("list")
    assert reply["action"] == "reply"
    assert "• Sales: *sales [range]*" in reply["text"]
    assert "• Revenue: *revenue [range]*" in reply["text"]


def test_plan_answers_an_unknown_dashboard_with_help() -> None:
    reply = plan("борлуулалт")
    assert reply["action"] == "reply"
    assert reply["text"] == f'I don\'t know "борлуулалт".\n\n{HELP}'


def test_plan_refuses_too_many_options() -> None:
    reply = plan("sales 7d extra")
    assert reply == {
        **reply,
        "action": "reply",
        "text": "*sales* takes these options, in order: *sales [range]*.",
    }


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(
            {"statusCode": 401, "body": {"type": "urn:screenshot-service:problem:unauthorized"}}, id="401"
        ),
        pytest.param({"error": {"message": "connect ECONNREFUSED 127.0.0.1:1"}}, id="unreachable"),
        pytest.param({"statusCode": 200, "body": "<html>"}, id="not-json"),
        pytest.param({"statusCode": 502, "data": "<html>Bad Gateway</html>"}, id="text"),
    ],
)
def test_plan_hands_a_failed_fetch_to_explain_failure(answer: dict[str, Any]) -> None:
    out = plan("sales 7d", answer)
    assert out["action"] == "failed"
    assert out["dashboard"] == "sales"
    body = answer.get("body", answer.get("data"))
    assert out["answer"] == {
        "statusCode": answer.get("statusCode"),
        "body": body,
        "error": answer.get("error"),
    }


# --- Read render result ----------------------------------------------------------------------------


def read_result(answer: dict[str, Any], text: str = "sales 7d") -> dict[str, Any]:
    planned = plan(text)
    [out] = run_code_node(
        BOT,
        "Read render result",
        [answer],
        {"Config": [config(timeZone="Asia/Ulaanbaatar")], "Plan request": [planned]},
    )
    return out


MEDIA = {
    "media_id": "1037543291543636",
    "mime_type": "image/png",
    "bytes": 75957,
    "width": 1280,
    "height": 800,
    "render_ms": 1212,
    "upload_ms": 6,
    "request_id": "4242",
    "cached": False,
    "fitted": None,
}


def test_result_sends_the_image_by_media_id_with_title_options_and_time() -> None:
    out = read_result({"statusCode": 200, "headers": {}, "body": MEDIA})
    assert {k: out[k] for k in ("from", "phoneNumberId", "action", "mediaId")} == {
        "from": ALLOWED,
        "phoneNumberId": PHONE_NUMBER_ID,
        "action": "image",
        "mediaId": "1037543291543636",
    }
    assert out["caption"].startswith("Sales (7d) · ")
    assert any(str(year) in out["caption"] for year in range(2024, 2100))


def test_result_hands_a_problem_to_explain_failure() -> None:
    problem = {"type": "urn:screenshot-service:problem:render-timeout", "status": 504, "detail": "x"}
    out = read_result({"statusCode": 504, "body": problem})
    assert out == {
        "from": ALLOWED,
        "phoneNumberId": PHONE_NUMBER_ID,
        "action": "failed",
        "dashboard": "sales",
        "answer": {"statusCode": 504, "body": problem, "error": None},
    }


# --- Explain failure -------------------------------------------------------------------------------

UNAVAILABLE = "The dashboard service is not available right now. Please try again in a few minutes."
TIMEOUT = "The dashboard took too long to load. Please try again in a moment."
RATE = "You have asked for many pictures just now. Please wait a minute and try again."
BUSY = "Many pictures are being made just now. Please try again in a minute."


def problem(status: int, slug: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "body": {
            "type": f"urn:screenshot-service:problem:{slug}",
            "title": "internal title",
            "status": status,
            "detail": "secret internal detail at /srv/app.py line 12",
            "request_id": "abc123",
        },
    }


@pytest.mark.parametrize(
    ("answer", "sentence"),
    [
        (
            problem(404, "unknown-dashboard"),
            "I don't know *sales*. Send *list* to see the dashboards I can show.",
        ),
        (
            problem(422, "invalid-parameter"),
            "That option is not valid for *sales*. Send *list* to see its options.",
        ),
        (
            problem(422, "invalid-request"),
            "That option is not valid for *sales*. Send *list* to see its options.",
        ),
        (problem(429, "rate-limited"), RATE),
        (problem(403, "requester-not-allowed"), "Sorry, this number is not allowed to use this bot."),
        (problem(504, "render-timeout"), TIMEOUT),
        (problem(502, "render-failed"), "I could not open *sales* just now. Please try again later."),
        (problem(422, "image-too-large"), "*sales* is too big to send as a picture."),
        (problem(503, "browser-unavailable"), UNAVAILABLE),
        (problem(503, "upstream-throttled"), UNAVAILABLE),
        (problem(502, "upstream-error"), UNAVAILABLE),
        (problem(503, "meta-not-configured"), UNAVAILABLE),
        (problem(401, "unauthorized"), UNAVAILABLE),
        (problem(413, "body-too-large"), UNAVAILABLE),
        (problem(429, "overloaded"), BUSY),
        (problem(503, "queue-timeout"), BUSY),
        (problem(502, "page-crashed"), "I could not open *sales* just now. Please try again later."),
        (problem(503, "some-future-problem"), UNAVAILABLE),
        (
            {
                **problem(422, "invalid-parameter"),
                "body": json.dumps(problem(422, "invalid-parameter")["body"]),
            },
            "That option is not valid for *sales*. Send *list* to see its options.",
        ),
        ({"statusCode": 429, "body": "Too Many Requests"}, RATE),
        ({"statusCode": 504, "body": "<html>Gateway Timeout</html>"}, TIMEOUT),
        ({"statusCode": 500, "body": None}, UNAVAILABLE),
        ({"error": {"message": "connect ECONNREFUSED 127.0.0.1:8000"}}, UNAVAILABLE),
        ({"error": {"message": "timeout of 90000ms exceeded", "code": "ECONNABORTED"}}, TIMEOUT),
        ({"error": {"name": "NodeApiError", "description": "ETIMEDOUT"}}, TIMEOUT),
        ({}, UNAVAILABLE),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 20 else None,
)
def test_failures_get_a_short_human_sentence(answer: dict[str, Any], sentence: str) -> None:
    failed = {"from": ALLOWED, "phoneNumberId": PHONE_NUMBER_ID, "action": "failed", "dashboard": "sales"}
    [out] = run_code_node(BOT, "Explain failure", [{**failed, "answer": answer}])
    assert out == {"from": ALLOWED, "phoneNumberId": PHONE_NUMBER_ID, "action": "reply", "text": sentence}


# --- Summarise failure (error workflow) --------------------------------------------------------------


def test_error_summary_names_the_run_and_masks_numbers() -> None:
    error_trigger_item = {
        "execution": {
            "id": "231",
            "url": "https://n8n.example.com/workflow/1/executions/231",
            "retryOf": None,
            "error": {
                "message": "Bad request for +976 9911 2233 (97699112233)",
                "stack": "Error: at secret.js:1",
            },
            "lastNodeExecuted": "Send text",
            "mode": "webhook",
        },
        "workflow": {"id": "WaDashboardBot01", "name": "WhatsApp dashboard bot"},
    }
    [out] = run_code_node(ERROR_HANDLER, "Summarise failure", [error_trigger_item])
    assert out == {
        "workflow": "WhatsApp dashboard bot",
        "executionId": "231",
        "url": "https://n8n.example.com/workflow/1/executions/231",
        "node": "Send text",
        "mode": "webhook",
        "message": "Bad request for …233 (…233)",
    }


def test_error_summary_of_a_trigger_failure() -> None:
    item = {
        "trigger": {
            "error": {"message": "Invalid token", "node": {"name": "WhatsApp Trigger"}},
            "mode": "trigger",
        },
        "workflow": {"name": "WhatsApp dashboard bot"},
    }
    [out] = run_code_node(ERROR_HANDLER, "Summarise failure", [item])
    assert (out["node"], out["mode"], out["message"]) == ("WhatsApp Trigger", "trigger", "Invalid token")
