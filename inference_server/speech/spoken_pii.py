"""Spoken PII: which recognised words to bleep.

The transcript is first rewritten into written form (``spoken.normalize_words``)
so the shared text classifier (``inference_server.pii``: e-mails, phones, Luhn
cards, IBANs, SSNs, addresses, dates of birth, names, the streamer's custom
terms) reads "5 5 5 1 2 3 4 5 6 7" and "john.smith@example.com" rather than
number words.  On top of it come rules that only make sense for speech:

* a run of eight or more digits is private whatever it is (account, card,
  ID): nobody reads out a harmless eight-digit number on stream;
* what is still being spoken when the decision is due (``open_end``) is judged
  on what it could become, because the words that make it private may not have
  been heard yet: a digit run at the end of the transcript from its third
  digit, or from its first after a number cue ("my number is 5"), and an
  address being spelt out ("at john.", "jon.mit", "dot com");
* "my password is ...", "my PIN is ...", "my address is ...": everything after
  the cue up to the end of the sentence (at most ``CUE_MAX_WORDS`` words, and
  an address ends at its street word);
* "I was born on ...": the date words that follow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from ..pii import PiiClassifier, luhn_valid
from ..pii.classifier import phrase_pattern, phrase_words
from ..pii.spans import PiiSpan, merge_spans
from .spoken import NormalizedText, normalize_words

MIN_DIGIT_RUN = 8
OPEN_RUN_DIGITS = 3
CUE_MAX_WORDS = 5
# Whisper often runs sentences together without a full stop; a cue's value ends where a new clause starts.
_NEW_CLAUSE = re.compile(r"(?i)(?<=\s)(?:my|and|but|so|i|i'm|then|please|thanks|thank)\b")
# ... and an address without a street word heard ("I live at 42m3 near the park") where it is located.
_ADDRESS_END = re.compile(r"(?i)(?<=\s)(?:near|next|behind|opposite|across|beside|by|with|since|because)\b")
# An address said after "I live at" ends with its street word ("... Elm Street"), if one is heard.
_STREET_WORD = re.compile(r"(?i)\b(?:street|st|avenue|ave|road|rd|lane|drive|boulevard|way|court|place|close"
                          r"|crescent|terrace|square|parkway|highway)\b\.?")

_DIGIT_RUN = re.compile(r"(?<![\w.])\d+(?:[ -]+\d+)*")
_SECRET_CUE = re.compile(
    r"(?i)\b(?:password|pass ?word|passcode|pass code|pin(?: number| code)?|security code|secret|"
    r"(?:home |street )?address|log ?in|user ?name|postcode|post code|zip code)\s+(?:is|was)\b[:,]?\s*"
    r"|\b(?:i|we|they|he|she) (?:live|lives|living) (?:at|on)\s+"
)
_NUMBER_CUE = re.compile(
    r"(?i)\b(?:number|phone|mobile|cell|card|account|pin|code|call me(?: on| at)?|dial|ssn|id|is)[:,]?\s+$")
# An address still being spelt at the end of the transcript: "at john.", "jon.mit", "dot com".
_OPEN_ADDRESS = re.compile(
    r"(?i)(?:(?<=\s)|^)(?:"
    r"(?P<at>at\s+)(?!(?:home|work|school|the|a|an|least|all|this|that|first|last|night|once|noon|midnight"
    r"|lunch|dinner|breakfast|church|college|uni|university|my|your|his|her|our|their)\b)[a-z]\S*"  # "at john"
    r"|\S+\s+dot\b(?:\s+\S+)?"  # "smith dot", "smith dot co"
    r"|\S*[a-z][.@][a-z]\S*"  # Whisper's "jon.mit", "smith@"
    r"|\S*@\S*"
    r")\s*$")
# "at Acme" after one of these is a place, not an address being spelt ("I work at Acme").
_PLACE_VERB = re.compile(r"(?i)\b(?:work|works|worked|working|study|studies|studied|studying|stay|stays|stayed"
                         r"|staying|meet|met|meeting|arrive|arrived|look|looked|looking|am|are|was|were|be|been"
                         r"|i'm|we're|they're|he's|she's|it's)\s+$")
_DOB_CUE = re.compile(r"(?i)\b(?:born on|born in|date of birth is|birthday is|birth date is|dob is)\s+")
_MONTHS = ("january february march april may june july august september october november december "
           "jan feb mar apr jun jul aug sep sept oct nov dec").split()
_ORDINALS = ("first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth "
             "fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth thirtieth").split()
_DATE_WORD = re.compile(rf"(?i)(?:\d+(?:st|nd|rd|th)?|the|of|{'|'.join(_MONTHS + _ORDINALS)})[.,]?$")


@dataclass(frozen=True)
class SpokenPii:
    first: int
    """Index of the first word of the entity."""
    last: int
    """Index of its last word (inclusive)."""
    label: str
    """A PII category (inference_server.pii.LABELS); never the words."""


def _digit_runs(text: str, open_end: bool) -> list[PiiSpan]:
    spans = []
    tail = len(text.rstrip(" .?!"))
    for m in _DIGIT_RUN.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if len(digits) >= MIN_DIGIT_RUN:
            label = "card" if 13 <= len(digits) <= 19 and luhn_valid(digits) else "account"
            spans.append(PiiSpan(m.start(), m.end(), label, 0.8))
        elif open_end and m.end() >= tail and (len(digits) >= OPEN_RUN_DIGITS or _NUMBER_CUE.search(text[:m.start()])):
            spans.append(PiiSpan(m.start(), m.end(), "account", 0.5))
    if open_end:
        m = _OPEN_ADDRESS.search(text)
        if m and not (m.group("at") and _PLACE_VERB.search(text[:m.start()])):
            # "at john": from the name on; the entity's pad covers Whisper's late boundary before it.
            spans.append(PiiSpan(m.end("at") if m.group("at") else m.start(), len(text), "email", 0.5))
    return spans


def _cue_values(text: str) -> list[PiiSpan]:
    spans = []
    for m in _SECRET_CUE.finditer(text):
        value = re.match(rf"(?:[^\s.?!]+(?:\.(?=\S))?[^\s.?!]*\s*){{1,{CUE_MAX_WORDS}}}", text[m.end():])
        if value and value.group().strip():
            label = "address" if re.search(r"(?i)address|live", m.group()) else "account"
            clause = _NEW_CLAUSE.search(value.group(), 1) or (
                _ADDRESS_END.search(value.group(), 1) if label == "address" else None)
            length = clause.start() if clause else len(value.group().rstrip())
            street = _STREET_WORD.search(value.group()) if label == "address" else None
            spans.append(PiiSpan(m.end(), m.end() + (street.end() if street else length), label, 0.8))
    for m in _DOB_CUE.finditer(text):
        end = m.end()
        for word in re.finditer(r"\S+", text[m.end():]):
            if not _DATE_WORD.match(word.group()) or word.start() > 60:
                break
            end = m.end() + word.end()
        if end > m.end():
            spans.append(PiiSpan(m.end(), end, "date_of_birth", 0.8))
    return spans


def _open_term_prefixes(custom_terms: Sequence[str]) -> re.Pattern[str] | None:
    """The first words of the streamer's multi-word terms, at the end of the transcript: "Acme" may
    be the start of "Acme Robotics", and is decided before "Robotics" has been heard."""
    prefixes = set()
    for term in custom_terms:
        words = phrase_words(term)
        prefixes.update(phrase_pattern(words[:k]) for k in range(1, len(words)))
    if not prefixes:
        return None
    return re.compile(rf"(?i)(?<!\w)(?:{'|'.join(sorted(prefixes, key=len, reverse=True))})[.,?!]*\s*$")


class SpokenPiiDetector:
    """Finds PII entities in a list of recognised words (Whisper's word texts, in order)."""

    def __init__(self, custom_terms: Sequence[str] = (), use_ner: bool = True,
                 classifier: PiiClassifier | None = None):
        self.classifier = classifier or PiiClassifier(custom_terms=custom_terms, use_ner=use_ner)
        self._open_terms = _open_term_prefixes(custom_terms)

    def find(self, words: Sequence[str], open_end: bool = False) -> list[SpokenPii]:
        """Entities as word ranges.  ``open_end``: the speaker may still be talking after the
        last word, so an unfinished digit run counts as private (see module doc)."""
        norm: NormalizedText = normalize_words(words)
        if not norm.text:
            return []
        spans = self.classifier.find(norm.text) + _digit_runs(norm.text, open_end) + _cue_values(norm.text)
        if open_end and self._open_terms and (m := self._open_terms.search(norm.text)):
            spans.append(PiiSpan(m.start(), m.end(), "custom", 0.5))
        found = []
        for span in merge_spans(spans):
            owners = norm.words_of(span.start, span.end)
            if owners:
                found.append(SpokenPii(owners[0], owners[1], span.label))
        return found
