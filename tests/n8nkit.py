"""The n8n workflows as tests see them: loading, Code nodes run under Node, webhook fixtures, a cached n8n."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / "n8n-workflows"
BOT = WORKFLOWS / "whatsapp-dashboard-bot.json"
ERROR_HANDLER = WORKFLOWS / "error-handler.json"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "whatsapp-webhooks"
RUNNER = Path(__file__).resolve().parent / "n8n" / "run_code_node.mjs"
INSTALLER = Path(__file__).resolve().parent / "n8n" / "install-n8n.sh"

ALLOWED = "97699112233"
CATALOGUE = (
    "Dashboards I can show:\n"
    "• *sales [range]*: Sales\n"
    "   range: today, 7d, 30d or 90d (default today)\n"
    "• *revenue [range]*: Revenue\n"
    "   range: today, 7d, 30d or 90d (default 7d)\n"
    "• *ops*: Operations\n\n"
    "Send e.g. *sales 7d*."
)
"""The bot's `list` answer for the demo's dashboards (what the service under test serves)."""
"""The fixtures' sender on the allowlist; 4915112345678 (``text-stranger``) is not on it."""


def load(path: Path) -> dict[str, Any]:
    workflow: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return workflow


def payload(name: str) -> dict[str, Any]:
    """A webhook body as Meta POSTs it (``text-help``, ``status-failed``, ...)."""
    body: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return body


def http_answer(
    status: int, text: str | None, content_type: str = "application/json", **headers: str
) -> dict[str, Any]:
    """What n8n's HTTP Request node (4.2, Full Response, Never Error, Response Format: Text) outputs for
    an answer: the body as text under ``data``, the status and the (lower-cased) headers, whatever the
    content type; a body-less answer has no ``data`` (``HttpRequestV3.node.js``)."""
    answer: dict[str, Any] = {
        "headers": {"content-type": content_type, **{k.replace("_", "-"): v for k, v in headers.items()}},
        "statusCode": status,
        "statusMessage": HTTPStatus(status).phrase,
    }
    if text:
        answer["data"] = text
    return answer


def connection_failed(
    message: str = "connect ECONNREFUSED 127.0.0.1:1", code: str = "ECONNREFUSED"
) -> dict[str, Any]:
    """What the node outputs (On Error: Continue) when no answer came: the request's error."""
    return {"error": {"message": message, "name": "AxiosError", "code": code, "status": None}}


def trigger_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """What the WhatsApp Trigger node emits for a webhook body: each change's value, with its field
    (``WhatsAppTrigger.node.ts``'s ``webhook()``)."""
    return [
        {**change["value"], "field": change["field"]}
        for entry in body["entry"]
        for change in entry["changes"]
    ]


def unflatten(text: str) -> Any:
    """Execution data as n8n stores and serves it (the ``flatted`` format: every object, array and string
    in one list, referenced by index), back to plain JSON."""
    values: list[Any] = json.loads(text)
    done: dict[int, Any] = {}

    def entry(index: int) -> Any:
        if index in done:
            return done[index]
        value = values[index]
        if isinstance(value, list):
            out: Any = []
            done[index] = out
            out.extend(ref(v) for v in value)
        elif isinstance(value, dict):
            out = {}
            done[index] = out
            out.update({k: ref(v) for k, v in value.items()})
        else:
            out = value
        return out

    def ref(value: Any) -> Any:
        return entry(int(value)) if isinstance(value, str) else value

    return entry(0)


def require_n8n() -> bool:
    return os.environ.get("REQUIRE_N8N", "") == "1"


def node_binary() -> str:
    """Node for running Code nodes: the one on PATH, or the cached Node 24 of the n8n install."""
    found = shutil.which("node")
    if found:
        return found
    cached = n8n_install()
    if cached is not None:
        return str(cached / "node")
    message = "Node.js is needed to unit test the n8n Code nodes"
    if require_n8n():
        pytest.fail(message)
    pytest.skip(message)


def n8n_install() -> Path | None:
    """The cached n8n's bin directory (``node``, ``n8n``), or None when it is not installed.

    It is installed here (minutes, once) only when ``REQUIRE_N8N=1``; CI runs the installer first.
    """
    for flag in ("--cached", "--print-bin") if require_n8n() else ("--cached",):
        try:
            done = subprocess.run(
                ["bash", str(INSTALLER), flag], capture_output=True, text=True, timeout=3600, check=False
            )
        except subprocess.TimeoutExpired:
            return None
        if done.returncode == 0:
            return Path(done.stdout.strip().splitlines()[-1])
    return None


def run_code_node(
    workflow: Path,
    node: str,
    items: list[dict[str, Any]],
    nodes: dict[str, list[dict[str, Any]]] | None = None,
    *,
    static_data: dict[str, Any] | None = None,
    run_index: int = 0,
) -> list[dict[str, Any]]:
    """Run a Code node's JavaScript as n8n does: ``items`` are its input, ``nodes`` earlier nodes' output.

    ``static_data`` is the workflow's static data; it is updated in place as the run leaves it.
    """
    request = {
        "items": items,
        "nodes": nodes or {},
        "executionId": "4242",
        "staticData": static_data if static_data is not None else {},
        "runIndex": run_index,
    }
    done = subprocess.run(
        [node_binary(), str(RUNNER), str(workflow), node],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    if "error" in result:
        raise AssertionError(f"{node} threw: {result['error']}")
    if static_data is not None:
        static_data.clear()
        static_data.update(result["staticData"])
    items_out: list[dict[str, Any]] = result["items"]
    return items_out
