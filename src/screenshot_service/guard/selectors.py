"""Syntax of a request's clip ``selector``, checked without a browser: CSS for both engines, and XPath
for Playwright, whose other selector engines the API does not offer.

Chromium would refuse a malformed selector only once the page had loaded, and each engine reports it in
its own words (Playwright's ``xpath=`` errors were a 502); checked here, it is a 422 naming ``selector``
before any render. CSS is parsed by soupsieve (Selectors Level 4: ``:is``, ``:where``, ``:has``,
``:nth-child(An+B of S)``), XPath 1.0 by libxml2 through lxml, the XPath Chromium evaluates too.
"""

from __future__ import annotations

import soupsieve
from lxml import etree

from ..errors import InvalidRequest
from ..settings import Engine

# Playwright reads a selector starting with '//' or '..' as XPath, as it does one with 'xpath='.
_XPATH_PREFIXES = ("xpath=", "//", "..")


def check_selector(selector: str, engine: Engine) -> None:
    """Raise a 422 naming ``selector`` unless ``selector`` is CSS, or (Playwright) XPath, that parses."""
    if selector.startswith(_XPATH_PREFIXES):
        if engine != "playwright":
            raise _invalid(f"XPath selectors need the Playwright engine; {engine} takes CSS only.")
        expression = selector.removeprefix("xpath=")
        try:
            etree.XPath(expression)
        except etree.XPathSyntaxError:
            raise _invalid("not a valid XPath 1.0 expression.") from None
        return
    css = selector.removeprefix("css=") if engine == "playwright" else selector
    try:
        soupsieve.compile(css)
    except soupsieve.SelectorSyntaxError as exc:
        raise _invalid(f"not a valid CSS selector ({_first_line(exc)}).") from None
    except NotImplementedError:  # soupsieve's word for pseudo-elements, which select no element
        raise _invalid("pseudo-elements (::before...) cannot be captured; select an element.") from None


def _invalid(reason: str) -> InvalidRequest:
    return InvalidRequest(f"selector: {reason}", field="selector")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200]
