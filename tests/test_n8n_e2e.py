"""The WhatsApp bot end to end in a real n8n: webhook payload in, WhatsApp message out.

n8n (installed from npm by tests/n8n/install-n8n.sh, cached between runs) runs on 127.0.0.1 with its
SQLite database in a temp folder. The shipped workflows are imported as they are, then the bot again
with its two ends swapped for local ones: the WhatsApp Trigger becomes a Webhook node that payloads
are posted to, and the WhatsApp send nodes become HTTP Request nodes that post the same messages to
the Meta emulator. Every other node is the shipped one; Config gets the operator's edits (the
service's URL and the allowlist). The service is the real one, uploading to the same emulator.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from screenshot_service.dev.meta_emulator import create_emulator_app

from .n8nkit import ALLOWED, BOT, ERROR_HANDLER, load, n8n_install, payload, require_n8n
from .support.emulator import API_VERSION, EMULATOR_TOKEN, PHONE_NUMBER_ID, Emulator
from .support.servers import closed_port, serve
from .support.service import API_KEY, running_service

STRANGER = "4915112345678"
WEBHOOK_PATH = "whatsapp-dashboard-bot"
SENDERS = ("Send text", "Send image")
START_TIMEOUT_S = 300
REPLY_TIMEOUT_S = 60
TEST_ID = "DashBotUnderTest"

# The first test starts n8n, or with REQUIRE_N8N=1 may first install it (minutes, once per machine).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3900)]


@pytest.fixture(scope="module")
def n8n_bin() -> Path:
    found = n8n_install()
    if found is None:
        message = "n8n is not installed: run tests/n8n/install-n8n.sh (or set REQUIRE_N8N=1)"
        if require_n8n():
            pytest.fail(message)
        pytest.skip(message)
    return found


# --- The workflow as the test runs it --------------------------------------------------------------


def expression(value: str) -> str:
    """The JavaScript inside an n8n expression "={{ ... }}"."""
    match = re.fullmatch(r"=\{\{(.*)\}\}", value, re.DOTALL)
    assert match, f"not a single expression: {value!r}"
    return match.group(1).strip()


def webhook_node(trigger: dict[str, Any]) -> dict[str, Any]:
    return {
        "parameters": {"httpMethod": "POST", "path": WEBHOOK_PATH, "options": {}},
        "id": trigger["id"],
        "name": trigger["name"],
        "type": "n8n-nodes-base.webhook",
        "typeVersion": 2,
        "position": trigger["position"],
        "webhookId": str(uuid.uuid4()),
    }


def emulator_sender(node: dict[str, Any], graph_url: str) -> dict[str, Any]:
    """An HTTP Request node posting to the emulator the message the WhatsApp node would send to Meta."""
    params = node["parameters"]
    assert params["operation"] == "send"
    to, sender = expression(params["recipientPhoneNumber"]), expression(params["phoneNumberId"])
    if params.get("messageType", "text") == "image":
        assert params["mediaPath"] == "useMediaId"
        caption = expression(params["additionalFields"]["mediaCaption"])
        content = f"type: 'image', image: {{ id: {expression(params['mediaId'])}, caption: {caption} }}"
    else:
        content = f"type: 'text', text: {{ body: {expression(params['textBody'])} }}"
    body = f"messaging_product: 'whatsapp', recipient_type: 'individual', to: {to}, {content}"
    return {
        "parameters": {
            "method": "POST",
            "url": f"={graph_url}/{API_VERSION}/{{{{ {sender} }}}}/messages",
            "sendHeaders": True,
            "headerParameters": {
                "parameters": [{"name": "Authorization", "value": f"Bearer {EMULATOR_TOKEN}"}]
            },
            "sendBody": True,
            "specifyBody": "json",
            "jsonBody": f"={{{{ JSON.stringify({{ {body} }}) }}}}",
            "options": {},
        },
        "id": node["id"],
        "name": node["name"],
        "type": "n8n-nodes-base.httpRequest",
        "typeVersion": 4.2,
        "position": node["position"],
    }


def workflow_for_test(service_url: str, graph_url: str) -> dict[str, Any]:
    workflow = copy.deepcopy(load(BOT))
    edits = {"serviceUrl": service_url, "allowedNumbers": "+976 9911-2233"}
    nodes = []
    for node in workflow["nodes"]:
        if node["type"] == "n8n-nodes-base.whatsAppTrigger":
            nodes.append(webhook_node(node))
        elif node["name"] in SENDERS:
            nodes.append(emulator_sender(node, graph_url))
        else:
            if node["name"] == "Config":
                for assignment in node["parameters"]["assignments"]["assignments"]:
                    assignment["value"] = edits.get(assignment["name"], assignment["value"])
            nodes.append(node)
    workflow["nodes"] = nodes
    return workflow


def test_only_the_ends_and_config_are_swapped() -> None:
    shipped = {n["name"]: n for n in load(BOT)["nodes"]}
    swapped = workflow_for_test("http://127.0.0.1:1", "http://127.0.0.1:2")
    changed = {n["name"] for n in swapped["nodes"] if n != shipped[n["name"]]}
    assert changed == {"WhatsApp Trigger", "Config", *SENDERS}
    assert swapped["connections"] == load(BOT)["connections"]


# --- n8n as a process ------------------------------------------------------------------------------


@dataclass
class N8n:
    bin: Path
    env: dict[str, str]
    url: str

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [str(self.bin / "n8n"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, (
            f"n8n {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
        return done.stdout


def n8n_env(bin_dir: Path, home: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("N8N_", "DB_"))}
    return env | {
        "PATH": f"{bin_dir}:{env.get('PATH', '')}",
        "N8N_USER_FOLDER": str(home),
        "DB_TYPE": "sqlite",
        "N8N_HOST": "127.0.0.1",
        "N8N_LISTEN_ADDRESS": "127.0.0.1",
        "N8N_PORT": str(port),
        "N8N_PROTOCOL": "http",
        "WEBHOOK_URL": f"http://127.0.0.1:{port}/",
        "N8N_RUNNERS_BROKER_PORT": str(closed_port()),
        "N8N_RUNNERS_BROKER_LISTEN_ADDRESS": "127.0.0.1",
        "N8N_ENCRYPTION_KEY": "n8n-e2e-test-encryption-key",
        "N8N_DIAGNOSTICS_ENABLED": "false",
        "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
        "N8N_PERSONALIZATION_ENABLED": "false",
        "N8N_TEMPLATES_ENABLED": "false",
        "N8N_HIRING_BANNER_ENABLED": "false",
        "N8N_DYNAMIC_BANNERS_ENABLED": "false",
        "N8N_AI_ENABLED": "false",
        "N8N_COMMUNITY_PACKAGES_ENABLED": "false",
        "N8N_DIAGNOSTICS_CONFIG_FRONTEND": "",
        "N8N_DIAGNOSTICS_CONFIG_BACKEND": "",
        "EXTERNAL_FRONTEND_HOOKS_URLS": "",
        "N8N_SECURE_COOKIE": "false",
        "N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS": "false",
        "NO_COLOR": "1",
    }


def credentials_file(home: Path) -> Path:
    """The API-key credential the workflow names, as `n8n import:credentials` reads it."""
    [name] = {
        n["credentials"]["httpHeaderAuth"]["name"]
        for n in load(BOT)["nodes"]
        if "httpHeaderAuth" in n.get("credentials", {})
    }
    path = home / "credentials.json"
    credential = {
        "id": "e2eScreenshotKey",  # any id: the workflow names the credential, n8n finds it by name
        "name": name,
        "type": "httpHeaderAuth",
        "data": {"name": "X-API-Key", "value": API_KEY},
    }
    path.write_text(json.dumps([credential]), encoding="utf-8")
    return path


def import_folder(home: Path, service_url: str, graph_url: str) -> Path:
    """The shipped workflows, unchanged, and the bot as the test runs it, under an id of its own."""
    folder = home / "workflows"
    folder.mkdir()
    for path in (BOT, ERROR_HANDLER):
        (folder / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    under_test = workflow_for_test(service_url, graph_url) | {
        "id": TEST_ID,
        "name": "Dashboard bot under test",
    }
    (folder / "bot-under-test.json").write_text(json.dumps(under_test), encoding="utf-8")
    return folder


@dataclass
class Bot:
    webhook: str
    emulator: Emulator
    http: httpx.AsyncClient
    imported: str

    async def send(self, fixture: str | dict[str, Any]) -> None:
        body = payload(fixture) if isinstance(fixture, str) else fixture
        response = await self.http.post(self.webhook, json=body)
        assert response.status_code == 200, response.text

    async def replies(self, count: int) -> list[dict[str, Any]]:
        """Wait for ``count`` messages to reach the emulator, then return them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REPLY_TIMEOUT_S
        while loop.time() < deadline:
            messages = await self.emulator.messages()
            if len(messages) >= count:
                return messages
            await asyncio.sleep(0.2)
        got = await self.emulator.messages()
        raise AssertionError(f"{count} message(s) expected, the emulator got {got}")


@pytest.fixture(scope="module")
async def bot(n8n_bin: Path) -> AsyncIterator[Bot]:
    """The bot running in n8n, between the real service and the Meta emulator."""
    emulator_app = create_emulator_app(EMULATOR_TOKEN, phone_number_id=PHONE_NUMBER_ID)
    meta = {
        "meta_api_version": API_VERSION,
        "meta_phone_number_id": PHONE_NUMBER_ID,
        "meta_access_token": EMULATOR_TOKEN,
        "phone_allowlist": ALLOWED,
    }
    with tempfile.TemporaryDirectory(prefix="n8n-e2e-") as temp:
        home = Path(temp)
        port = closed_port()
        n8n = N8n(n8n_bin, n8n_env(n8n_bin, home / "n8n", port), f"http://127.0.0.1:{port}")
        with serve(emulator_app) as emulator_server:
            graph_url = emulator_server.url
            async with (
                running_service({**meta, "meta_graph_url": graph_url}) as service,
                httpx.AsyncClient(timeout=30) as http,
                httpx.AsyncClient(base_url=graph_url, timeout=30) as control,
            ):
                # Three n8n commands, each a start-up of n8n: keep their number down.
                n8n.cli("import:credentials", f"--input={credentials_file(home)}")
                folder = import_folder(home, str(service.base_url), graph_url)
                imported = n8n.cli("import:workflow", "--separate", f"--input={folder}")
                n8n.cli("publish:workflow", f"--id={TEST_ID}")
                with (home / "n8n.log").open("wb") as log:
                    process = await asyncio.create_subprocess_exec(
                        str(n8n.bin / "n8n"), "start", env=n8n.env, stdout=log, stderr=subprocess.STDOUT
                    )
                    try:
                        webhook = f"{n8n.url}/webhook/{WEBHOOK_PATH}"
                        await wait_for_webhook(http, webhook, process, home / "n8n.log")
                        yield Bot(webhook, Emulator(graph_url, control), http, imported)
                    finally:
                        process.terminate()
                        try:
                            await asyncio.wait_for(process.wait(), 30)
                        except TimeoutError:
                            process.kill()
                            await process.wait()


def test_shipped_workflows_import_unchanged(bot: Bot) -> None:
    assert "Successfully imported 3 workflows." in bot.imported


async def wait_for_webhook(
    http: httpx.AsyncClient, webhook: str, process: asyncio.subprocess.Process, log: Path
) -> None:
    """Wait until n8n answers the production webhook (a status update, which the bot ignores)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT_S
    while loop.time() < deadline:
        if process.returncode is not None:
            raise AssertionError(f"n8n exited with {process.returncode}:\n{tail(log)}")
        try:
            answer = await http.post(webhook, json=payload("status-delivered"))
        except httpx.TransportError:
            pass
        else:
            # While it starts, n8n answers every path 200 "n8n is starting up": wait for the webhook's own.
            if answer.status_code == 200 and "Workflow was started" in answer.text:
                return
        await asyncio.sleep(0.5)
    raise AssertionError(f"n8n's webhook did not come up in {START_TIMEOUT_S} s:\n{tail(log)}")


def tail(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-3000:]


# --- The conversations -----------------------------------------------------------------------------


def config_value(name: str) -> str:
    """A text as the Config node ships it."""
    config = next(n for n in load(BOT)["nodes"] if n["name"] == "Config")
    return str(
        next(a["value"] for a in config["parameters"]["assignments"]["assignments"] if a["name"] == name)
    )


def help_text() -> str:
    return config_value("helpText")


def refusal_text() -> str:
    return config_value("refusalText")


def with_text(text: str) -> dict[str, Any]:
    body = payload("text-help")
    body["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = text
    return body


async def test_sales_7d_is_answered_with_the_rendered_image(bot: Bot) -> None:
    await bot.emulator.reset()
    await bot.send("text-sales-7d")
    [message] = await bot.replies(1)
    [upload] = await bot.emulator.uploads()
    assert (message["type"], message["to"], message["phone_number_id"]) == ("image", ALLOWED, PHONE_NUMBER_ID)
    assert message["media_id"] == upload["media_id"]
    assert message["media_known"]
    assert message["body"]["image"]["caption"].startswith("Sales (7d) · ")
    assert upload["content_type"] == "image/png"


@pytest.mark.parametrize(
    ("fixture", "to", "expected"),
    [
        pytest.param("text-help", ALLOWED, help_text(), id="help"),
        pytest.param("image-message", ALLOWED, help_text(), id="image-gets-help"),
        pytest.param("text-unknown", ALLOWED, f'I don\'t know "борлуулалт".\n\n{help_text()}', id="unknown"),
        pytest.param("text-stranger", STRANGER, refusal_text(), id="stranger"),
        pytest.param(
            with_text("sales 1y"),
            ALLOWED,
            "That option is not valid for *sales*. Send *list* to see its options.",
            id="invalid-option",
        ),
    ],
)
async def test_text_replies(bot: Bot, fixture: str | dict[str, Any], to: str, expected: str) -> None:
    await bot.emulator.reset()
    await bot.send(fixture)
    [message] = await bot.replies(1)
    assert (message["type"], message["to"], message["text"]) == ("text", to, expected)
    assert await bot.emulator.uploads() == []


async def test_list_names_the_dashboards(bot: Bot) -> None:
    await bot.emulator.reset()
    await bot.send("text-list")
    [message] = await bot.replies(1)
    assert message["type"] == "text"
    assert "• Sales: *sales [range]*" in message["text"]
    assert "• Revenue: *revenue [range]*" in message["text"]


async def test_status_updates_get_no_answer(bot: Bot) -> None:
    await bot.emulator.reset()
    await bot.send("status-failed")
    await bot.send("status-delivered")
    await bot.send("text-help")  # answered after the status updates' runs began, so they had their turn
    messages = await bot.replies(1)
    await asyncio.sleep(1)
    assert (
        [m["text"] for m in await bot.emulator.messages()] == [help_text()] == [m["text"] for m in messages]
    )
