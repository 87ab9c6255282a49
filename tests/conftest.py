"""Shared fixtures; each area keeps its own in a plugin module listed here, so branches merge cleanly."""

from __future__ import annotations

# --- Meta emulator fixtures (tests/emulator_fixtures.py) ---
pytest_plugins = ["tests.emulator_fixtures"]
