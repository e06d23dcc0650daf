"""Spoken words -> written text, with every character traced back to the word it came from.

People say "five five five, one two three", "double oh seven", "four thousand
one hundred eleven", "john dot smith at example dot com"; Whisper writes some
of that as words and some in its own style ("555-1234567.", "4,111,111",
"jon.mit.emple.com").  PII patterns are written-text patterns, so both forms are
rewritten into one written form: digits without grouping commas, "@" and "."
inside spoken addresses.  ``owner[i]`` is the index of the recognised word that
produced ``text[i]``; a PII match on the text thus maps back to whole words,
and to their start and end times: a detection covers the whole entity, from its
first word's start to its last word's end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

UNITS = {"zero": 0, "nought": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
         "seven": 7, "eight": 8, "nine": 9}
TEENS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
         "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19}
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
        "ninety": 90}
SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
REPEATS = {"double": 2, "triple": 3}
ZERO_LETTERS = {"oh", "o"}  # "oh" is a digit only next to other digits ("double oh seven")
SOUNDALIKES = {"for": 4, "to": 2, "too": 2}  # digits only when two more digits follow

# Connectors of addresses said aloud; "at" and "dot" only count between name-like words.
SPOKEN_SYMBOLS = {"dot": ".", "at": "@", "underscore": "_", "dash": "-", "hyphen": "-"}
TLDS = ("com", "org", "net", "io", "co", "uk", "de", "fr", "edu", "gov", "info", "me", "tv", "us",
        "ca", "biz", "app", "dev", "ai", "nl", "eu", "au", "in")
# Words that never start a spoken user name ("email me at john dot ...", "look at this dot").
_NOT_A_NAME = {"me", "us", "him", "her", "them", "it", "you", "this", "that", "email", "mail", "is", "at",
               "look", "me,", "and", "or", "the", "a", "an", "to"}

_EDGE_PUNCT = "\"'“”‘’¿([{)]}!?,;:。，！？：、…"
_CLAUSE_PUNCT = "\"'“”‘’¿([{)]},;:。，：、…"  # stripped from written words; . ? ! stay as sentence ends
_DIGIT_GROUPING = re.compile(r"(?<=\d),(?=\d{3})")


@dataclass
class NormalizedText:
    text: str = ""
    owner: list[int] = field(default_factory=list)
    """owner[i]: index of the word that produced text[i] (-1 for joining spaces)."""

    def add(self, piece: str, word: int, space: bool = True) -> None:
        if space and self.text:
            self.text += " "
            self.owner.append(-1)
        self.text += piece
        self.owner.extend([word] * len(piece))

    def add_spread(self, piece: str, first: int, last: int) -> None:
        """A piece made from words first..last: its characters are spread over them in order,
        so any span covering all of the piece covers all of its words."""
        if self.text:
            self.text += " "
            self.owner.append(-1)
        n = len(piece)
        self.text += piece
        # First character -> first word, last -> last word, the rest in between.
        self.owner.extend(first + round(i * (last - first) / max(n - 1, 1)) for i in range(n))

    def words_of(self, start: int, end: int) -> tuple[int, int] | None:
        """First and last word behind text[start:end], or None if only spaces."""
        owners = [o for o in self.owner[start:end] if o >= 0]
        return (min(owners), max(owners)) if owners else None


def _core(word: str) -> str:
    return word.strip().strip(_EDGE_PUNCT + ".").lower()


def _number_kind(core: str) -> str | None:
    for kind, table in (("unit", UNITS), ("teen", TEENS), ("tens", TENS), ("scale", SCALES), ("repeat", REPEATS)):
        if core in table:
            return kind
    return None


def _is_numberish(cores: Sequence[str], i: int) -> bool:
    c = cores[i]
    if _number_kind(c) or re.fullmatch(r"\d+", c):
        return True
    if c in SOUNDALIKES:  # "my card is four one one one" often comes out as "for one one one"
        ahead = cores[i + 1:i + 3]
        return len(ahead) == 2 and all(_number_kind(a) == "unit" or re.fullmatch(r"\d+", a) for a in ahead)
    if c in ZERO_LETTERS:  # only inside a run of digits: "oh seven", "five oh five"
        near = [cores[j] for j in (i - 1, i + 1) if 0 <= j < len(cores)]
        return any(_number_kind(n) in ("unit", "repeat") or re.fullmatch(r"\d+", n) for n in near)
    return False


def number_words_to_digits(cores: Sequence[str]) -> list[tuple[str, int, int]]:
    """A run of number words -> digit groups with the word range each came from.

    Digits said one by one stay separate groups ("five five five" -> 5 5 5);
    composite numbers are added up ("four thousand one hundred eleven" -> 4111,
    "twenty three" -> 23); "double five" -> 55.
    """
    groups: list[tuple[str, int, int]] = []
    total = current = None  # the composite number being read
    first = last_kind = None
    repeat = 1

    def close(end: int) -> None:
        nonlocal total, current, first, last_kind
        if current is not None or total is not None:
            groups.append((str((total or 0) + (current or 0)), first, end))
        total = current = first = last_kind = None

    for i, c in enumerate(cores):
        kind = "unit" if c in ZERO_LETTERS or c in SOUNDALIKES else _number_kind(c)
        value = SOUNDALIKES.get(c, 0) if kind == "unit" and c not in UNITS else UNITS.get(c, TEENS.get(c, TENS.get(c)))
        if re.fullmatch(r"\d+", c):
            close(i - 1)
            groups.append((c, i, i))
            continue
        if kind == "repeat":
            close(i - 1)
            repeat, first = REPEATS[c], i
            continue
        if repeat > 1 and kind == "unit":
            groups.append((str(value) * repeat, first, i))
            repeat, first = 1, None
            continue
        repeat = 1
        if kind == "scale":
            if current is None and total is None:
                current, first = 1, i  # "hundred" alone = 100
            scale = SCALES[c]
            if scale == 100:
                current = (current or 1) * 100
            else:
                total = ((total or 0) + (current or 0)) * scale
                current = None
            last_kind = "scale"
            continue
        extends = (
            (last_kind == "tens" and kind == "unit" and value > 0)
            or (last_kind == "scale" and kind in ("unit", "teen", "tens"))
        )
        if not extends:
            close(i - 1)
            first = i
        current = (current or 0) + value
        last_kind = kind
    close(len(cores) - 1)
    return groups


def _spoken_address_chains(cores: Sequence[str]) -> list[tuple[int, int]]:
    """Word ranges of addresses spelled with spoken connectors: "john dot smith at example dot com"."""
    chains = []
    i = 0
    n = len(cores)
    while i < n:
        # A chain: name (connector name)+, and it must contain a "dot" followed by a known TLD
        # or an "at" followed by a dotted name.
        if cores[i] and cores[i] not in SPOKEN_SYMBOLS and cores[i] not in _NOT_A_NAME and re.fullmatch(r"[\w.'-]+", cores[i]):
            j = i
            while j + 2 < n and cores[j + 1] in SPOKEN_SYMBOLS and re.fullmatch(r"[\w.-]+", cores[j + 2]) \
                    and cores[j + 2] not in SPOKEN_SYMBOLS:
                j += 2
            connectors = [cores[k] for k in range(i + 1, j, 2)]
            tld_end = connectors and "dot" in connectors and cores[j] in TLDS
            email = "at" in connectors and "dot" in connectors[connectors.index("at"):]
            if j > i and (tld_end or email):
                chains.append((i, j))
                i = j + 1
                continue
        i += 1
    return chains


def normalize_words(words: Sequence[str]) -> NormalizedText:
    """Written form of recognised words (as Whisper gives them, leading space = new word)."""
    cores = [_core(w) for w in words]
    out = NormalizedText()
    chains = {start: end for start, end in _spoken_address_chains(cores)}
    i = 0
    while i < len(words):
        if i in chains:
            end = chains[i]
            piece = "".join(SPOKEN_SYMBOLS.get(c, c) for c in cores[i:end + 1])
            out.add_spread(piece, i, end)
            i = end + 1
            continue
        if _is_numberish(cores, i) and not re.fullmatch(r"\d+", cores[i]):
            j = i
            while j + 1 < len(words) and _is_numberish(cores, j + 1) and not re.fullmatch(r"\d+", cores[j + 1]):
                j += 1
            for digits, a, b in number_words_to_digits(cores[i:j + 1]):
                out.add_spread(digits, i + a, i + b)
            end_mark = words[j].strip()[-1:]
            if end_mark in (".", "?", "!"):  # keep the sentence end: cue values stop there
                out.add(end_mark, j, space=False)
            i = j + 1
            continue
        raw = words[i]
        # Whisper's own number style: drop grouping commas, keep the rest of the token as written.
        piece = _DIGIT_GROUPING.sub("", raw.strip()).strip(_CLAUSE_PUNCT)
        if piece:
            # No leading space: Whisper continues the previous word ("jon" ".mit" ".emple" ".com").
            out.add(piece, i, space=raw[:1].isspace() or i == 0)
        i += 1
    return out
