"""The ``screenshot-service`` command: ``serve``, ``demo``, ``check-config``."""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import sys
from collections.abc import Iterator, Sequence

import msgspec
import uvicorn

from .settings import ConfigError, Secret, Settings, load_settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="screenshot-service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the service (settings from SCREENSHOT_* variables)")
    commands.add_parser("demo", help="run the service with a fresh API key and print a curl to try it")
    commands.add_parser(
        "check-config", help="validate the settings and dashboards, print them with secrets hidden"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "check-config":
            return check_config()
        if args.command == "demo":
            return demo()
        return serve(load_settings())
    except ConfigError as exc:
        print(f"screenshot-service: configuration error: {exc}", file=sys.stderr)
        return 2


def serve(settings: Settings) -> int:
    """Run the HTTP server until SIGTERM or Ctrl+C."""
    from .app import create_app  # noqa: PLC0415  (keeps `check-config` light)

    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # our structlog configuration, not uvicorn's
        access_log=False,  # one structured line per render instead
        server_header=False,
        ws="none",  # no WebSocket routes; and the pyppeteer extra pins an old websockets
        timeout_graceful_shutdown=30,
    )
    _Server(config).run()
    return 0


class _Server(uvicorn.Server):
    """uvicorn's server, except that a drained SIGTERM or Ctrl+C is a clean exit (status 0).

    uvicorn re-raises the signal after its graceful shutdown, so the process would die by SIGTERM
    and container platforms would log every normal stop as a failure.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def check_config() -> int:
    """Print the effective settings and dashboards; secrets are shown as stars."""
    from .dashboards import Catalog  # noqa: PLC0415

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


def demo() -> int:
    """The service with the demo dashboards and a one-off API key, and a curl to try it."""
    key = os.environ.get("SCREENSHOT_API_KEYS") or f"demo:{secrets.token_urlsafe(24)}"
    settings = load_settings({**os.environ, "SCREENSHOT_API_KEYS": key, "SCREENSHOT_LOG_FORMAT": "console"})
    token = next(iter(settings.api_keys.values())).reveal()
    base = settings.self_url
    print(
        f"""
Demo: the service is starting at {base} (Ctrl+C stops it). Your API key: {token}

  curl -sS -o sales.png -H 'X-API-Key: {token}' -H 'Content-Type: application/json' \\
       -d '{{"dashboard": "sales", "params": {{"range": "7d"}}}}' {base}/v1/renders

Then open sales.png. The dashboard itself: {base}/demo/sales?range=7d   API docs: {base}/openapi
""",
        flush=True,
    )
    return serve(settings)


if __name__ == "__main__":
    raise SystemExit(main())
