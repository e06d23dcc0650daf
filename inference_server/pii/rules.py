"""Our own patterns: phone and card layouts, IBAN, links, street addresses, and context cues.

Presidio covers the formats that have a registry or a checksum behind them (``recognisers.py``).
What is here covers how people actually write and say things on stream: made-up-looking
555 numbers, "DOB 12/05/1990", "password: hunter2", "passport number 533380006", "42 Elm Street".
Every rule is tuned against the negatives in tests/data/pii_lines.txt (scores, versions, dates,
order numbers, timestamps) and checked on the held-out tests/data/pii_lines_holdout.txt: a number
is private because of its shape *and* its neighbours.
"""

from __future__ import annotations

import re

from .checksums import iban_valid
from .spans import PiiSpan

# ---- phone layouts -------------------------------------------------------------------------
# Layouts, not numbering plans: fictional-looking but real-format numbers ("(555) 123-4567",
# "+1 555 123 4567") are what streamers show and what tests use.  The layouts demand
# separators in phone places, which is what keeps "Score: 1250 - 980" and "1920x1080" out.
_EDGE_L = r"(?<![\w.+/-])"
_EDGE_R = r"(?![\w/-]|[.,]\d)"
_PHONE_LAYOUTS = re.compile(
    _EDGE_L + r"(?:"
    r"(?:\+?1[ .-]?)?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}"  # North America
    r"|\+\d{1,3}(?:[ .-]?\(?\d{1,5}\)?){2,6}"  # +country code, any grouping
    r"|\(?0\d{1,4}\)?(?:[ ./-]\d{2,8}){1,4}"  # national trunk 0: 07700 900123, 0151/23456789, 01.23.45.67.89
    r")" + _EDGE_R
)

# ---- links with a scheme ------------------------------------------------------------------
# Presidio's URL pattern needs a known top-level domain, so "http://192.0.2.1/login" is only an IP to it.
_SCHEME_URL = re.compile(r"(?i)\bhttps?://[^\s<>\"'()]+[^\s<>\"'().,;:!?]")

# ---- card layout ---------------------------------------------------------------------------
# Four groups of four digits is a card even when OCR misread a digit and the Luhn check fails
# (Presidio's recogniser then drops it): one wrong digit still shows the other fifteen.
_CARD_LAYOUT = re.compile(r"(?<![\w.-])\d{4}([ -])\d{4}\1\d{4}\1\d{4}(?![\w-]|[.,]\d)")

# ---- IBAN ----------------------------------------------------------------------------------
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[ -]?[A-Za-z0-9]{1,4}){3,8}(?![A-Za-z0-9])")

# ---- street addresses ----------------------------------------------------------------------
_STREET_TYPES = (
    r"street|st|avenue|ave|road|rd|lane|ln|boulevard|blvd|drive|dr|court|ct|way|place|pl|terrace|ter"
    r"|close|crescent|cres|square|sq|parkway|pkwy|highway|hwy|circle|cir|trail|trl|row|grove|gardens"
    r"|mews|walk|alley|plaza|parade|loop"
)
# Words that never sit between a house number and a street type: they are what makes
# "30 min drive" or "2 blocks down the road" ordinary speech.
_NOT_NAME = (
    r"the|a|an|and|or|of|on|in|at|to|for|from|by|with|my|your|his|her|our|their|is|are|was|were|more"
    r"|down|up|along|across|near|past|over|off|min|mins|minute|minutes|hour|hours|hr|hrs|sec|secs"
    r"|second|seconds|miles|km|times|people|days|weeks|months|years"
    r"|best|top|only|easy|easiest|simple|fastest|quick|quickest|other|same|different|right|wrong|better"
    r"|worst|good|great|perfect"  # "Top 3 Best Way to farm"
)
_NAME_WORD = rf"(?!(?:{_NOT_NAME})\b)(?:[A-Za-z][A-Za-z'’.-]*|\d{{1,3}}(?:st|nd|rd|th))"
_ADDRESS_TAIL = (
    r"(?:\s+(?-i:N|S|E|W|NE|NW|SE|SW)\b)?"
    r"(?:,?\s*(?:apt|apartment|suite|ste|unit|flat)\.?\s*#?[A-Za-z0-9-]+)?"
    r"(?-i:,\s*[A-Z][a-z]+(?:\s[A-Z][a-z]+)?(?:,?\s*(?:[A-Z]{2}\s+)?\d{5}(?:-\d{4})?)?)?"
)
_ADDRESSES = [
    # 42 Elm Street, 221B Baker Street, London; 350 5th Ave
    re.compile(
        rf"(?i)\b\d{{1,5}}[A-Za-z]?\s+(?:{_NAME_WORD}\s+){{1,3}}(?:{_STREET_TYPES})\b\.?" + _ADDRESS_TAIL
    ),
    # Hauptstraße 5, Berliner Straße 12a
    re.compile(
        r"\b(?:[A-ZÄÖÜ][\wäöüß-]*\s)?(?:[A-ZÄÖÜ][\wäöüß-]*)?"
        r"(?i:straße|strasse|str\.|weg|gasse|platz|allee|damm)\s\d{1,4}[a-z]?\b"
    ),
    # 12 rue de la Paix, 4 calle Mayor
    re.compile(
        r"\b\d{1,4},?\s(?i:rue|avenue|boulevard|bd|chemin|allée|impasse|calle|via|viale|piazza)"
        r"\s(?:(?i:de la|de|du|des|del|della)\s|[dl]['’])?[A-ZÀ-Ý][\w'’-]+"
    ),
    re.compile(r"(?i)\bP\.?\s?O\.?\s?Box\s\d{1,6}\b"),
]

# ---- context cues --------------------------------------------------------------------------
# "<cue> [number|no|#] [:|is] <value>": the cue says what the value is, so the value can be a
# plain digit run that would be an order number anywhere else.  Only the value is covered.
_GAP = r"(?:\s*(?:number|no\.?|num|nr\.?|code|#))?\s*(?:[:=#-]|\bis\b|\bwas\b)?\s*"
_STRICT_GAP = r"(?:\s*(?:number|no\.?|code))?\s*(?:[:=]|\bis\b)\s*"  # a secret needs ":" or "is"
# "Password is incorrect": the words a login screen says about a secret are not the secret.
_SECRET = (
    r"(?!(?:incorrect|wrong|invalid|required|correct|expired|too|not|case|weak|strong|saved|changed|reset"
    r"|set|missing|empty|needed|the|a|my|your|in|on|at|here|there|below|above|this|that|it|what|same"
    r"|private|secret|hidden)\b)(?=\S*\w)\S+"  # punctuation alone ("password is...") is not a value
)
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
DATE = (
    rf"(?:\d{{1,2}}[/.-]\d{{1,2}}[/.-](?:\d{{4}}|\d{{2}})|\d{{4}}[/.-]\d{{1,2}}[/.-]\d{{1,2}}"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+\d{{4}}|{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}})"
)
_CHUNKED = r"[A-Za-z0-9]{1,12}(?:[ -][A-Za-z0-9]{1,12}){0,5}"  # ID-like tokens, trimmed below
_DIGIT_GROUPS = r"\d[\d -]{4,30}\d"  # account numbers and sort codes are digits only

_CUES: list[tuple[str, re.Pattern[str], float]] = [
    (label, re.compile(rf"(?i)\b(?:{cue})(?!\w){gap}(?P<value>{value})"), score)
    for label, cue, gap, value, score in [
        ("date_of_birth", r"dob|d\.o\.b\.?|date of birth|birth ?date|birthday|born(?: on)?", _GAP, DATE, 0.9),
        ("ssn", r"ssn|social security(?: number| no)?", _GAP, r"\d{3}[- .]?\d{2}[- .]?\d{4}", 0.9),
        ("national_id",
         r"passport|national id|national insurance|ni|nino|id card|identity card|id|personal id"
         r"|driver'?s? licen[cs]e|driving licen[cs]e|tax id|tin|nhs|sin|social insurance|aadhaar|dni|nie|nif",
         _GAP, _CHUNKED, 0.8),
        ("phone",
         r"phone|tel|telephone|mobile|cell(?:phone)?|call(?: me)?(?: at| on)?|text(?: me)?(?: at| on)?"
         r"|whatsapp|sms|fax|reach me(?: at| on)?|my number",
         _GAP, r"\+?\(?\d[\d ().-]{5,20}\d", 0.8),
        ("account",
         r"account|acct|a/c|routing|sort code|bank|member(?:ship)?|customer|policy|card",
         _GAP, _DIGIT_GROUPS, 0.7),
        ("account",
         r"password|passwd|pw|passcode|pin(?: code)?|security code|cvv|cvc|otp|2fa(?: code)?"
         r"|verification code|wi-?fi (?:password|pw|key)|api key",
         _STRICT_GAP, _SECRET, 0.8),
    ]
]
# Digits a cue value must hold to be taken (a PIN has 4; "ID: PixelPanda92" is a handle, not an ID).
_CUE_MIN_DIGITS = {"ssn": 9, "national_id": 5, "phone": 7, "account": 6, "date_of_birth": 4}
_SECRET_CUE = _CUES[-1][1]

# ---- vetoes --------------------------------------------------------------------------------
# A number right after one of these words is an order, a build, a score: not a phone or an ID.
_NOT_PERSONAL_BEFORE = re.compile(
    r"(?i)(?:\b(?:order|invoice|inv|ticket|tracking|ref|reference|transaction|txn|seed|build|version|ver"
    r"|patch|level|lvl|score|rank|match|game|lobby|room|episode|chapter|season|commit|hash)\b"
    r"\W*(?:no\.?|number|id|#)?\W*|#|\bv)$"
)
_DATE_ONLY = re.compile(rf"(?i)^{DATE}$")
_FRACTION = re.compile(r"^[1-9]\d*\s*/\s*\d+$")  # "Frame 12045 / 30000"; a leading 0 is a trunk prefix (0151/2345678)


def vetoed(text: str, span: PiiSpan, cued: bool = False) -> bool:
    """True when a number-shaped hit is really an order number, a version, a score or a date.

    ``cued``: a context word already said what the number is ("call me on ..."), so only the
    words before it can still veto it.
    """
    before = text[max(0, span.start - 24):span.start]
    found = text[span.start:span.end]
    if _NOT_PERSONAL_BEFORE.search(before):
        return True
    if span.label == "phone" and not cued and (_DATE_ONLY.match(found) or _FRACTION.match(found) or found.isdigit()):
        # A bare digit run with no cue is as likely a seed, a timestamp or an ID as a phone;
        # the phone cue rule takes it when someone says it is a number to call.
        return True
    return False


def _digits(s: str) -> int:
    return sum(c.isdigit() for c in s)


def _trim_words(text: str, start: int, end: int) -> int:
    """End of a chunked ID value, cut before the first plain word the loose pattern ran on into
    ("533380006 expires 12/27" -> "533380006"; "QQ 12 34 56 C" stays whole)."""
    chunks = list(re.finditer(r"[A-Za-z0-9]+", text[start:end]))
    for index, chunk in enumerate(chunks[1:], 1):
        if chunk.group().isalpha() and len(chunk.group()) > 2:
            return start + chunks[index - 1].end()
    return start + chunks[-1].end() if chunks else start


def _ibans(text: str) -> list[PiiSpan]:
    """Valid IBANs; the loose pattern may run on into a following word, so shorter prefixes are tried too."""
    spans = []
    for m in _IBAN.finditer(text):
        groups = list(re.finditer(r"[A-Za-z0-9]+", m.group()))
        for last in range(len(groups), 0, -1):
            end = m.start() + groups[last - 1].end()
            if iban_valid(text[m.start():end]):
                spans.append(PiiSpan(m.start(), end, "iban", 1.0))
                break
    return spans


def find_rules(text: str) -> list[PiiSpan]:
    """Every hit of the rules in this module, unmerged."""
    spans: list[PiiSpan] = []
    digits = _digits(text)
    if digits >= 7:
        for m in _PHONE_LAYOUTS.finditer(text):
            span = PiiSpan(m.start(), m.end(), "phone", 0.6)
            if 7 <= _digits(m.group()) <= 15 and not vetoed(text, span):
                spans.append(span)
    if "://" in text:
        spans.extend(PiiSpan(m.start(), m.end(), "url", 0.9) for m in _SCHEME_URL.finditer(text))
    if digits >= 16:
        spans.extend(PiiSpan(m.start(), m.end(), "card", 0.6) for m in _CARD_LAYOUT.finditer(text))
    if digits >= 10:
        spans.extend(_ibans(text))
    if digits:
        for pattern in _ADDRESSES:
            spans.extend(PiiSpan(m.start(), m.end(), "address", 0.7) for m in pattern.finditer(text))
    for label, pattern, score in _CUES:
        if label != "account" and digits < _CUE_MIN_DIGITS[label]:
            continue
        for m in pattern.finditer(text):
            start, end = m.span("value")
            if pattern is not _SECRET_CUE:
                if label == "national_id":
                    end = _trim_words(text, start, end)
                if _digits(text[start:end]) < _CUE_MIN_DIGITS[label]:
                    continue
            span = PiiSpan(start, end, label, score)
            if not vetoed(text, span, cued=True):
                spans.append(span)
    return spans
