"""Chromium's command line: the flags every browser the service drives is started with."""

from __future__ import annotations

from ..settings import Settings

# Flags for a server-side headless Chromium: no background traffic, no first-run UI, no GPU.
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-breakpad",
    "--metrics-recording-only",
    "--mute-audio",
    "--hide-scrollbars",
    "--font-render-hinting=none",
    # WebRTC's UDP (STUN/TURN) is invisible to request interception; no dashboard needs it.
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    # Keep cross-site iframes in their page's process, where the network policy's per-page interception
    # of redirects sees them (out-of-process iframes are separate DevTools targets).
    "--disable-site-isolation-trials",
    "--disable-features=IsolateOrigins,site-per-process",
)


def chromium_args(settings: Settings) -> list[str]:
    """The flags for launching Chromium with these settings."""
    args = list(CHROMIUM_ARGS)
    if settings.page_heap_mb:
        # A runaway page crashes its own tab (a clean error) before it can eat the container's memory.
        args.append(f"--js-flags=--max-old-space-size={settings.page_heap_mb}")
    return args
