"""The texts a read line is classified as, each with its map back to the line's characters.

OCR errors that hide PII are predictable, so a line is classified in up to
three readings and every PII span found in any of them is covered:

* as read, with the spaces put back from ink gaps (``word_gaps``);
* without those spaces, and without any space next to an "@": a space wrongly
  put inside an e-mail (wide gaps in a monospace font, or the recogniser's
  own "jane.doe @example.com") must not hide the e-mail;
* with look-alike letters turned into digits inside number-like tokens: at
  some sizes the recogniser reads the DejaVu "1" as "l", so "4111 1111" comes
  out "4111 1lll" and neither the Luhn check nor a phone pattern can match.

Each reading has the same characters in the same places (or a recorded
subset), so a span maps straight back to the line's character edges.
"""

from __future__ import annotations

import re

# Letters the recogniser confuses with digits, as the digit.
LOOKALIKE_DIGITS = str.maketrans({"l": "1", "I": "1", "|": "1", "O": "0", "o": "0", "S": "5", "B": "8", "Z": "2"})
_LOOKALIKES = frozenset("lI|OoSBZ")
_TOKEN = re.compile(r"\S+")


def digit_reading(text: str) -> str:
    """``text`` with look-alike letters as digits in every token made of digits and look-alikes only
    (with at least one real digit); other tokens, words and e-mails, are left as they are."""
    def fix(match: re.Match) -> str:
        token = match.group(0)
        alnum = [c for c in token if c.isalnum() or c == "|"]
        if any(c.isdigit() for c in alnum) and all(c.isdigit() or c in _LOOKALIKES for c in alnum):
            return token.translate(LOOKALIKE_DIGITS)
        return token

    return _TOKEN.sub(fix, text)


def readings(text: str, inserted_spaces=()) -> list[tuple[str, list[int] | None]]:
    """(reading, index map) per distinct reading of ``text``; the map gives, for each character
    of the reading, its index in ``text`` (None: the same indices).  ``inserted_spaces``:
    indices of the spaces put back from ink gaps."""
    out: list[tuple[str, list[int] | None]] = [(text, None)]
    doubtful = set(inserted_spaces) | {
        i for i, c in enumerate(text) if c == " " and "@" in text[max(i - 1, 0):i] + text[i + 1:i + 2]}
    if doubtful:
        kept = [i for i in range(len(text)) if i not in doubtful]
        out.append(("".join(text[i] for i in kept), kept))
    digits = digit_reading(text)
    if digits != text:
        out.append((digits, None))
    return out
