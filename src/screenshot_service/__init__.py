"""Dashboard screenshot service: renders configured dashboards in headless Chromium for a WhatsApp bot."""

__version__ = "0.1.0"
