"""User strings made into identifiers: what a declaration's names become before any code sees them."""

from __future__ import annotations

import re
import unicodedata

TANGENT_PREFIX = "t"  # tx is the tangent (forward-mode derivative) of x


def sanitize(text: str) -> str:
    """An ASCII identifier that reads like `text`: é -> e, θ -> theta, 日 -> u65e5, ٥ -> 5,
    'x; import os' -> x_import_os."""
    if text.isascii() and text.isidentifier():
        return text
    parts = []
    for ch in unicodedata.normalize("NFKD", str(text)):
        if ch.isascii():
            parts.append(ch if (ch.isalnum() or ch == "_") else "_")
        elif unicodedata.combining(ch):
            continue  # an accent, once NFKD has split it off its letter
        elif ch.isalnum():
            parts.append("_" + _ascii_word(ch) + "_")
        else:
            parts.append("_")
    name = re.sub(r"_+", "_", "".join(parts)).strip("_") or "v"
    if name[0].isdigit():
        name = "v" + name
    return name


def _ascii_word(ch: str) -> str:
    """A letter or digit of another script in ASCII: its Unicode letter name (GREEK SMALL LETTER THETA ->
    theta), its digit value, or its code point (u65e5) when the name has no word for it."""
    if ch.isdigit() and unicodedata.digit(ch, None) is not None:
        return str(unicodedata.digit(ch))
    words = unicodedata.name(ch, "").split()
    if "LETTER" in words:
        word = "".join(words[words.index("LETTER") + 1:]).lower()
        if word.isascii() and word.isalpha():
            return word
    return f"u{ord(ch):04x}"
