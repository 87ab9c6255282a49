"""WhatsApp numbers: normalised to E.164 digits for comparison, and masked for logs and store keys."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

_SEPARATORS = re.compile(r"[\s().-]")
_E164_DIGITS = re.compile(r"[1-9][0-9]{6,14}")
# A run of 7-15 digits standing alone (optionally after '+'): what a phone number looks like in text.
# '#' is excluded before it so masked forms (whose hash may be all digits) are left alone.
_NUMBER_IN_TEXT = re.compile(r"(?<![\w+#])\+?[0-9]{7,15}(?!\w)")


def normalise(raw: str) -> str | None:
    """E.164 digits without '+' (``+976 9911-2233`` -> ``97699112233``); None if it is not a number."""
    digits = _SEPARATORS.sub("", raw.strip()).removeprefix("+")
    return digits if _E164_DIGITS.fullmatch(digits) else None


class Masker:
    """Stable masked forms of numbers: the last three digits and a keyed hash, e.g. ``…233#a1b2c3d4``.

    The hash is an HMAC, so nobody without the key can test guesses against it (there are few enough
    phone numbers to try them all against a plain hash). With no configured key the key is random per
    process: masked forms are then stable only until a restart and differ between replicas.
    """

    def __init__(self, key: str | None) -> None:
        self._key = (key or secrets.token_hex(32)).encode()

    def digest(self, number: str) -> str:
        """The keyed hash of a normalised number: a private identifier for store keys."""
        return hmac.new(self._key, number.encode(), hashlib.sha256).hexdigest()

    def mask(self, number: str) -> str:
        """``…`` + the last three digits + ``#`` + 8 hex digits of the keyed hash."""
        return f"…{number[-3:]}#{self.digest(number)[:8]}"

    def scrub(self, text: str) -> str:
        """``text`` with anything shaped like a phone number replaced by its masked form."""
        return _NUMBER_IN_TEXT.sub(lambda m: self.mask(m.group().removeprefix("+")), text)
