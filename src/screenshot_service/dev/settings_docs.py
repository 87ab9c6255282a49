"""The README's table of ``SCREENSHOT_*`` variables, generated from :class:`~.settings.Settings`.

Each row comes from a field: its name, its default, and its meaning (the docstring under the field,
plus the choices or bounds its type allows). ``python -m screenshot_service.dev.settings_docs --write
README.md`` rewrites the table between its markers; a test fails when the README drifts from the code.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import re
import sys
import typing
from collections.abc import Sequence
from pathlib import Path

import msgspec.inspect as mi

from .. import settings as settings_module
from ..settings import ENV_PREFIX, Settings

GENERATOR = "python -m screenshot_service.dev.settings_docs --write README.md"
BEGIN = f"<!-- settings-table:begin (generated: {GENERATOR}) -->"
END = "<!-- settings-table:end -->"
REQUIRED = frozenset({"api_keys"})  # create_app refuses to start without one


def field_docs() -> dict[str, str]:
    """Each Settings field's docstring (the string literal right under it in settings.py)."""
    tree = ast.parse(inspect.getsource(settings_module))
    settings_class = next(
        node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == Settings.__name__
    )
    docs: dict[str, str] = {}
    body = settings_class.body
    for node, following in zip(body, [*body[1:], None], strict=True):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _default(name: str, value: object) -> str:
    if name in REQUIRED:
        return "*(required)*"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value in ("", (), frozenset(), {}):
        return "*(empty)*"
    return f"`{value}`"


def _bounds(kind: mi.Type) -> str:
    if isinstance(kind, mi.LiteralType):
        return "One of " + ", ".join(f"`{value}`" for value in kind.values) + "."
    if isinstance(kind, mi.IntType | mi.FloatType):
        low = kind.ge if kind.ge is not None else kind.gt
        high = kind.le if kind.le is not None else kind.lt
        if low is not None and high is not None:
            return f"From {low} to {high}." if kind.ge is not None else f"Over {low}, at most {high}."
    return ""


def _cell(text: str) -> str:
    """Markdown for a table cell: rST ``code`` as `code`, pipes escaped."""
    return re.sub(r"``([^`]+)``", r"`\1`", text).replace("|", "\\|")


def markdown_table() -> str:
    """The table of every ``SCREENSHOT_*`` variable: name, default, meaning."""
    docs = field_docs()
    info = mi.type_info(Settings)
    assert isinstance(info, mi.StructType)
    defaults = Settings()
    hints = typing.get_type_hints(Settings)
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for field in info.fields:
        secret = "**Secret.**" if "Secret" in str(hints[field.name]) else ""
        meaning = " ".join(part for part in (docs.get(field.name, ""), _bounds(field.type), secret) if part)
        name = f"`{ENV_PREFIX}{field.name.upper()}`"
        rows.append(f"| {name} | {_default(field.name, getattr(defaults, field.name))} | {_cell(meaning)} |")
    return "\n".join(rows)


def block() -> str:
    """The table between its markers, as it stands in the README."""
    return f"{BEGIN}\n{markdown_table()}\n{END}"


def replace_block(text: str) -> str:
    """``text`` with the table between the markers regenerated; the markers must be there."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the settings table markers are missing: {BEGIN} ... {END}")
    return text[:start] + block() + text[end + len(END) :]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m screenshot_service.dev.settings_docs",
        description="Print the SCREENSHOT_* variables as a Markdown table, or update a README's copy.",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="README", help="rewrite the table between its markers in this file")
    group.add_argument("--check", metavar="README", help="exit 1 if this file's table differs from the code")
    args = parser.parse_args(argv)
    if args.write or args.check:
        path = Path(args.write or args.check)
        text = path.read_text(encoding="utf-8")
        updated = replace_block(text)
        if args.check:
            if updated != text:
                print(f"{path}: the settings table is out of date; run with --write {path}", file=sys.stderr)
                return 1
            return 0
        path.write_text(updated, encoding="utf-8")
        return 0
    print(markdown_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["block", "field_docs", "markdown_table", "replace_block"]
