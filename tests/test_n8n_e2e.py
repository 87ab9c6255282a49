"""The WhatsApp bot as shipped, end to end in a real n8n: signed webhook in, WhatsApp messages out.

n8n (installed from npm by tests/n8n/install-n8n.sh, cached between runs) runs on 127.0.0.1 with its
SQLite database in a temp folder, holding several credentials of each type, unrelated ones first. The
shipped workflows are imported byte for byte but for the operator's edits to their Config nodes (the
service's URL, the allowlist, the operator), then published, as a user publishes them. Their nodes are
the real ones: the WhatsApp Trigger subscribes the Meta app's webhook and checks Meta's signature, the
WhatsApp nodes and the read receipt call Graph. That Graph traffic reaches the Meta emulator through a
Node preload (tests/n8n/graph-to-emulator.cjs), outside the workflow. The service is the real one,
behind a reverse proxy that can answer for it (a 503 while the browser restarts, a proxy's HTML page).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
import os
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec
import pytest
from playwright.async_api import async_playwright

from screenshot_service.dev.meta_emulator import create_emulator_app
from screenshot_service.settings import Settings

from .n8nkit import (
    ALLOWED,
    BOT,
    CATALOGUE,
    ERROR_HANDLER,
    http_answer,
    load,
    n8n_install,
    payload,
    require_n8n,
    trigger_items,
    unflatten,
)
from .support.emulator import API_VERSION, APP_ID, APP_SECRET, EMULATOR_TOKEN, PHONE_NUMBER_ID, Emulator
from .support.inbox import Inbox, received
from .support.servers import closed_port, serve
from .support.service import API_KEY, OTHER_KEY, running_service
from .support.service_proxy import CannedAnswer, ProxyControl, ServiceProxy

STRANGER = "4915112345678"
OPERATOR = "97688001122"
PRELOAD = Path(__file__).resolve().parent / "n8n" / "graph-to-emulator.cjs"
START_TIMEOUT_S = 300
REPLY_TIMEOUT_S = 90
BOT_ID, ERRORS_ID = load(BOT)["id"], load(ERROR_HANDLER)["id"]
PROBLEM = "urn:screenshot-service:problem:"

# Unrelated credentials first: with a reference that n8n does not look up by name, it binds these.
CREDENTIALS = [
    (
        "otherServiceKey1",
        "Another service's API key",
        "httpHeaderAuth",
        {"name": "X-API-Key", "value": OTHER_KEY},
    ),
    (
        "otherServiceKey2",
        "Screenshot service API key (staging)",
        "httpHeaderAuth",
        {"name": "X-API-Key", "value": OTHER_KEY},
    ),
    (
        "otherWhatsApp001",
        "Another WhatsApp account",
        "whatsAppApi",
        {"accessToken": "another-accounts-token", "businessAccountId": "1"},
    ),
    (
        "otherWhatsApp002",
        "WhatsApp account (old)",
        "whatsAppApi",
        {"accessToken": "an-old-token", "businessAccountId": "1"},
    ),
    (
        "otherMetaApp0001",
        "Another Meta app",
        "whatsAppTriggerApi",
        {"clientId": "999", "clientSecret": "another-apps-secret"},
    ),
    (
        "otherMetaApp0002",
        "WhatsApp OAuth account (test app)",
        "whatsAppTriggerApi",
        {"clientId": "998", "clientSecret": "a-test-apps-secret"},
    ),
    (
        "screenshotKey001",
        "Screenshot service API key",
        "httpHeaderAuth",
        {"name": "X-API-Key", "value": API_KEY},
    ),
    (
        "whatsAppAccount1",
        "WhatsApp account",
        "whatsAppApi",
        {"accessToken": EMULATOR_TOKEN, "businessAccountId": "2"},
    ),
    (
        "whatsAppOAuth001",
        "WhatsApp OAuth account",
        "whatsAppTriggerApi",
        {"clientId": APP_ID, "clientSecret": APP_SECRET},
    ),
]
INTENDED = {kind: cid for cid, _, kind, _ in CREDENTIALS[6:]}

# The first test starts n8n, or with REQUIRE_N8N=1 may first install it (minutes, once per machine).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3900)]

T = TypeVar("T")


@pytest.fixture(scope="module")
def n8n_bin() -> Path:
    found = n8n_install()
    if found is None:
        message = "n8n is not installed: run tests/n8n/install-n8n.sh (or set REQUIRE_N8N=1)"
        if require_n8n():
            pytest.fail(message)
        pytest.skip(message)
    return found


# --- The workflows as the operator edits them --------------------------------------------------------


def with_config(path: Path, values: dict[str, Any]) -> dict[str, Any]:
    """The shipped workflow with the operator's values in its Config node, and nothing else changed."""
    workflow = copy.deepcopy(load(path))
    config = next(n for n in workflow["nodes"] if n["name"] == "Config")
    for assignment in config["parameters"]["assignments"]["assignments"]:
        assignment["value"] = values.get(assignment["name"], assignment["value"])
    assert {a["name"] for a in config["parameters"]["assignments"]["assignments"]} >= values.keys()
    return workflow


def bot_as_edited(service_url: str) -> dict[str, Any]:
    return with_config(BOT, {"serviceUrl": service_url, "allowedNumbers": "+976 9911-2233"})


def errors_as_edited(inbox_url: str) -> dict[str, Any]:
    values = {
        "operatorNumber": f"+{OPERATOR}",
        "phoneNumberId": PHONE_NUMBER_ID,
        "operatorWebhookUrl": inbox_url,
    }
    return with_config(ERROR_HANDLER, values)


def test_only_config_values_are_edited() -> None:
    edits = (
        (BOT, bot_as_edited("http://127.0.0.1:1")),
        (ERROR_HANDLER, errors_as_edited("http://127.0.0.1:2")),
    )
    for path, edited in edits:
        shipped = load(path)
        assert edited["connections"] == shipped["connections"]
        assert edited["settings"] == shipped["settings"]
        changed = [n["name"] for n, s in zip(edited["nodes"], shipped["nodes"], strict=True) if n != s]
        assert changed == ["Config"]


# --- n8n as a process, and its REST API ---------------------------------------------------------------


def n8n_env(bin_dir: Path, home: Path, port: int, graph_url: str) -> dict[str, str]:
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
        # Test-only, outside the workflows: n8n's calls to graph.facebook.com go to the emulator.
        "GRAPH_EMULATOR_URL": graph_url,
        "NODE_OPTIONS": f"--require {PRELOAD}",
    }


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


OWNER = {"email": "owner@example.com", "firstName": "Test", "lastName": "Owner", "password": "Passw0rd-e2e"}


class Rest:
    """n8n's own REST API, as the editor uses it, signed in as the owner."""

    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        self.url = f"{url}/rest"
        self.http = http

    async def sign_up_owner(self) -> None:
        response = await self.http.post(f"{self.url}/owner/setup", json=OWNER)
        assert response.status_code == 200, response.text

    async def get(self, path: str, **params: str) -> Any:
        response = await self.http.get(f"{self.url}{path}", params=params)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        response = await self.http.post(f"{self.url}{path}", json=body)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    async def publish(self, workflow_id: str) -> None:
        """What the editor's Publish does: activate the workflow's current version."""
        workflow = await self.get(f"/workflows/{workflow_id}")
        await self.post(f"/workflows/{workflow_id}/activate", {"versionId": workflow["versionId"]})

    async def outputs(self, execution_id: str) -> dict[str, list[dict[str, Any]]]:
        """What each node of a run output (the items' JSON, all runs and outputs in order)."""
        execution = await self.get(f"/executions/{execution_id}")
        run_data = unflatten(execution["data"])["resultData"]["runData"]
        return {
            node: [item["json"] for run in runs for output in run["data"]["main"] for item in output or []]
            for node, runs in run_data.items()
        }

    async def executions(self, workflow_id: str) -> list[dict[str, Any]]:
        data = await self.get("/executions", filter=json.dumps({"workflowId": workflow_id}), limit="100")
        results: list[dict[str, Any]] = data["results"]
        return results


# --- The conversation's ends -------------------------------------------------------------------------

_sequence = iter(range(1, 10_000))


def delivery(
    fixture: str = "text-help", *, text: str | None = None, sender: str | None = None
) -> dict[str, Any]:
    """A webhook body as Meta POSTs it, for a message of its own (a new message id)."""
    body = payload(fixture)
    value = body["entry"][0]["changes"][0]["value"]
    for message in value.get("messages", []):
        message["id"] = f"wamid.e2e-{next(_sequence):04d}-{message['id'][6:30]}"
        if text is not None:
            message["text"]["body"] = text
        if sender is not None:
            message["from"] = sender
            value["contacts"][0]["wa_id"] = sender
    return body


def signature(raw: bytes, secret: str = APP_SECRET) -> str:
    """``X-Hub-Signature-256`` as Meta computes it: HMAC-SHA256 of the raw body with the app secret."""
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


@dataclass
class Bot:
    n8n: N8n
    rest: Rest
    webhook: str
    emulator: Emulator
    proxy: ProxyControl
    http: httpx.AsyncClient
    imported: str
    inbox: str

    async def deliver(self, body: dict[str, Any], *, secret: str | None = APP_SECRET) -> httpx.Response:
        raw = json.dumps(body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Hub-Signature-256"] = signature(raw, secret)
        response = await self.http.post(self.webhook, content=raw, headers=headers)
        assert response.status_code == 200, response.text
        return response

    async def reset(self) -> None:
        await self.emulator.reset()
        await self.proxy.reset()

    async def replies(self, count: int) -> list[dict[str, Any]]:
        """Wait for ``count`` messages to reach the emulator, then return them."""
        return await until(self.emulator.messages, lambda m: len(m) >= count, f"{count} message(s)")

    async def runs(self, workflow_id: str, count: int, before: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Wait for ``count`` new runs of the workflow to have ended; return them, oldest first."""
        known = {e["id"] for e in before}

        async def ended() -> list[dict[str, Any]]:
            new = [e for e in await self.rest.executions(workflow_id) if e["id"] not in known]
            return sorted(
                (e for e in new if e["status"] not in ("new", "running", "waiting")),
                key=lambda e: int(e["id"]),
            )

        return await until(ended, lambda runs: len(runs) >= count, f"{count} ended run(s) of {workflow_id}")


async def until(read: Callable[[], Awaitable[T]], done: Callable[[T], bool], what: str) -> T:
    """Poll ``read()`` until ``done`` says so, within REPLY_TIMEOUT_S."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + REPLY_TIMEOUT_S
    while True:
        value = await read()
        if done(value):
            return value
        if loop.time() > deadline:
            raise AssertionError(f"waited {REPLY_TIMEOUT_S} s for {what}; last seen: {value}")
        await asyncio.sleep(0.25)


def import_files(home: Path, service_url: str, inbox_url: str) -> tuple[Path, Path]:
    credentials = home / "credentials.json"
    credentials.write_text(
        json.dumps([{"id": i, "name": n, "type": t, "data": d} for i, n, t, d in CREDENTIALS]),
        encoding="utf-8",
    )
    folder = home / "workflows"
    folder.mkdir()
    (folder / ERROR_HANDLER.name).write_text(json.dumps(errors_as_edited(inbox_url)), encoding="utf-8")
    (folder / BOT.name).write_text(json.dumps(bot_as_edited(service_url)), encoding="utf-8")
    return credentials, folder


@pytest.fixture(scope="module")
async def bot(n8n_bin: Path) -> AsyncIterator[Bot]:
    """The shipped bot published in n8n, between the real service (behind a proxy) and the emulator."""
    emulator_app = create_emulator_app(
        EMULATOR_TOKEN, phone_number_id=PHONE_NUMBER_ID, app_id=APP_ID, app_secret=APP_SECRET
    )
    meta = {
        "meta_api_version": API_VERSION,
        "meta_phone_number_id": PHONE_NUMBER_ID,
        "meta_access_token": EMULATOR_TOKEN,
        "phone_allowlist": ALLOWED,
    }
    with tempfile.TemporaryDirectory(prefix="n8n-e2e-") as temp, serve(emulator_app) as emulator_server:
        home = Path(temp)
        graph_url = emulator_server.url
        port = closed_port()
        n8n = N8n(n8n_bin, n8n_env(n8n_bin, home / "n8n", port, graph_url), f"http://127.0.0.1:{port}")
        async with (
            running_service({**meta, "meta_graph_url": graph_url}) as service,
            httpx.AsyncClient(timeout=60) as http,
            httpx.AsyncClient(base_url=graph_url, timeout=30) as control,
        ):
            with serve(ServiceProxy(str(service.base_url))) as proxy_server, serve(Inbox()) as inbox_server:
                credentials, folder = import_files(home, proxy_server.url, inbox_server.url)
                # Each n8n command is a start-up of n8n: keep their number down.
                n8n.cli("import:credentials", f"--input={credentials}")
                imported = n8n.cli("import:workflow", "--separate", f"--input={folder}")
                with (home / "n8n.log").open("wb") as log:
                    process = await asyncio.create_subprocess_exec(
                        str(n8n.bin / "n8n"), "start", env=n8n.env, stdout=log, stderr=subprocess.STDOUT
                    )
                    try:
                        await wait_for_n8n(http, n8n.url, process, home / "n8n.log")
                        rest = Rest(n8n.url, http)
                        await rest.sign_up_owner()
                        await rest.publish(ERRORS_ID)
                        await rest.publish(BOT_ID)
                        [trigger] = [n for n in load(BOT)["nodes"] if n["type"].endswith("whatsAppTrigger")]
                        webhook = f"{n8n.url}/webhook/{trigger['webhookId']}/webhook"
                        emulator = Emulator(graph_url, control)
                        try:
                            await until(emulator.subscriptions, bool, "the trigger's webhook subscription")
                        except AssertionError as exc:
                            raise AssertionError(f"{exc}\n{tail(home / 'n8n.log')}") from None
                        yield Bot(
                            n8n,
                            rest,
                            webhook,
                            emulator,
                            ProxyControl(proxy_server, http),
                            http,
                            imported,
                            inbox_server.url,
                        )
                    finally:
                        process.terminate()
                        try:
                            await asyncio.wait_for(process.wait(), 30)
                        except TimeoutError:
                            process.kill()
                            await process.wait()


async def wait_for_n8n(
    http: httpx.AsyncClient, url: str, process: asyncio.subprocess.Process, log: Path
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT_S
    while loop.time() < deadline:
        if process.returncode is not None:
            raise AssertionError(f"n8n exited with {process.returncode}:\n{tail(log)}")
        try:
            if (await http.get(f"{url}/healthz/readiness")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.5)
    raise AssertionError(f"n8n did not come up in {START_TIMEOUT_S} s:\n{tail(log)}")


def tail(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-3000:]


# --- Import, credentials, publishing -----------------------------------------------------------------


def bound(workflow: dict[str, Any]) -> dict[str, set[str]]:
    """The credential ids each type is bound to in a workflow's nodes."""
    found: dict[str, set[str]] = {}
    for node in workflow["nodes"]:
        for kind, ref in node.get("credentials", {}).items():
            found.setdefault(kind, set()).add(ref["id"])
    return found


async def test_cli_import_binds_the_credentials_named_in_the_files(bot: Bot) -> None:
    assert "Successfully imported 2 workflows." in bot.imported
    assert bound(await bot.rest.get(f"/workflows/{BOT_ID}")) == {k: {v} for k, v in INTENDED.items()}
    assert bound(await bot.rest.get(f"/workflows/{ERRORS_ID}")) == {"whatsAppApi": {INTENDED["whatsAppApi"]}}


async def test_rest_import_of_the_shipped_file_binds_them_too(bot: Bot) -> None:
    # The editor's Import from File keeps a reference whose id is null and saves the workflow this way.
    shipped = load(BOT)
    body = {k: shipped[k] for k in ("nodes", "connections", "settings", "pinData", "meta")}
    created = await bot.rest.post("/workflows", {**body, "name": "Bot imported over REST"})
    assert bound(created) == {k: {v} for k, v in INTENDED.items()}


async def test_the_editors_import_from_file_binds_them_too(bot: Bot) -> None:
    # n8n Cloud's way in: sign in, a new workflow, its menu's Import from File, save (in Chromium).
    [chromium] = (f.default for f in msgspec.structs.fields(Settings) if f.name == "chromium_path")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", chromium), args=["--no-sandbox"]
        )
        try:
            page = await browser.new_page()
            await page.goto(f"{bot.n8n.url}/signin")
            await page.locator("input[name=emailOrLdapLoginId]").fill(OWNER["email"])
            await page.locator("input[name=password]").fill(OWNER["password"])
            await page.keyboard.press("Enter")
            await page.wait_for_url("**/home/**", timeout=60_000)
            await page.goto(f"{bot.n8n.url}/workflow/new")
            await page.locator("[data-test-id=workflow-import-input]").set_input_files(str(BOT))
            await page.get_by_text("WhatsApp Trigger").first.wait_for(timeout=60_000)
            await page.keyboard.press("Control+s")
            await page.wait_for_url(lambda url: "/workflow/new" not in url, timeout=60_000)
            workflow_id = page.url.rstrip("/").rsplit("/", 1)[-1]
        finally:
            await browser.close()
    saved = await until(
        lambda: bot.rest.get(f"/workflows/{workflow_id}"), lambda w: bool(w["nodes"]), "the saved import"
    )
    assert {n["name"] for n in saved["nodes"]} == {n["name"] for n in load(BOT)["nodes"]}
    assert bound(saved) == {k: {v} for k, v in INTENDED.items()}


async def test_publishing_subscribes_the_apps_webhook_and_meta_can_verify_it(bot: Bot) -> None:
    # The trigger could get an app token only with the intended app's id and secret.
    [subscription] = await bot.emulator.subscriptions()
    assert subscription["callback_url"] == bot.webhook
    assert [f["name"] for f in subscription["fields"]] == ["messages"]
    # What Meta does next: a GET with the verify token, which must be echoed.
    query = {
        "hub.mode": "subscribe",
        "hub.challenge": "1158201444",
        "hub.verify_token": subscription["verify_token"],
    }
    answer = await bot.http.get(bot.webhook, params=query)
    assert (answer.status_code, answer.text) == (200, "1158201444")


# --- The conversations -------------------------------------------------------------------------------


def config_value(name: str) -> str:
    config = next(n for n in load(BOT)["nodes"] if n["name"] == "Config")
    return str(
        next(a["value"] for a in config["parameters"]["assignments"]["assignments"] if a["name"] == name)
    )


async def test_sales_7d_is_marked_read_then_answered_with_the_picture_in_one_service_call(bot: Bot) -> None:
    await bot.reset()
    await bot.deliver(delivery("text-list"))  # asks the service for the dashboards, and keeps them
    await bot.replies(1)
    await bot.reset()
    before = await bot.rest.executions(BOT_ID)
    body = delivery("text-sales-7d")
    await bot.deliver(body)
    [message] = await bot.replies(1)
    [run] = await bot.runs(BOT_ID, 1, before)
    outputs = await bot.rest.outputs(run["id"])
    # The shapes the Code nodes' unit tests feed are the ones n8n produced here.
    assert outputs["WhatsApp Trigger"] == trigger_items(body)
    [rendered] = outputs["Render dashboard"]
    assert rendered.keys() == http_answer(200, "{}").keys()
    assert rendered["statusCode"] == 200
    assert json.loads(rendered["data"])["media_id"] == message["media_id"]
    [upload] = await bot.emulator.uploads()
    assert (message["type"], message["to"], message["phone_number_id"]) == ("image", ALLOWED, PHONE_NUMBER_ID)
    assert message["media_id"] == upload["media_id"]
    assert message["media_known"]
    assert message["body"]["image"]["caption"].startswith("Sales (7d) · ")
    [read] = await bot.emulator.reads()
    assert read["message_id"] == body["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    assert read["typing"] == "text"
    assert read["seq"] < message["seq"], "the read receipt and typing come before the picture"
    seen = await bot.proxy.requests()
    assert [(r["method"], r["path"]) for r in seen] == [("POST", "/v1/media")]
    assert {r["api_key"] for r in seen} == {API_KEY}, "the service saw the intended credential's key"


async def test_a_split_dashboard_arrives_as_several_pictures_in_order_captioned_once(bot: Bot) -> None:
    await bot.reset()
    before = await bot.rest.executions(BOT_ID)
    await bot.deliver(delivery("text-sales-7d", text="ops"))  # the demo's tall page, split = true
    [run] = await bot.runs(BOT_ID, 1, before)
    assert run["status"] == "success"
    [rendered] = (await bot.rest.outputs(run["id"]))["Render dashboard"]
    assert rendered["statusCode"] == 200, rendered["data"]
    parts = json.loads(rendered["data"])["parts"]
    assert len(parts) > 1
    messages = await bot.replies(len(parts))
    assert [m["type"] for m in messages] == ["image"] * len(parts)
    # In the page's order, top to bottom, as WhatsApp shows them: by the order Meta received them.
    assert [m["media_id"] for m in sorted(messages, key=lambda m: m["seq"])] == [p["media_id"] for p in parts]
    assert all(m["media_known"] and m["to"] == ALLOWED for m in messages)
    first, *rest = sorted(messages, key=lambda m: m["seq"])
    assert first["body"]["image"]["caption"].startswith("Operations · ")
    assert all(not m["body"]["image"].get("caption") for m in rest), "the caption is on the first only"


async def test_a_repeated_delivery_gets_one_picture(bot: Bot) -> None:
    await bot.reset()
    before = await bot.rest.executions(BOT_ID)
    body = delivery("text-sales-7d")
    await bot.deliver(body)
    await bot.replies(1)
    # Meta delivers a webhook again when it thinks the first delivery failed, some time later. (Two
    # deliveries at the same instant could both pass: n8n records seen ids after reading them.)
    await bot.deliver(body)
    await bot.runs(BOT_ID, 2, before)
    assert [m["type"] for m in await bot.emulator.messages()] == ["image"]
    assert [r["path"] for r in await bot.proxy.requests()] == ["/v1/media"]
    assert len(await bot.emulator.reads()) == 1


async def test_unsigned_and_wrongly_signed_webhooks_and_status_updates_start_nothing(bot: Bot) -> None:
    await bot.reset()
    before = await bot.rest.executions(BOT_ID)
    await bot.deliver(delivery("text-help"), secret=None)
    await bot.deliver(delivery("text-help"), secret="another-apps-secret")
    await bot.deliver(payload("status-delivered"))
    await bot.deliver(delivery("text-list"))  # signed: the only one that runs
    [run] = await bot.runs(BOT_ID, 1, before)
    [message] = await bot.replies(1)
    assert message["text"] == CATALOGUE
    assert [
        e["id"] for e in await bot.rest.executions(BOT_ID) if e["id"] not in {b["id"] for b in before}
    ] == [run["id"]]


@pytest.mark.parametrize(
    ("body", "to", "expected"),
    [
        pytest.param(delivery("text-help"), ALLOWED, f"{config_value('helpText')}\n\n{CATALOGUE}", id="help"),
        pytest.param(delivery("text-list"), ALLOWED, CATALOGUE, id="list"),
        pytest.param(delivery("image-message"), ALLOWED, config_value("hintText"), id="image-gets-a-hint"),
        pytest.param(
            delivery("text-unknown"), ALLOWED, f'I don\'t know "борлуулалт".\n\n{CATALOGUE}', id="unknown"
        ),
        pytest.param(
            delivery(text="sales 1y"),
            ALLOWED,
            '*sales* has no range "1y". Choose one of: today, 7d, 30d or 90d.',
            id="value-not-allowed",
        ),
    ],
)
async def test_text_replies(bot: Bot, body: dict[str, Any], to: str, expected: str) -> None:
    await bot.reset()
    await bot.deliver(body)
    [message] = await bot.replies(1)
    assert (message["type"], message["to"], message["text"]) == ("text", to, expected)
    assert await bot.emulator.uploads() == []


async def test_a_stranger_gets_one_polite_refusal(bot: Bot) -> None:
    await bot.reset()
    before = await bot.rest.executions(BOT_ID)
    await bot.deliver(delivery("text-stranger"))
    [refusal] = await bot.replies(1)
    await bot.deliver(delivery("text-stranger", text="sales 7d"))
    await bot.runs(BOT_ID, 2, before)
    assert (refusal["to"], refusal["text"]) == (STRANGER, config_value("refusalText"))
    assert len(await bot.emulator.messages()) == 1, "a stranger is answered once a day at most"
    assert await bot.emulator.reads() == []
    assert await bot.proxy.requests() == []


async def test_a_reaction_gets_nothing(bot: Bot) -> None:
    await bot.reset()
    before = await bot.rest.executions(BOT_ID)
    await bot.deliver(delivery("reaction"))
    [run] = await bot.runs(BOT_ID, 1, before)
    assert run["status"] == "success"
    assert await bot.emulator.messages() == []
    assert await bot.emulator.reads() == []


def problem(status: int, slug: str, retry_after: int | None = None) -> CannedAnswer:
    body = {"type": PROBLEM + slug, "title": slug, "status": status, "detail": "x", "request_id": "r"}
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return CannedAnswer("/v1/media", status, json.dumps(body), "application/problem+json", headers)


async def test_a_restarting_browser_is_retried_once_after_retry_after(bot: Bot) -> None:
    await bot.reset()
    await bot.proxy.answer(problem(503, "browser-unavailable", retry_after=1))
    await bot.deliver(delivery("text-sales-7d"))
    [message] = await bot.replies(1)
    assert message["type"] == "image"
    assert [
        (r["path"], r["status"], r["canned"]) for r in await bot.proxy.requests() if r["path"] == "/v1/media"
    ] == [
        ("/v1/media", 503, True),
        ("/v1/media", 200, False),
    ]


@pytest.mark.parametrize(
    ("answers", "sentence"),
    [
        pytest.param(
            [problem(503, "browser-unavailable", 1)] * 2,
            "The dashboard service is restarting just now. Please try again in a few minutes.",
            id="503-twice",
        ),
        pytest.param(
            [problem(429, "overloaded", 1)] * 2,
            "Many pictures are being made just now. Please try again in a minute.",
            id="429-twice",
        ),
    ],
)
async def test_a_second_failure_gets_a_clear_sentence(
    bot: Bot, answers: list[CannedAnswer], sentence: str
) -> None:
    await bot.reset()
    await bot.proxy.answer(*answers)
    await bot.deliver(delivery("text-sales-7d"))
    [message] = await bot.replies(1)
    assert (message["type"], message["text"]) == ("text", sentence)
    assert [r["canned"] for r in await bot.proxy.requests() if r["path"] == "/v1/media"] == [True, True]


@pytest.mark.parametrize(
    ("answer", "sentence"),
    [
        pytest.param(
            CannedAnswer("/v1/media", 502, "<html><body>502 Bad Gateway</body></html>", "text/html"),
            "The dashboard service is not available right now. Please try again in a few minutes.",
            id="proxy-html-502",
        ),
        pytest.param(
            CannedAnswer("/v1/media", 429, "Too Many Requests", "text/plain", {"Retry-After": "1"}),
            "You have asked for many pictures just now. Please wait a minute and try again.",
            id="text-429",
        ),
    ],
)
async def test_a_non_json_answer_keeps_its_status(bot: Bot, answer: CannedAnswer, sentence: str) -> None:
    await bot.reset()
    before = await bot.rest.executions(BOT_ID)
    await bot.proxy.answer(answer)
    await bot.deliver(delivery("text-sales-7d"))
    [message] = await bot.replies(1)
    assert (message["type"], message["text"]) == ("text", sentence)
    assert len([r for r in await bot.proxy.requests() if r["path"] == "/v1/media"]) == 1
    [run] = await bot.runs(BOT_ID, 1, before)
    [rendered] = (await bot.rest.outputs(run["id"]))["Render dashboard"]
    expected = http_answer(answer.status, answer.body, answer.content_type)
    assert rendered.keys() == expected.keys()
    assert (rendered["statusCode"], rendered["data"]) == (expected["statusCode"], expected["data"])
    assert rendered["headers"]["content-type"].startswith(answer.content_type)


async def test_meta_refusing_the_picture_reaches_the_operator(bot: Bot) -> None:
    await bot.reset()
    before_bot, before_errors = await bot.rest.executions(BOT_ID), await bot.rest.executions(ERRORS_ID)
    refusal = {
        "kind": "error",
        "on": "messages",
        "code": 131030,
        "message": "(#131030) Recipient phone number not in allowed list",
    }
    await bot.emulator.faults(refusal)
    await bot.deliver(delivery("text-sales-7d"))
    [failed] = await bot.runs(BOT_ID, 1, before_bot)
    assert failed["status"] == "error"
    [handled] = await bot.runs(ERRORS_ID, 1, before_errors)
    assert handled["status"] == "success"
    [note] = await bot.replies(1)
    assert (note["to"], note["phone_number_id"]) == (OPERATOR, PHONE_NUMBER_ID)
    assert note["text"].startswith(f"⚠️ WhatsApp dashboard bot: run {failed['id']} failed at Send image.")
    assert "Recipient phone number not in allowed list" in note["text"], "Meta's own words"
    assert f"/workflow/{BOT_ID}/executions/{failed['id']}" in note["text"]
    assert ALLOWED not in note["text"]
    assert ALLOWED[-7:] not in note["text"]
    [posted] = await until(lambda: received(bot.http, bot.inbox), bool, "the operator's webhook")
    assert posted["text"] == note["text"]
    assert (posted["executionId"], posted["node"]) == (failed["id"], "Send image")
