"""The span type every PII rule returns, and the merge that turns overlapping hits into one answer."""

from __future__ import annotations

from dataclasses import dataclass

# Most specific first: when hits overlap, the merged span takes the label of the rule that
# knows most about it.  A check-digit match (card, IBAN) beats a format match (phone), which
# beats a guess from context or the statistical NER (an IBAN can hold a card-shaped run of
# digits, a link can hold an IP: the container wins); the streamer's own terms beat them all.
LABELS = (
    "custom", "iban", "card", "email", "ssn", "national_id", "url", "ip", "phone", "date_of_birth",
    "account", "address", "person",
)
_RANK = {label: rank for rank, label in enumerate(LABELS)}


@dataclass(frozen=True, slots=True)
class PiiSpan:
    """A private part of a text: character offsets ``text[start:end]``, what it is, how sure we are (0..1)."""

    start: int
    end: int
    label: str
    score: float


def merge_spans(spans: list[PiiSpan]) -> list[PiiSpan]:
    """Sorted, non-overlapping spans: overlapping hits become their union, labelled by the most specific."""
    merged: list[PiiSpan] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if span.end <= span.start:
            continue
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            best = min((last, span), key=lambda s: (_RANK[s.label], -s.score))
            merged[-1] = PiiSpan(last.start, max(last.end, span.end), best.label, max(last.score, span.score))
        else:
            merged.append(span)
    return merged
