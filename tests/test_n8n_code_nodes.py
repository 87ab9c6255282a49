"""The JavaScript of every Code node in the n8n workflows, run under Node with the inputs n8n gives it."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import msgspec
import pytest

from screenshot_service.dashboards.catalog import Catalog
from screenshot_service.settings import load_settings

from .n8nkit import (
    ALLOWED,
    BOT,
    CATALOGUE,
    ERROR_HANDLER,
    connection_failed,
    http_answer,
    load,
    payload,
    run_code_node,
    trigger_items,
)

STRANGER = "4915112345678"
PHONE_NUMBER_ID = "106540352242922"
TESTED = {
    "Parse message",
    "Check sender",
    "Use cached dashboards",
    "Plan request",
    "Read render result",
    "One message per part",
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
    """GET /v1/dashboards for the demo dashboards, as the service encodes it and n8n outputs it."""
    catalog = Catalog.load(load_settings({"SCREENSHOT_API_KEYS": "t:n8n-key-4f9c2a71e8b3d605"}))
    return http_answer(200, msgspec.json.encode(catalog.describe()).decode())


def demo_dashboards() -> list[dict[str, Any]]:
    body: dict[str, Any] = json.loads(dashboards_answer()["data"])
    return [{"name": d["name"], "title": d["title"], "params": d["params"]} for d in body["dashboards"]]


def message(text: str, sender: str = ALLOWED) -> dict[str, Any]:
    return parse({"body": _text_payload(text, sender)})[0]


def _text_payload(text: str, sender: str) -> dict[str, Any]:
    body = payload("text-help")
    value = body["entry"][0]["changes"][0]["value"]
    value["messages"][0]["text"]["body"] = text
    value["messages"][0]["from"] = sender
    return body


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
HINT = config()["hintText"]


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        pytest.param("text-help", {"action": "help"}, id="help-any-case-and-spaces"),
        pytest.param("text-list", {"action": "list"}, id="list"),
        pytest.param(
            "text-sales-7d", {"action": "render", "dashboard": "sales", "args": ["7d"]}, id="sales-7d"
        ),
        pytest.param(
            "text-unknown", {"action": "render", "dashboard": "борлуулалт", "args": []}, id="unknown"
        ),
        pytest.param("image-message", {"action": "reply", "text": HINT}, id="image-gets-a-hint"),
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


@pytest.mark.parametrize("fixture", ["status-delivered", "status-failed", "reaction"])
@pytest.mark.parametrize("shape", ["webhook-node", "whatsapp-trigger"])
def test_parse_ignores_status_updates_and_reactions(fixture: str, shape: str) -> None:
    body = payload(fixture)
    items = [{"body": body}] if shape == "webhook-node" else trigger_items(body)
    assert parse(*items) == []


@pytest.mark.parametrize(
    "tapped",
    [
        pytest.param({"type": "button", "button": {"text": "Sales 7d", "payload": "x"}}, id="button"),
        pytest.param(
            {
                "type": "interactive",
                "interactive": {"type": "list_reply", "list_reply": {"id": "r", "title": "sales 7d"}},
            },
            id="list-row",
        ),
    ],
)
def test_parse_reads_a_tapped_button_as_text(tapped: dict[str, Any]) -> None:
    body = payload("text-help")
    msg = body["entry"][0]["changes"][0]["value"]["messages"][0]
    del msg["text"]
    msg.update(tapped)
    [item] = parse({"body": body})
    assert (item["action"], item["dashboard"], item["args"]) == ("render", "sales", ["7d"])


def test_a_first_visit_to_the_chat_gets_the_help() -> None:
    body = payload("text-help")
    msg = body["entry"][0]["changes"][0]["value"]["messages"][0]
    del msg["text"]
    msg["type"] = "request_welcome"
    assert parse({"body": body})[0]["action"] == "help"


@pytest.mark.parametrize(
    "kind", ["image", "sticker", "audio", "video", "document", "location", "contacts", "unsupported"]
)
def test_other_messages_get_the_short_hint(kind: str) -> None:
    body = payload("text-help")
    msg = body["entry"][0]["changes"][0]["value"]["messages"][0]
    del msg["text"]
    msg["type"] = kind
    [item] = parse({"body": body})
    assert (item["action"], item["text"]) == ("reply", HINT)


def test_system_notices_get_nothing() -> None:
    body = payload("text-help")
    msg = body["entry"][0]["changes"][0]["value"]["messages"][0]
    del msg["text"]
    msg.update({"type": "system", "system": {"body": "User changed number", "type": "user_changed_number"}})
    assert parse({"body": body}) == []


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
    value["messages"].append({**value["messages"][0], "id": "wamid.second", "text": {"body": "help"}})
    assert [i["action"] for i in parse({"body": body})] == ["list", "help"]


def test_parse_skips_other_webhook_fields_and_objects() -> None:
    body = payload("text-list")
    body["entry"][0]["changes"][0]["field"] = "account_update"
    assert parse({"body": body}) == []
    assert parse(*trigger_items(body)) == []
    assert parse({"body": {"object": "page", "entry": []}}) == []


# --- Check sender ---------------------------------------------------------------------------------


def check(
    items: list[dict[str, Any]], static: dict[str, Any] | None = None, **settings: Any
) -> list[dict[str, Any]]:
    return run_code_node(
        BOT,
        "Check sender",
        items,
        {"Config": [config(**settings)]},
        static_data=static if static is not None else {},
    )


def test_allowed_sender_passes_unchanged() -> None:
    item = message("sales 7d")
    assert check([item]) == [item]


@pytest.mark.parametrize("listed", ["+976 9911-2233", "4912345, +976 9911 2233", "4912345\n97699112233"])
def test_allowlist_entries_are_compared_as_digits(listed: str) -> None:
    item = message("sales")
    assert check([item], allowedNumbers=listed) == [item]


def stranger() -> dict[str, Any]:
    [item] = parse({"body": payload("text-stranger")})
    return item


def test_stranger_gets_one_polite_refusal_per_window_and_no_number_is_kept() -> None:
    static: dict[str, Any] = {}
    first = check([stranger()], static)
    assert first == [
        {
            "from": STRANGER,
            "phoneNumberId": PHONE_NUMBER_ID,
            "messageId": stranger()["messageId"],
            "action": "reply",
            "text": config()["refusalText"],
        }
    ]
    assert check([stranger()], static) == []
    assert STRANGER not in json.dumps(static)
    assert STRANGER[-7:] not in json.dumps(static)


def test_a_stranger_is_answered_again_after_the_window() -> None:
    static: dict[str, Any] = {}
    check([stranger()], static)
    [key] = static["refused"]
    static["refused"][key] = time.time() * 1000 - 25 * 3600 * 1000
    assert len(check([stranger()], static)) == 1


def test_stranger_gets_nothing_when_so_configured() -> None:
    assert check([stranger()], answerStrangers=False) == []


def test_empty_allowlist_lets_nobody_render() -> None:
    assert check([message("sales")], allowedNumbers="")[0]["action"] == "reply"


# --- Use cached dashboards ------------------------------------------------------------------------


def cached(text: str, static: dict[str, Any]) -> dict[str, Any]:
    ack = http_answer(
        200, '{"success":true}'
    )  # "Mark read, show typing" output; the message comes from Check sender
    [out] = run_code_node(
        BOT,
        "Use cached dashboards",
        [ack],
        {"Config": [config()], "Check sender": [message(text)]},
        static_data=static,
    )
    return out


def test_a_render_uses_a_fresh_cached_list() -> None:
    static = {"dashboards": {"at": time.time() * 1000, "list": demo_dashboards()}}
    out = cached("sales 7d", static)
    assert (out["next"], out["dashboards"], out["action"]) == ("plan", demo_dashboards(), "render")


@pytest.mark.parametrize(
    ("text", "age_s"), [("sales 7d", 301), ("list", 0), ("help", 0)], ids=["stale", "list", "help"]
)
def test_a_stale_cache_help_and_list_ask_the_service(text: str, age_s: int) -> None:
    static = {"dashboards": {"at": (time.time() - age_s) * 1000, "list": demo_dashboards()}}
    out = cached(text, static)
    assert (out["next"], out["dashboards"]) == ("fetch", None)


def test_no_cache_asks_the_service() -> None:
    assert cached("sales", {})["next"] == "fetch"


# --- Plan request ---------------------------------------------------------------------------------


def plan(
    text: str, answer: dict[str, Any] | None = None, static: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Plan request after Fetch dashboards (``answer``), or on the cached path when ``answer`` is None
    and ``static`` holds the list."""
    msg = message(text)
    if answer is None and static is not None:
        item = {**msg, "next": "plan", "dashboards": static["dashboards"]["list"]}
        inputs = [item]
    else:
        item = {**msg, "next": "fetch", "dashboards": None}
        inputs = [answer or dashboards_answer()]
    [out] = run_code_node(
        BOT,
        "Plan request",
        inputs,
        {"Config": [config()], "Use cached dashboards": [item]},
        static_data=static if static is not None else {},
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


def test_plan_keeps_the_fetched_list_and_plans_from_it_next_time() -> None:
    static: dict[str, Any] = {}
    first = plan("sales 7d", dashboards_answer(), static)
    assert static["dashboards"]["list"] == demo_dashboards()
    assert plan("sales 7d", None, static) == first


def test_plan_leaves_missing_options_to_the_defaults() -> None:
    assert plan("revenue")["request"] == {"dashboard": "revenue", "params": {}, "requester": ALLOWED}


def test_list_shows_every_dashboard_with_its_options_and_allowed_values() -> None:
    assert plan("list") == {
        "from": ALLOWED,
        "phoneNumberId": PHONE_NUMBER_ID,
        "action": "reply",
        "text": CATALOGUE,
    }


def test_help_is_the_help_text_and_the_dashboards() -> None:
    assert plan("help")["text"] == f"{HELP}\n\n{CATALOGUE}"


def test_plan_answers_an_unknown_dashboard_with_the_list() -> None:
    reply = plan("борлуулалт")
    assert reply["action"] == "reply"
    assert reply["text"] == f'I don\'t know "борлуулалт".\n\n{CATALOGUE}'


def test_a_value_not_allowed_is_answered_with_the_allowed_ones() -> None:
    reply = plan("sales 1y")
    assert reply["action"] == "reply"
    assert reply["text"] == '*sales* has no range "1y". Choose one of: today, 7d, 30d or 90d.'


def test_plan_refuses_too_many_options() -> None:
    reply = plan("sales 7d extra")
    assert reply["text"] == (
        "*sales* takes these options, in order: *sales [range]*\n"
        "   range: today, 7d, 30d or 90d (default today)"
    )


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        pytest.param(
            http_answer(
                401,
                '{"type":"urn:screenshot-service:problem:unauthorized","status":401}',
                "application/problem+json",
            ),
            401,
            id="401-problem",
        ),
        pytest.param(connection_failed(), None, id="unreachable"),
        pytest.param(http_answer(200, "<html>", "text/html"), 200, id="200-not-json"),
        pytest.param(http_answer(502, "<html>Bad Gateway</html>", "text/html"), 502, id="proxy-502"),
    ],
)
def test_plan_hands_a_failed_fetch_to_explain_failure(answer: dict[str, Any], status: int | None) -> None:
    out = plan("sales 7d", answer)
    assert out["action"] == "failed"
    assert out["dashboard"] == "sales"
    assert out["answer"]["statusCode"] == status
    assert out["answer"]["error"] == answer.get("error")


def test_help_still_helps_when_the_service_is_down() -> None:
    assert plan("help", connection_failed())["text"] == HELP


# --- Read render result ----------------------------------------------------------------------------


def read_result(answer: dict[str, Any], text: str = "sales 7d", run_index: int = 0) -> dict[str, Any]:
    planned = plan(text)
    [out] = run_code_node(
        BOT,
        "Read render result",
        [answer],
        {"Config": [config(timeZone="Asia/Ulaanbaatar")], "Plan request": [planned]},
        run_index=run_index,
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


def problem_answer(status: int, slug: str, **headers: str) -> dict[str, Any]:
    body = {"type": f"urn:screenshot-service:problem:{slug}", "title": "t", "status": status, "detail": "d"}
    return http_answer(status, json.dumps(body), "application/problem+json", **headers)


def test_result_sends_the_image_by_media_id_with_title_options_and_time() -> None:
    out = read_result(http_answer(200, json.dumps(MEDIA)))
    assert {k: out[k] for k in ("from", "phoneNumberId", "action", "mediaId")} == {
        "from": ALLOWED,
        "phoneNumberId": PHONE_NUMBER_ID,
        "action": "image",
        "mediaId": "1037543291543636",
    }
    assert out["caption"].startswith("Sales (7d) · ")
    assert any(str(year) in out["caption"] for year in range(2024, 2100))


def part(media_id: str, y: int, height: int) -> dict[str, Any]:
    box = {"x": 0, "y": y, "width": 1280, "height": height}
    return {
        "media_id": media_id,
        "mime_type": "image/png",
        "bytes": 99,
        "width": 1280,
        "height": height,
        "box": box,
    }


SPLIT = {
    **MEDIA,
    "parts": [part("1037543291543636", 0, 2560), part("222", 2560, 2400), part("333", 4960, 40)],
}


def test_a_split_answer_becomes_its_parts_media_ids_in_order() -> None:
    out = read_result(http_answer(200, json.dumps(SPLIT)))
    assert (out["action"], out["mediaId"]) == ("image", "1037543291543636")
    assert out["mediaIds"] == ["1037543291543636", "222", "333"]
    assert out["caption"].startswith("Sales (7d) · ")


def per_part(*results: dict[str, Any]) -> list[dict[str, Any]]:
    return run_code_node(BOT, "One message per part", list(results))


def test_each_part_is_a_message_of_its_own_with_the_caption_on_the_first() -> None:
    result = read_result(http_answer(200, json.dumps(SPLIT)))
    messages = per_part(result)
    assert [m["mediaId"] for m in messages] == ["1037543291543636", "222", "333"]
    assert [m["caption"] for m in messages] == [result["caption"], "", ""]
    assert {(m["from"], m["phoneNumberId"], m["action"]) for m in messages} == {
        (ALLOWED, PHONE_NUMBER_ID, "image")
    }
    assert all("mediaIds" not in m for m in messages)


def test_a_single_image_is_one_message() -> None:
    result = read_result(http_answer(200, json.dumps(MEDIA)))
    [single] = per_part(result)
    assert (single["mediaId"], single["caption"]) == (MEDIA["media_id"], result["caption"])
    # An answer from before parts existed (no mediaIds) is one message too.
    [old] = per_part({k: v for k, v in result.items() if k != "mediaIds"})
    assert old["mediaId"] == MEDIA["media_id"]


def test_result_hands_a_problem_to_explain_failure() -> None:
    answer = problem_answer(504, "render-timeout")
    out = read_result(answer)
    assert out == {
        "from": ALLOWED,
        "phoneNumberId": PHONE_NUMBER_ID,
        "action": "failed",
        "dashboard": "sales",
        "answer": {
            "statusCode": 504,
            "headers": answer["headers"],
            "body": json.loads(answer["data"]),
            "error": None,
        },
    }


@pytest.mark.parametrize(
    ("slug", "status", "retry_after", "wait"),
    [
        ("browser-unavailable", 503, "3", 3),
        ("queue-timeout", 503, None, 1),
        ("overloaded", 429, "2", 2),
        ("upstream-throttled", 503, "0", 1),
    ],
)
def test_a_retryable_problem_is_tried_once_more_after_retry_after(
    slug: str, status: int, retry_after: str | None, wait: int
) -> None:
    headers = {"retry_after": retry_after} if retry_after is not None else {}
    answer = problem_answer(status, slug, **headers)
    first = read_result(answer)
    assert (first["action"], first["waitSeconds"]) == ("retry", wait)
    assert first["request"] == {"dashboard": "sales", "params": {"range": "7d"}, "requester": ALLOWED}
    assert read_result(answer, run_index=1)["action"] == "failed"


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(
            problem_answer(503, "browser-unavailable", retry_after="120"), id="retry-after-too-long"
        ),
        pytest.param(problem_answer(429, "rate-limited", retry_after="1"), id="rate-limited-is-final"),
        pytest.param(problem_answer(504, "render-timeout"), id="timeout-is-final"),
        pytest.param(http_answer(502, "<html>Bad Gateway</html>", "text/html"), id="proxy-page"),
        pytest.param(http_answer(429, "Too Many Requests", "text/plain", retry_after="1"), id="text-429"),
        pytest.param(connection_failed(), id="unreachable"),
    ],
)
def test_other_failures_are_not_retried(answer: dict[str, Any]) -> None:
    out = read_result(answer)
    assert out["action"] == "failed"
    assert out["answer"]["statusCode"] == answer.get("statusCode")


# --- Explain failure -------------------------------------------------------------------------------

UNAVAILABLE = "The dashboard service is not available right now. Please try again in a few minutes."
RESTARTING = "The dashboard service is restarting just now. Please try again in a few minutes."
TIMEOUT = "The dashboard took too long to load. Please try again in a moment."
RATE = "You have asked for many pictures just now. Please wait a minute and try again."
BUSY = "Many pictures are being made just now. Please try again in a minute."
INVALID = "That option is not valid for *sales*. Send *list* to see its options and their values."


def failed(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer as Plan request and Read render result hand it on: the body parsed when it is JSON."""
    body: Any = answer.get("data")
    with contextlib.suppress(ValueError):
        body = json.loads(body) if isinstance(body, str) else body
    return {
        "statusCode": answer.get("statusCode"),
        "headers": answer.get("headers", {}),
        "body": body,
        "error": answer.get("error"),
    }


@pytest.mark.parametrize(
    ("answer", "sentence"),
    [
        (
            problem_answer(404, "unknown-dashboard"),
            "I don't know *sales*. Send *list* to see the dashboards I can show.",
        ),
        (problem_answer(422, "invalid-parameter"), INVALID),
        (problem_answer(422, "invalid-request"), INVALID),
        (problem_answer(429, "rate-limited"), RATE),
        (problem_answer(403, "requester-not-allowed"), "Sorry, this number is not allowed to use this bot."),
        (problem_answer(504, "render-timeout"), TIMEOUT),
        (problem_answer(502, "render-failed"), "I could not open *sales* just now. Please try again later."),
        (problem_answer(422, "image-too-large"), "*sales* is too big to send as a picture."),
        (problem_answer(503, "browser-unavailable"), RESTARTING),
        (problem_answer(503, "upstream-throttled"), BUSY),
        (problem_answer(502, "upstream-error"), UNAVAILABLE),
        (problem_answer(503, "meta-not-configured"), UNAVAILABLE),
        (problem_answer(401, "unauthorized"), UNAVAILABLE),
        (problem_answer(413, "body-too-large"), UNAVAILABLE),
        (problem_answer(429, "overloaded"), BUSY),
        (problem_answer(503, "queue-timeout"), BUSY),
        (problem_answer(502, "page-crashed"), "I could not open *sales* just now. Please try again later."),
        (problem_answer(503, "some-future-problem"), UNAVAILABLE),
        (http_answer(429, "Too Many Requests", "text/plain"), RATE),
        (http_answer(504, "<html>Gateway Timeout</html>", "text/html"), TIMEOUT),
        (http_answer(502, "<html>Bad Gateway</html>", "text/html"), UNAVAILABLE),
        (http_answer(500, None), UNAVAILABLE),
        (connection_failed(), UNAVAILABLE),
        (connection_failed("timeout of 120000ms exceeded", "ECONNABORTED"), TIMEOUT),
        (connection_failed("connect ETIMEDOUT 10.0.0.1:443", "ETIMEDOUT"), TIMEOUT),
        ({}, UNAVAILABLE),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 20 else None,
)
def test_failures_get_a_short_human_sentence(answer: dict[str, Any], sentence: str) -> None:
    item = {"from": ALLOWED, "phoneNumberId": PHONE_NUMBER_ID, "action": "failed", "dashboard": "sales"}
    [out] = run_code_node(BOT, "Explain failure", [{**item, "answer": failed(answer)}])
    assert out == {"from": ALLOWED, "phoneNumberId": PHONE_NUMBER_ID, "action": "reply", "text": sentence}


# --- Summarise failure (error workflow) --------------------------------------------------------------

OPERATOR = {"operatorNumber": "+976 8800 1122", "phoneNumberId": PHONE_NUMBER_ID, "operatorWebhookUrl": ""}


MASKED = "Bad request - please check your parameters: Recipient …233 (…233) not in allowed list"


def test_error_summary_names_the_run_links_it_and_masks_numbers() -> None:
    error_trigger_item = {
        "execution": {
            "id": "231",
            "url": "https://n8n.example.com/workflow/1/executions/231",
            "retryOf": None,
            "error": {
                "message": "Bad request - please check your parameters",
                "description": "Recipient +976 9911 2233 (97699112233) not in allowed list",
                "stack": "Error: at secret.js:1",
            },
            "lastNodeExecuted": "Send text",
            "mode": "webhook",
        },
        "workflow": {"id": "WaDashboardBot01", "name": "WhatsApp dashboard bot"},
    }
    [out] = run_code_node(ERROR_HANDLER, "Summarise failure", [error_trigger_item], {"Config": [OPERATOR]})
    assert out == {
        "workflow": "WhatsApp dashboard bot",
        "executionId": "231",
        "url": "https://n8n.example.com/workflow/1/executions/231",
        "node": "Send text",
        "mode": "webhook",
        "message": MASKED,
        "text": f"⚠️ WhatsApp dashboard bot: run 231 failed at Send text.\n{MASKED}\n"
        "https://n8n.example.com/workflow/1/executions/231",
        "operatorNumber": "97688001122",
        "phoneNumberId": PHONE_NUMBER_ID,
        "operatorWebhookUrl": "",
    }
    assert "2233" not in out["text"]


def test_error_summary_of_a_trigger_failure() -> None:
    item = {
        "trigger": {
            "error": {"message": "Invalid token", "node": {"name": "WhatsApp Trigger"}},
            "mode": "trigger",
        },
        "workflow": {"name": "WhatsApp dashboard bot"},
    }
    [out] = run_code_node(ERROR_HANDLER, "Summarise failure", [item], {"Config": [OPERATOR]})
    assert (out["node"], out["mode"], out["message"]) == ("WhatsApp Trigger", "trigger", "Invalid token")
    assert out["text"].startswith("⚠️ WhatsApp dashboard bot: a run failed at WhatsApp Trigger.")
