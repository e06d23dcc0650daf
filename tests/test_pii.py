"""PII text classifier (inference_server.pii) on the real spaCy model and Presidio recognisers.

Each table row is a line a streamer's screen or a normalised transcript really shows; the
negatives are the lines that look like PII to a naive digit matcher (orders, dates, versions,
prices, timestamps, scores) and would blot out half the overlay if flagged.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from inference_server.errors import PrivaStreamError
from inference_server.pii import LABELS, PiiClassifier, PiiSpan, iban_valid, luhn_valid
from inference_server.pii.ner import load_spacy

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def clf() -> PiiClassifier:
    return PiiClassifier(custom_terms=("Jane Doe", "Springfield Elementary", r"re:ACME-\d+"))


def labelled(clf: PiiClassifier, text: str) -> list[tuple[str, str]]:
    return [(text[s.start:s.end], s.label) for s in clf.find(text)]


POSITIVES = [
    # (line, the private part, its label)
    ("Contact: jane.doe@example.com", "jane.doe@example.com", "email"),
    ("collabs -> biz+stream@pixel-panda.co.uk!", "biz+stream@pixel-panda.co.uk", "email"),
    ("Call +44 20 7946 0958 today", "+44 20 7946 0958", "phone"),
    ("Phone: (555) 123-4567", "(555) 123-4567", "phone"),
    ("cell 555-123-4567", "555-123-4567", "phone"),
    ("US line +1 555 123 4567", "+1 555 123 4567", "phone"),
    ("Mobile 07700 900123", "07700 900123", "phone"),
    ("Büro +49 30 1234567", "+49 30 1234567", "phone"),
    ("call me on 5551234567", "5551234567", "phone"),
    ("Handy 0151/23456789", "0151/23456789", "phone"),
    ("Bureau 01.23.45.67.89", "01.23.45.67.89", "phone"),
    ("Card 4111 1111 1111 1111 exp 12/27", "4111 1111 1111 1111", "card"),
    ("paid with 5500-0000-0000-0004", "5500-0000-0000-0004", "card"),
    ("OCR misread one digit: 4111 1111 1117 1111", "4111 1111 1117 1111", "card"),
    ("MAIL: JANE.DOE@EXAMPLE.COM", "JANE.DOE@EXAMPLE.COM", "email"),
    ("IBAN GB82 WEST 1234 5698 7654 32", "GB82 WEST 1234 5698 7654 32", "iban"),
    ("to DE89370400440532013000 pls", "DE89370400440532013000", "iban"),
    ("SSN 536-22-1234", "536-22-1234", "ssn"),
    ("my social security number is 536221234", "536221234", "ssn"),
    ("NINO: AB123456C", "AB123456C", "national_id"),
    ("passport number 533380006 expires soon", "533380006", "national_id"),
    ("server 192.168.1.42", "192.168.1.42", "ip"),
    ("v6 at 2001:db8:85a3::8a2e:370:7334", "2001:db8:85a3::8a2e:370:7334", "ip"),
    ("I live at 42 Elm Street", "42 Elm Street", "address"),
    ("ship to 221B Baker Street", "221B Baker Street", "address"),
    ("1600 Pennsylvania Avenue NW", "1600 Pennsylvania Avenue NW", "address"),
    ("Hauptstraße 5", "Hauptstraße 5", "address"),
    ("My name is John Smith", "John Smith", "person"),
    ("Thanks Sarah Connor for the raid", "Sarah Connor", "person"),
    ("see https://example.com/u/jane?id=7", "https://example.com/u/jane?id=7", "url"),
    ("DOB 12/05/1990", "12/05/1990", "date_of_birth"),
    ("born on 3 March 1988", "3 March 1988", "date_of_birth"),
    ("account number 12345678", "12345678", "account"),
    ("password: hunter2", "hunter2", "account"),
    ("my PIN is 4921", "4921", "account"),
]

NEGATIVES = [
    "Order #100234567",
    "Order number 100234567 shipped",
    "2024-05-12",
    "12/05/2024",
    "Sale ends 31/12/2024",
    "Stand: 01.05.2024",
    "v1.2.3",
    "Python 3.11.7",
    "1.32.0",
    "Build 10.0.19045.3803",
    "$1,299.99",
    "€45",
    "12:45:03",
    "00:01:23.456",
    "Score: 1250 - 980",
    "xXgamerXx: gg",
    "ttv_bob: gg wp",
    "Level 12 - Dragon Keep",
    "1920x1080 @ 60 fps",
    "60 fps",
    "Accuracy 67.5%",
    "Seed 8472910234",
    "Tracking 1Z999AA10123456784",
    "UUID 123e4567-e89b-12d3-a456-426614174000",
    "hash 9f86d081884c7d659a2feaa0c55ad015",
    "Top 10 Street Fighter moves",
    "30 min drive to the venue",
    "I have two cats and three dogs",
    "I have 2 cats and 3 dogs",
    "Main Street Market is closed",
    "Coins 9999",
    "forgot my password lol",
    "Password is incorrect",
    "The password is in chat",
    "Top 3 Best Way to farm",
    "main.py line 42",
]


@pytest.mark.parametrize("text,private,label", POSITIVES)
def test_finds_pii(clf, text, private, label):
    found = labelled(clf, text)
    assert (private, label) in found, f"{text!r}: expected {private!r} as {label}, got {found}"


@pytest.mark.parametrize("text", NEGATIVES)
def test_leaves_non_pii_alone(clf, text):
    assert clf.find(text) == [], f"{text!r} flagged: {labelled(clf, text)}"


def test_covers_only_the_private_part_of_a_line(clf):
    text = "gg! mail jane.doe@example.com or call (555) 987-6543 after the raid"
    assert labelled(clf, text) == [("jane.doe@example.com", "email"), ("(555) 987-6543", "phone")]


def test_a_date_is_private_only_as_a_date_of_birth(clf):
    assert clf.find("Stream on 12/05/1990") == []
    assert labelled(clf, "date of birth: 1990-05-12") == [("1990-05-12", "date_of_birth")]


def test_spans_are_sorted_disjoint_and_take_the_most_specific_label(clf):
    # The e-mail contains a URL-shaped domain and a name-shaped local part: one span, labelled email.
    text = "John Smith john.smith@example.com 4111-1111-1111-1111 www.example.com"
    spans = clf.find(text)
    assert all(isinstance(s, PiiSpan) and s.label in LABELS and 0 < s.score <= 1 for s in spans)
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:]))
    assert [text[s.start:s.end] for s in spans if s.label == "email"] == ["john.smith@example.com"]
    assert ("4111-1111-1111-1111", "card") in labelled(clf, text)


def test_custom_terms_match_words_case_insensitively_and_regexes(clf):
    text = "shoutout to JANE  doe from Springfield Elementary, ticket ACME-4471"
    assert labelled(clf, text) == [
        ("JANE  doe", "custom"), ("Springfield Elementary", "custom"), ("ACME-4471", "custom")]
    # Word boundaries, not substrings (spaCy may still call "Jane" a person: that is not the custom term).
    assert [s for s in clf.find("janedoe123 and Jane Does") if s.label == "custom"] == []


@pytest.mark.parametrize("terms,message", [
    (["re:ACME-(\\d+"], "custom term #1 is not a valid regular expression"),
    (["ok", 42], "custom term #2 must be text, got int"),
    ("Jane Doe", "custom_terms must be a list of words or patterns"),
])
def test_bad_custom_terms_give_a_clear_error(terms, message):
    with pytest.raises(PrivaStreamError, match=message) as caught:
        PiiClassifier(custom_terms=terms, use_ner=False)
    assert "ACME" not in str(caught.value)  # the term itself may be private: never echoed


def test_empty_custom_terms_are_ignored():
    clf = PiiClassifier(custom_terms=["", "  ", "re:"], use_ner=False)
    assert clf.find("nothing here") == []


@pytest.mark.parametrize("bad", [None, b"bytes", 42])
def test_non_text_input_gives_a_clear_error(clf, bad):
    with pytest.raises(PrivaStreamError, match="must be a str"):
        clf.find(bad)
    with pytest.raises(PrivaStreamError, match="list of texts"):
        clf.find_batch("one string")
    with pytest.raises(PrivaStreamError, match="has 100001 characters"):
        clf.find_batch(["ok", "x" * 100_001])


def test_find_batch_matches_find_and_cached_results_are_copies(clf):
    texts = ["Phone: (555) 123-4567", "Score: 1250 - 980", "", "Phone: (555) 123-4567", "My name is John Smith"]
    batch = clf.find_batch(texts)
    assert batch == [clf.find(t) for t in texts]
    batch[0].clear()  # a caller mutating its list must not empty the cache
    assert clf.find(texts[0]) != []


def test_normalised_transcripts_from_the_audio_side(clf):
    """What the speech side hands over after turning spoken numbers and e-mails into written form."""
    cases = {
        "my phone number is 555 123 4567": ("555 123 4567", "phone"),
        "my card number is 4111111111111111": ("4111111111111111", "card"),
        "write to john.smith@example.com": ("john.smith@example.com", "email"),
        "i live at 42 elm street": ("42 elm street", "address"),
        "my pin is 4921": ("4921", "account"),
    }
    for text, expected in cases.items():
        assert expected in labelled(clf, text), text


def test_without_ner_patterns_still_work():
    clf = PiiClassifier(use_ner=False)
    assert [s.label for s in clf.find("John Smith, (555) 123-4567")] == ["phone"]


def test_checksums():
    assert luhn_valid("4111 1111 1111 1111") and luhn_valid("378282246310005")
    assert not luhn_valid("4111 1111 1111 1112") and not luhn_valid("0000") and not luhn_valid("4111x1111111111")
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and iban_valid("de89370400440532013000")
    assert not iban_valid("GB82 WEST 1234 5698 7654 33") and not iban_valid("GB82 WEST") and not iban_valid("")


def test_never_touches_the_network(monkeypatch):
    """Presidio's e-mail check and spaCy both could reach for the Internet; the filter runs offline."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("the PII classifier tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    load_spacy.cache_clear()  # load the model again, under the guard
    clf = PiiClassifier(custom_terms=("Jane Doe",))
    text = "Jane Doe, jane@example.com, https://example.org, 10.0.0.1, (555) 123-4567, 42 Elm Street"
    assert {s.label for s in clf.find(text)} >= {"custom", "email", "url", "ip", "phone", "address"}


def test_concurrent_callers_get_the_same_answers(clf):
    texts = [f"Call (555) 123-{4000 + i} or mail user{i}@example.com, I am Sarah Connor" for i in range(40)]
    expected = [clf.find(t) for t in texts]
    fresh = PiiClassifier()
    results: dict[int, list] = {}
    threads = [threading.Thread(target=lambda k=k: results.update({k: fresh.find_batch(texts)})) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[k] == expected for k in range(4))


def test_labelled_lines_meet_the_precision_and_recall_targets():
    """scripts/eval_pii.py over tests/data/pii_lines*.txt: recall >= 0.95, precision >= 0.9."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "eval_pii.py"), "--min-recall", "0.95", "--min-precision", "0.9",
         "--repeats", "0", "--show-errors"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
