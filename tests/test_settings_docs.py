"""The README's table of SCREENSHOT_* variables is the one generated from the settings code."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from screenshot_service.dev import settings_docs
from screenshot_service.settings import Settings

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_table_matches_the_settings_code() -> None:
    text = README.read_text(encoding="utf-8")
    assert settings_docs.block() in text, (
        "README.md's settings table is out of date: run "
        "`.venv/bin/python -m screenshot_service.dev.settings_docs --write README.md`"
    )


def test_every_setting_has_a_row_and_a_meaning() -> None:
    rows = settings_docs.markdown_table().splitlines()[2:]
    names = [re.match(r"\| `SCREENSHOT_(\w+)` \|", row) for row in rows]
    assert [m.group(1).lower() for m in names if m] == [f.name for f in msgspec.structs.fields(Settings)]
    docs = settings_docs.field_docs()
    undocumented = [f.name for f in msgspec.structs.fields(Settings) if not docs.get(f.name)]
    assert not undocumented, f"give these settings a docstring in settings.py: {undocumented}"


def test_defaults_are_the_code_defaults() -> None:
    table = settings_docs.markdown_table()
    assert "| `SCREENSHOT_PORT` | `8000` |" in table
    assert f"| `SCREENSHOT_RATE_LIMIT_PER_KEY` | `{Settings().rate_limit_per_key}` |" in table
    assert "| `SCREENSHOT_API_KEYS` | *(required)* |" in table
    assert "| `SCREENSHOT_ALLOW_RAW_URLS` | `false` |" in table


def test_a_drifted_readme_is_caught_and_rewritten(tmp_path: Path) -> None:
    stale = README.read_text(encoding="utf-8").replace(
        "| `SCREENSHOT_PORT` | `8000` |", "| `SCREENSHOT_PORT` | `80` |"
    )
    readme = tmp_path / "README.md"
    readme.write_text(stale, encoding="utf-8")
    assert settings_docs.main(["--check", str(readme)]) == 1
    assert settings_docs.main(["--write", str(readme)]) == 0
    assert settings_docs.main(["--check", str(readme)]) == 0
    assert readme.read_text(encoding="utf-8") == README.read_text(encoding="utf-8")


def test_a_readme_without_markers_is_an_error(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# no table here\n", encoding="utf-8")
    with pytest.raises(ValueError, match="markers"):
        settings_docs.main(["--check", str(readme)])
