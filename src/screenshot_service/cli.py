"""The ``screenshot-service`` command: ``serve``, ``demo``, ``check-config``, ``meta-emulator``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import math
import os
import secrets
import signal
import socket
import sys
from collections.abc import Iterator, Sequence

import msgspec
import structlog
import uvicorn

from .settings import ConfigError, Secret, Settings, load_settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="screenshot-service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the service (settings from SCREENSHOT_* variables)")
    demo_command = commands.add_parser(
        "demo", help="run the service with a fresh API key (and a local Meta emulator) and print curls"
    )
    demo_command.add_argument(
        "--emulator-port", type=int, default=8090, help="port of the local Meta emulator (default 8090)"
    )
    commands.add_parser(
        "check-config", help="validate the settings and dashboards, print them with secrets hidden"
    )
    commands.add_parser(
        "meta-emulator",
        help="run the local WhatsApp Graph API emulator (--help for its options)",
        add_help=False,
    )
    args, rest = parser.parse_known_args(argv)
    if args.command in DEV_COMMANDS and importlib.util.find_spec(f"{__package__}.dev") is None:
        print(
            f"screenshot-service: '{args.command}' is a development command; it is not installed here "
            "(the production image leaves the development tools out).",
            file=sys.stderr,
        )
        return 2
    if args.command == "meta-emulator":
        from .dev.meta_emulator import main as emulator_main  # noqa: PLC0415

        return emulator_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if args.command == "check-config":
            return check_config()
        if args.command == "demo":
            return demo(args.emulator_port)
        return serve(load_settings())
    except ConfigError as exc:
        print(f"screenshot-service: configuration error: {exc}", file=sys.stderr)
        return 2


DEV_COMMANDS = frozenset({"demo", "meta-emulator"})


def serve(settings: Settings) -> int:
    """Run the HTTP server until SIGTERM or Ctrl+C."""
    _Server(_service_config(settings)).run()
    return 0


def _service_config(settings: Settings) -> uvicorn.Config:
    from .app import create_app  # noqa: PLC0415  (keeps `check-config` light)

    return uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # our structlog configuration, not uvicorn's
        access_log=False,  # one structured line per render instead
        server_header=False,
        ws="none",  # no WebSocket routes; and the pyppeteer extra pins an old websockets
        # SIGTERM: stop accepting, let requests in flight finish for this long, then the lifespan
        # closes the browser and empties the temp directory.
        timeout_graceful_shutdown=math.ceil(settings.drain_timeout_s),
    )


class _Server(uvicorn.Server):
    """uvicorn's server, except that a drained SIGTERM or Ctrl+C is a clean exit (status 0).

    uvicorn re-raises the signal after its graceful shutdown, so the process would die by SIGTERM
    and container platforms would log every normal stop as a failure.
    """

    def __init__(self, config: uvicorn.Config, *, own_signals: bool = True, label: str | None = None) -> None:
        super().__init__(config)
        self.own_signals = own_signals  # False: whoever runs several servers handles the signals
        self.label = label

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve; with a label, every line logged while serving (uvicorn's own included) carries
        ``server=<label>``, so several servers in one process say which line is whose."""
        if self.label:  # bound in this task's own copy of the context: other servers' lines stay plain
            structlog.contextvars.bind_contextvars(server=self.label)
        await super().serve(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if not self.own_signals:
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def check_config() -> int:
    """Print the effective settings and dashboards; secrets are shown as stars."""
    from .dashboards.catalog import Catalog  # noqa: PLC0415

    settings = load_settings()
    catalog = Catalog.load(settings)
    shown = msgspec.to_builtins(settings, enc_hook=str)
    shown["api_keys"] = dict.fromkeys(settings.api_keys, "**********")
    for field in msgspec.structs.fields(Settings):
        if isinstance(value := getattr(settings, field.name), Secret):
            shown[field.name] = "**********" if value else ""
    print(
        msgspec.json.format(
            msgspec.json.encode({"settings": shown, "dashboards": catalog.describe()})
        ).decode()
    )
    return 0


def demo(emulator_port: int) -> int:
    """The service with the demo dashboards and a one-off API key, and curls to try it.

    Unless real Meta settings are in the environment, uploads go to a local Graph API emulator
    started beside the service on 127.0.0.1, so ``/v1/media`` works on a machine with no account.
    """
    env = dict(os.environ)
    env.setdefault("SCREENSHOT_API_KEYS", f"demo:{secrets.token_urlsafe(24)}")
    env["SCREENSHOT_LOG_FORMAT"] = "console"
    emulated = not load_settings(env).meta_configured
    emulator_token = secrets.token_urlsafe(24)
    graph = f"http://127.0.0.1:{emulator_port}"
    if emulated:
        env |= {
            "SCREENSHOT_META_GRAPH_URL": graph,
            "SCREENSHOT_META_PHONE_NUMBER_ID": DEMO_PHONE_NUMBER_ID,
            "SCREENSHOT_META_ACCESS_TOKEN": emulator_token,
        }
    settings = load_settings(env)
    key = next(iter(settings.api_keys.values())).reveal()
    base = settings.self_url
    version = settings.meta_api_version
    request = """-H 'Content-Type: application/json' -d '{"dashboard": "sales", "params": {"range": "7d"}}'"""
    print(
        f"""
Demo: the service is starting at {base} (Ctrl+C stops it). Your API key: {key}

A PNG of the sales dashboard:
  curl -sS -o sales.png -H 'X-API-Key: {key}' {request} {base}/v1/renders

The same, uploaded to WhatsApp; the answer carries its media_id:
  curl -sS -H 'X-API-Key: {key}' {request} {base}/v1/media
""",
        flush=True,
    )
    if not emulated:
        print("Uploads go to Meta, as SCREENSHOT_META_* say.\n", flush=True)
        return serve(settings)
    print(
        f"""Uploads go to a local WhatsApp Graph API emulator at {graph}. Fetch an upload back:
  curl -sS -H 'Authorization: Bearer {emulator_token}' {graph}/{version}/MEDIA_ID    # its url
  curl -sS -o back.png -H 'Authorization: Bearer {emulator_token}' \\
       '{graph}/whatsapp_business/attachments/?mid=MEDIA_ID'

The dashboard itself: {base}/demo/sales?range=7d   API docs: {base}/openapi
""",
        flush=True,
    )
    from .dev.meta_emulator import create_emulator_app  # noqa: PLC0415

    emulator = uvicorn.Config(
        create_emulator_app(emulator_token, phone_number_id=DEMO_PHONE_NUMBER_ID),
        host="127.0.0.1",
        port=emulator_port,
        log_config=None,
        access_log=False,
        ws="none",
    )
    servers = [
        _Server(_service_config(settings), own_signals=False),
        _Server(emulator, own_signals=False, label="meta-emulator"),
    ]
    asyncio.run(_serve_together(servers))
    return 0


DEMO_PHONE_NUMBER_ID = "100000000000001"
"""The demo's WhatsApp phone number id, which the emulator accepts (Meta's are 15-digit numbers too)."""


async def _serve_together(servers: list[_Server]) -> None:
    """Run several servers in one loop; SIGTERM or Ctrl+C stops them all, and the first to fail."""

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()


if __name__ == "__main__":
    raise SystemExit(main())
