"""PiiClassifier: which characters of a text are private, for on-screen text (OCR) and transcripts."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence

from ..errors import PrivaStreamError
from ..settings import CUSTOM_REGEX_PREFIX as _CUSTOM_REGEX_PREFIX
from .ner import find_persons, load_spacy
from .recognisers import PresidioPatterns
from .rules import find_rules, vetoed
from .spans import PiiSpan, merge_spans

log = logging.getLogger("privastream.pii")

# OCR lines and transcript windows are short; a text this long is a caller's mistake, and spaCy
# refuses texts over its own max_length (1e6) with an error that would read like a model fault.
MAX_TEXT_CHARS = 100_000


def phrase_words(term: str) -> list[str]:
    """The words of a custom phrase; [] for a "re:" pattern or an empty line."""
    term = term.strip()
    return [] if term.startswith(_CUSTOM_REGEX_PREFIX) else term.split()


def phrase_pattern(words: Iterable[str]) -> str:
    """Regex for words said or written in order, any whitespace between them."""
    return r"\s+".join(re.escape(w) for w in words)


def compile_custom_terms(terms: Iterable[str]) -> list[re.Pattern[str]]:
    """The streamer's own words: phrases match case-insensitively on word boundaries, "re:" terms as regexes."""
    if isinstance(terms, str):
        raise PrivaStreamError(f"custom_terms must be a list of words or patterns, not one string ({terms[:20]!r}...)")
    compiled = []
    for index, term in enumerate(terms):
        if not isinstance(term, str):
            raise PrivaStreamError(f"custom term #{index + 1} must be text, got {type(term).__name__}")
        term = term.strip()
        if not term or term == _CUSTOM_REGEX_PREFIX:
            continue  # an empty line in the settings list
        if term.startswith(_CUSTOM_REGEX_PREFIX):
            try:
                compiled.append(re.compile(term[len(_CUSTOM_REGEX_PREFIX):]))
            except re.error as exc:
                # The index, not the term: the term itself may be the private thing.
                raise PrivaStreamError(f"custom term #{index + 1} is not a valid regular expression: {exc}") from None
        else:
            compiled.append(re.compile(rf"(?<!\w){phrase_pattern(term.split())}(?!\w)", re.IGNORECASE))
    return compiled


class PiiClassifier:
    """Finds e-mails, phones, cards, IBANs, national IDs, IPs, addresses, names, URLs, dates of birth,
    account numbers and secrets, and the streamer's own custom terms, as character spans.

    Thread-safe.  Results are cached per text (overlays repeat every frame), so the same line costs
    one dictionary look-up after the first time.
    """

    def __init__(self, custom_terms: Sequence[str] = (), use_ner: bool = True, cache_size: int = 4096):
        started = time.perf_counter()
        self._custom = compile_custom_terms(custom_terms)
        self._patterns = PresidioPatterns()
        self._use_ner = use_ner
        if use_ner:
            load_spacy()
        self._cache: OrderedDict[str, tuple[PiiSpan, ...]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        # Never log the terms: they are the streamer's private words.
        log.info("__init__() | ready [ner:%s, custom_terms:%d, ms:%.0f]",
                 use_ner, len(self._custom), (time.perf_counter() - started) * 1e3)

    def find(self, text: str) -> list[PiiSpan]:
        """Sorted, non-overlapping private spans of ``text`` (character offsets)."""
        return self.find_batch([text])[0]

    def find_batch(self, texts: Sequence[str]) -> list[list[PiiSpan]]:
        """``find`` for many texts (the OCR lines of one frame) with one spaCy call for all of them."""
        if isinstance(texts, str):
            raise PrivaStreamError("find_batch() takes a list of texts, not one string")
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise PrivaStreamError(f"PII text #{index + 1} must be a str, got {type(text).__name__}")
            if len(text) > MAX_TEXT_CHARS:
                raise PrivaStreamError(f"PII text #{index + 1} has {len(text)} characters; the classifier takes "
                                       f"lines and transcript windows of at most {MAX_TEXT_CHARS}")
        with self._lock:
            found: dict[str, tuple[PiiSpan, ...]] = {}
            for text in texts:
                if text in self._cache:
                    self._cache.move_to_end(text)
                    found[text] = self._cache[text]
            missing = [t for t in dict.fromkeys(texts) if t not in found]
            if missing:
                persons = find_persons(missing) if self._use_ner else [[] for _ in missing]
                for text, names in zip(missing, persons):
                    found[text] = self._cache[text] = tuple(self._classify(text, names))
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return [list(found[t]) for t in texts]

    def _classify(self, text: str, persons: list[PiiSpan]) -> list[PiiSpan]:
        # Presidio's SSN and IP patterns fire after "Order #" and "version" too; the same vetoes as ours apply.
        spans = [s for s in self._patterns.find(text) if s.label not in ("ssn", "ip") or not vetoed(text, s)]
        spans += find_rules(text)
        spans += persons
        for pattern in self._custom:
            spans.extend(PiiSpan(m.start(), m.end(), "custom", 1.0) for m in pattern.finditer(text) if m.end() > m.start())
        return merge_spans(spans)
