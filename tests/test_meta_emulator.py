"""The Meta emulator speaks Graph: it checks uploads as Meta does and answers in Graph's shapes."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import sys
from typing import Any

import httpx
import pytest

from screenshot_service.dev.meta_emulator import DEFAULT_MAX_BYTES, main

from .support.emulator import (
    API_VERSION,
    APP_ID,
    APP_SECRET,
    EMULATOR_TOKEN,
    PHONE_NUMBER_ID,
    Emulator,
    png_bytes,
)
from .support.servers import closed_port

AUTH = {"Authorization": f"Bearer {EMULATOR_TOKEN}"}
MEDIA = f"/{API_VERSION}/{PHONE_NUMBER_ID}/media"
MESSAGES = f"/{API_VERSION}/{PHONE_NUMBER_ID}/messages"
PNG = png_bytes(40, 30)


def form(*, product: str | None = "whatsapp", type_: str | None = "image/png") -> dict[str, str]:
    fields = {"messaging_product": product, "type": type_}
    return {k: v for k, v in fields.items() if v is not None}


def assert_graph_error(
    response: httpx.Response, status: int, code: int, subcode: int | None = None
) -> dict[str, Any]:
    """The body is Graph's error shape, and nothing else."""
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert (
        {"message", "type", "code", "fbtrace_id"}
        <= set(error)
        <= {"message", "type", "code", "error_subcode", "error_data", "fbtrace_id"}
    )
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["code"] == code
    assert error.get("error_subcode") == subcode
    assert isinstance(error["fbtrace_id"], str)
    assert error["fbtrace_id"]
    assert response.headers["x-fb-trace-id"] == error["fbtrace_id"]
    return error


async def upload(
    emulator: Emulator, data: bytes = PNG, content_type: str = "image/png", **kw: Any
) -> httpx.Response:
    return await emulator.http.post(
        MEDIA,
        headers=kw.pop("headers", AUTH),
        data=kw.pop("fields", form()),
        files={"file": ("chart.png", data, content_type)},
    )


async def test_upload_returns_a_numeric_graph_id(emulator: Emulator) -> None:
    response = await upload(emulator)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id"}
    assert body["id"].isdigit()
    assert len(body["id"]) >= 15


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        pytest.param({}, 400, 2500, id="no-token"),
        pytest.param({"Authorization": "Bearer wrong"}, 401, 190, id="wrong-token"),
        pytest.param({"Authorization": f"Basic {EMULATOR_TOKEN}"}, 400, 2500, id="not-bearer"),
    ],
)
async def test_upload_needs_the_token(
    emulator: Emulator, headers: dict[str, str], status: int, code: int
) -> None:
    error = assert_graph_error(await upload(emulator, headers=headers), status, code)
    assert error["type"] == "OAuthException"
    [record] = await emulator.uploads()
    assert record["status"] == status
    assert record["media_id"] is None


async def test_a_wrong_token_says_so_in_www_authenticate(emulator: Emulator) -> None:
    response = await upload(emulator, headers={"Authorization": "Bearer wrong"})
    assert response.headers["www-authenticate"].startswith('OAuth "Facebook Platform" "invalid_token"')


async def test_the_token_may_come_as_a_query_parameter(emulator: Emulator) -> None:
    response = await emulator.http.post(
        MEDIA,
        params={"access_token": EMULATOR_TOKEN},
        data=form(),
        files={"file": ("a.png", PNG, "image/png")},
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("fields", "data", "content_type", "code"),
    [
        pytest.param(form(product=None), PNG, "image/png", 100, id="no-messaging-product"),
        pytest.param(form(product="messenger"), PNG, "image/png", 100, id="wrong-messaging-product"),
        pytest.param(form(type_=None), PNG, "image/png", 100, id="no-type"),
        pytest.param(form(type_="image/webp"), PNG, "image/png", 131053, id="unsupported-type"),
        pytest.param(form(), PNG, "image/gif", 131053, id="unsupported-file-content-type"),
        pytest.param(form(), PNG, "image/jpeg", 131053, id="file-type-differs-from-type"),
        pytest.param(form(type_="image/jpeg"), PNG, "image/jpeg", 131053, id="png-bytes-said-jpeg"),
        pytest.param(form(), PNG[:8] + bytes(DEFAULT_MAX_BYTES), "image/png", 131053, id="over-5-mb"),
    ],
)
async def test_upload_is_checked_as_meta_checks_it(
    emulator: Emulator, fields: dict[str, str], data: bytes, content_type: str, code: int
) -> None:
    response = await upload(emulator, data, content_type, fields=fields)

    error = assert_graph_error(response, 400, code)
    if code == 131053:
        assert error["error_data"]["messaging_product"] == "whatsapp"
        assert error["error_data"]["details"]
    [record] = await emulator.uploads()
    assert record["error_code"] == code
    assert record["size"] == len(data)


async def test_an_upload_without_a_file_is_refused(emulator: Emulator) -> None:
    response = await emulator.http.post(
        MEDIA, headers=AUTH, data=form(), files={"other": ("a", b"x", "text/plain")}
    )
    assert_graph_error(response, 400, 100)


async def test_an_unknown_phone_number_id_is_refused(emulator: Emulator) -> None:
    response = await emulator.http.post(
        f"/{API_VERSION}/999/media", headers=AUTH, data=form(), files={"file": ("a.png", PNG, "image/png")}
    )
    error = assert_graph_error(response, 400, 100, 33)
    assert "999" in error["message"]


async def test_media_can_be_read_downloaded_and_deleted(emulator: Emulator) -> None:
    media_id = (await upload(emulator)).json()["id"]

    info = await emulator.http.get(f"/{API_VERSION}/{media_id}", headers=AUTH)
    assert info.status_code == 200
    body = info.json()
    assert body == {
        "url": body["url"],
        "mime_type": "image/png",
        "sha256": hashlib.sha256(PNG).hexdigest(),
        "file_size": len(PNG),
        "id": media_id,
        "messaging_product": "whatsapp",
    }
    assert_graph_error(await emulator.http.get(body["url"]), 400, 2500)
    download = await emulator.http.get(body["url"], headers=AUTH)
    assert download.content == PNG
    assert download.headers["content-type"] == "image/png"

    deleted = await emulator.http.delete(f"/{API_VERSION}/{media_id}", headers=AUTH)
    assert deleted.json() == {"success": True}
    assert_graph_error(await emulator.http.get(f"/{API_VERSION}/{media_id}", headers=AUTH), 400, 100, 33)
    assert_graph_error(await emulator.http.delete(f"/{API_VERSION}/{media_id}", headers=AUTH), 400, 100, 33)


async def test_media_info_needs_the_token(emulator: Emulator) -> None:
    media_id = (await upload(emulator)).json()["id"]
    assert_graph_error(await emulator.http.get(f"/{API_VERSION}/{media_id}"), 400, 2500)


async def test_sent_messages_are_recorded(emulator: Emulator) -> None:
    media_id = (await upload(emulator)).json()["id"]
    text = {
        "messaging_product": "whatsapp",
        "to": "97699112233",
        "type": "text",
        "text": {"body": "Sales 7d"},
    }
    image = {"messaging_product": "whatsapp", "to": "97699112233", "type": "image", "image": {"id": media_id}}

    for message in (text, image):
        response = await emulator.http.post(MESSAGES, headers=AUTH, json=message)
        assert response.status_code == 200
        body = response.json()
        assert body["messaging_product"] == "whatsapp"
        assert body["contacts"] == [{"input": "97699112233", "wa_id": "97699112233"}]
        assert body["messages"][0]["id"].startswith("wamid.")

    sent = await emulator.messages()
    assert [(m["type"], m["text"], m["media_id"], m["media_known"]) for m in sent] == [
        ("text", "Sales 7d", None, False),
        ("image", None, media_id, True),
    ]
    assert sent[1]["body"] == image


@pytest.mark.parametrize(
    "message",
    [
        pytest.param({"to": "1", "type": "text", "text": {"body": "x"}}, id="no-messaging-product"),
        pytest.param({"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}}, id="no-to"),
        pytest.param({"messaging_product": "whatsapp", "to": "1", "type": "text"}, id="no-text"),
        pytest.param(
            {"messaging_product": "whatsapp", "to": "1", "type": "image", "image": {}}, id="no-image"
        ),
    ],
)
async def test_bad_messages_are_refused(emulator: Emulator, message: dict[str, Any]) -> None:
    assert_graph_error(await emulator.http.post(MESSAGES, headers=AUTH, json=message), 400, 100)
    assert await emulator.messages() == []


READ = {
    "messaging_product": "whatsapp",
    "status": "read",
    "message_id": "wamid.HBgLOTc2OTkxMTIyMzMVAgASGBQzQUI2",
    "typing_indicator": {"type": "text"},
}


async def test_a_read_receipt_with_typing_is_recorded_in_order_with_messages(emulator: Emulator) -> None:
    text = {"messaging_product": "whatsapp", "to": "97699112233", "type": "text", "text": {"body": "hi"}}
    read = await emulator.http.post(MESSAGES, headers=AUTH, json=READ)
    assert (read.status_code, read.json()) == (200, {"success": True})
    assert (await emulator.http.post(MESSAGES, headers=AUTH, json=text)).status_code == 200

    [receipt] = await emulator.reads()
    [message] = await emulator.messages()
    assert (receipt["message_id"], receipt["typing"], receipt["phone_number_id"]) == (
        READ["message_id"],
        "text",
        PHONE_NUMBER_ID,
    )
    assert receipt["seq"] < message["seq"]
    assert (len(await emulator.requests("read")), len(await emulator.requests("messages"))) == (1, 1)


async def test_a_fault_aimed_at_sends_spares_read_receipts(emulator: Emulator) -> None:
    await emulator.faults({"kind": "error", "on": "messages", "code": 131030})
    assert (await emulator.http.post(MESSAGES, headers=AUTH, json=READ)).status_code == 200
    text = {"messaging_product": "whatsapp", "to": "97699112233", "type": "text", "text": {"body": "hi"}}
    assert_graph_error(await emulator.http.post(MESSAGES, headers=AUTH, json=text), 400, 131030)


@pytest.mark.parametrize(
    "receipt",
    [
        pytest.param({**READ, "message_id": ""}, id="no-message-id"),
        pytest.param({**READ, "status": "delivered"}, id="not-read"),
        pytest.param({**READ, "typing_indicator": {"type": "audio"}}, id="bad-typing"),
        pytest.param({k: v for k, v in READ.items() if k != "messaging_product"}, id="no-product"),
    ],
)
async def test_bad_read_receipts_are_refused(emulator: Emulator, receipt: dict[str, Any]) -> None:
    assert_graph_error(await emulator.http.post(MESSAGES, headers=AUTH, json=receipt), 400, 100)
    assert await emulator.reads() == []


async def app_token(emulator: Emulator, secret: str = APP_SECRET) -> httpx.Response:
    return await emulator.http.post(
        "/v19.0/oauth/access_token",
        data={"client_id": APP_ID, "client_secret": secret, "grant_type": "client_credentials"},
    )


async def test_the_app_subscribes_its_webhook_with_its_own_token(emulator: Emulator) -> None:
    # What n8n's WhatsApp Trigger does on activation: an app token, then list and create.
    token = (await app_token(emulator)).json()["access_token"]
    assert token.startswith(f"{APP_ID}|")
    app_auth = {"Authorization": f"Bearer {token}"}
    subscriptions = f"/v19.0/{APP_ID}/subscriptions"
    created = await emulator.http.post(
        subscriptions,
        headers=app_auth,
        data={
            "object": "whatsapp_business_account",
            "callback_url": "http://127.0.0.1:5678/webhook/x/webhook",
            "verify_token": "node-id",
            "fields": '["messages"]',
            "include_values": "true",
        },
    )
    assert (created.status_code, created.json()) == (200, {"success": True})
    [listed] = (await emulator.http.get(subscriptions, headers=app_auth)).json()["data"]
    assert listed == {
        "object": "whatsapp_business_account",
        "callback_url": "http://127.0.0.1:5678/webhook/x/webhook",
        "active": True,
        "fields": [{"name": "messages", "version": "v19.0"}],
    }
    [kept] = await emulator.subscriptions()
    assert kept["verify_token"] == "node-id"
    # The page's token is not the app's.
    assert_graph_error(await emulator.http.get(subscriptions, headers=AUTH), 401, 190)
    deleted = await emulator.http.request(
        "DELETE", subscriptions, headers=app_auth, json={"object": "whatsapp_business_account"}
    )
    assert deleted.status_code == 200
    assert await emulator.subscriptions() == []


async def test_a_wrong_app_secret_gets_no_token(emulator: Emulator) -> None:
    assert_graph_error(await app_token(emulator, "another-apps-secret"), 400, 1)


async def test_faults_are_used_once_in_order_and_only_where_aimed(emulator: Emulator) -> None:
    await emulator.faults(
        {"kind": "http_503", "on": "messages"},
        {"kind": "throttle", "code": 80007, "retry_after": 7},
        {"kind": "token_expired"},
    )

    throttled = await upload(emulator)
    error = assert_graph_error(throttled, 400, 80007)
    assert throttled.headers["retry-after"] == "7"
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert_graph_error(await upload(emulator), 401, 190, 463)
    assert (await upload(emulator)).status_code == 200
    assert [f["on"] for f in await emulator.pending_faults()] == ["messages"]
    assert [r["fault"] for r in await emulator.requests()] == ["throttle", "token_expired", None]


async def test_reset_forgets_everything(emulator: Emulator) -> None:
    await upload(emulator)
    await emulator.faults({"kind": "http_500"})
    await emulator.reset()
    assert await emulator.uploads() == []
    assert await emulator.pending_faults() == []
    assert await emulator.requests() == []


async def test_an_unknown_fault_is_refused(emulator: Emulator) -> None:
    response = await emulator.http.post("/_emulator/faults", json={"faults": [{"kind": "meteor"}]})
    assert response.status_code == 400


def test_command_needs_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("META_EMULATOR_TOKEN", raising=False)
    with pytest.raises(SystemExit) as caught:
        main(["--port", "0"])
    assert caught.value.code == 2


async def test_command_serves_the_emulator() -> None:
    port = closed_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "screenshot_service.dev.meta_emulator",
        "--port",
        str(port),
        env={**os.environ, "META_EMULATOR_TOKEN": "cli-token"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(500):
                with contextlib.suppress(httpx.ConnectError):
                    response = await client.post(
                        MEDIA,
                        headers={"Authorization": "Bearer cli-token"},
                        data=form(),
                        files={"file": ("a.png", PNG, "image/png")},
                    )
                    break
                await asyncio.sleep(0.02)
            else:
                pytest.fail("the emulator did not start")
        assert response.status_code == 200
        assert response.json()["id"].isdigit()
    finally:
        process.terminate()
        await process.wait()
