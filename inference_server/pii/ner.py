"""Person names from spaCy's small English NER, cleaned of the things it mistakes for people on stream."""

from __future__ import annotations

import logging
import re
import time
from functools import lru_cache

from ..errors import ModelLoadError
from ..models import model_path
from .spans import PiiSpan

log = logging.getLogger("privastream.pii")

# NER in en_core_web_sm has its own tok2vec, so the shared tok2vec, tagger, parser and
# lemmatizer can be left out: that halves the time per line and NER output is unchanged.
_UNUSED_PIPES = ["tok2vec", "tagger", "parser", "senter", "attribute_ruler", "lemmatizer"]
# "PixelPanda92: first!" - a chat handle is a public name the streamer's audience already sees.
_CHAT_HANDLE = re.compile(r"^\s*@?[\w.-]{2,25}:\s")
_MAX_NAME_TOKENS = 4  # longer PERSON spans are titles and song names
# "Street Fighter", "Baker St": a street word inside a "name" means a place or a game title.
_PLACE_WORDS = {"street", "st", "road", "rd", "lane", "avenue", "ave", "drive", "boulevard", "blvd", "way"}


@lru_cache(maxsize=1)
def load_spacy():
    """The spaCy pipeline, loaded once per process and shared by every classifier (vision and audio)."""
    import spacy

    path = model_path("spacy-en-core-web-sm")
    started = time.perf_counter()
    try:
        nlp = spacy.load(path, exclude=_UNUSED_PIPES)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load the spaCy model from {path}: {exc}") from exc
    log.info("load_spacy() | loaded [pipes:%s, ms:%.0f]", ",".join(nlp.pipe_names), (time.perf_counter() - started) * 1e3)
    return nlp


def _person_spans(doc) -> list[PiiSpan]:
    handle = _CHAT_HANDLE.match(doc.text)
    spans = []
    for ent in doc.ents:
        if ent.label_ != "PERSON" or len(ent) > _MAX_NAME_TOKENS:
            continue
        if handle and ent.end_char <= handle.end():
            continue
        words = [t for t in ent if t.is_alpha]
        if not words or any(c.isdigit() or c == "_" for c in ent.text):
            continue  # gamer tags, not names
        if len(words) == 1 and (not words[0].text[0].isupper() or ent.start == 0):
            # A lone lower-case word ("lol") is chat, and a lone capitalised first word of a
            # line ("Coins 9999", "Email ...") is capitalised for being first, not for being a name.
            continue
        if all(w.is_lower for w in words) and any(len(w) < 3 for w in words):
            continue  # "gg wp", "gl hf": chat shorthand, which spaCy reads as initials
        if any(w.lower_ in _PLACE_WORDS for w in words):
            continue
        # Trim possessives and punctuation so the box covers the name, not the line.
        tokens = [t for t in ent if not (t.is_punct or t.lower_ in ("'s", "’s"))]
        score = 0.7 if len(words) > 1 else 0.5
        spans.append(PiiSpan(tokens[0].idx, tokens[-1].idx + len(tokens[-1].text), "person", score))
    return spans


def find_persons(texts: list[str]) -> list[list[PiiSpan]]:
    """PERSON spans for each text, with one ``nlp.pipe`` call for the whole batch."""
    nlp = load_spacy()
    results: list[list[PiiSpan]] = [[] for _ in texts]
    # Lines without two letters in a row (timers, scores, prices) cannot hold a name: skip NER.
    todo = [i for i, t in enumerate(texts) if re.search(r"[^\W\d_]{2}", t)]
    # nlp.pipe batches well but costs more than a direct call for the common single line.
    docs = [nlp(texts[todo[0]])] if len(todo) == 1 else nlp.pipe([texts[i] for i in todo])
    for i, doc in zip(todo, docs):
        results[i] = _person_spans(doc)
    return results
