"""Chromium: the supervised browser process, the capture algorithm, and one module per engine.

Only ``playwright.py`` and ``pyppeteer.py`` import a browser library; the rest of the service talks to
the :class:`~.supervisor.Supervisor` with the specs of ``capture.py``.
"""
