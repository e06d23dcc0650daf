"""Presidio's pattern recognisers, run on their own, fully offline.

We call the recogniser classes directly instead of going through Presidio's AnalyzerEngine:
the engine runs its own spaCy pass on every text (we already run one ``nlp.pipe`` for a whole
batch of OCR lines and only need PERSON from it), its default NLP configuration tries to download
a model, and its context boost needs that NLP pass.  Context words are handled in ``rules.py``.


Presidio's phone recogniser (python-phonenumbers) is not used either: it scans the text once per
region and cost 1-2 ms of CPU per digit-bearing line, more than the NER pass, while the layouts in
``rules.py`` found every phone number in both labelled sets without it (numbers with no layout at
all, "5551234567", are only taken after a cue there, which phonenumbers cannot know about).
Presidio's e-mail recogniser validates the domain with ``tldextract``'s module-level extractor,
which fetches the public suffix list from the Internet on first use; ours uses an extractor that
only reads the snapshot bundled in the wheel.  Presidio's IBAN recogniser is not used: it logs the
text it failed to validate, and a log must never hold a private number (``rules.py`` has ours).
"""

from __future__ import annotations

import re

import tldextract
from presidio_analyzer import EntityRecognizer
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IpRecognizer,
    UkNinoRecognizer,
    UrlRecognizer,
    UsSsnRecognizer,
)

from .spans import PiiSpan

_OFFLINE_TLD = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)


# Bare "name.tld" hits whose "TLD" is far more often a file extension ("main.py": .py is Paraguay)
# or an English word OCR glued to the previous one ("this.is", "go.to"); with a path they are kept.
_NOT_A_TLD = {"py", "sh", "md", "rs", "so", "pl", "cc", "ps", "am", "in", "at", "is", "it", "me", "to"}


class _OfflineEmailRecognizer(EmailRecognizer):
    def validate_result(self, pattern_text: str) -> bool:
        return _OFFLINE_TLD(pattern_text).fqdn != ""


class _SsnRecognizer(UsSsnRecognizer):
    """Only the delimited form (123-45-6789): Presidio's bare 9-digit and 5-4 patterns fire on order numbers."""

    PATTERNS = [p for p in UsSsnRecognizer.PATTERNS if p.score >= 0.5]


def _url_ok(text: str, start: int, end: int) -> bool:
    """False for a bare "name.ext" hit that is a file name, glued words or a number, True for a link."""
    found = text[start:end]
    if re.match(r"(?i)(https?://|www\d{0,3}\.)", found) or "/" in found:
        return True
    host = found.rsplit(".", 1)
    return len(host) == 2 and host[1].lower() not in _NOT_A_TLD and not host[0].replace(".", "").isdigit()


class PresidioPatterns:
    """E-mail, URL, IP, card (Luhn), US SSN and UK NINO from Presidio's recognisers."""

    def __init__(self) -> None:
        self._email = _OfflineEmailRecognizer()
        self._url = UrlRecognizer(patterns=UrlRecognizer.PATTERNS[:2])  # the quoted variants add nothing here
        self._ip = IpRecognizer()
        self._card = CreditCardRecognizer()
        self._ssn = _SsnRecognizer()
        self._nino = UkNinoRecognizer()

    def find(self, text: str) -> list[PiiSpan]:
        # Cheap gates first: most overlay lines hold no '@', few digits, and skip most recognisers.
        digits = sum(c.isdigit() for c in text)
        jobs: list[tuple[EntityRecognizer, str]] = []
        if "@" in text:
            jobs.append((self._email, "email"))
        if "." in text:
            jobs.append((self._url, "url"))
        if digits >= 4 and ("." in text or ":" in text):
            jobs.append((self._ip, "ip"))
        if digits >= 12:
            jobs.append((self._card, "card"))
        if digits >= 9:
            jobs.append((self._ssn, "ssn"))
        if digits >= 6:
            jobs.append((self._nino, "national_id"))
        spans = []
        for recogniser, label in jobs:
            for hit in recogniser.analyze(text, recogniser.supported_entities):
                if label == "url" and not _url_ok(text, hit.start, hit.end):
                    continue
                spans.append(PiiSpan(hit.start, hit.end, label, round(float(hit.score), 3)))
        return spans
