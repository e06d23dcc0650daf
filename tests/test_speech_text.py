"""Spoken-PII normalisers and detectors on word lists (no audio): what Whisper writes, what people say.

Uses the real shared PII classifier (Presidio patterns and spaCy NER from the model cache).
"""

from __future__ import annotations

import pytest

from inference_server.speech.spoken import normalize_words, number_words_to_digits
from inference_server.speech.spoken_pii import SpokenPiiDetector


def words(sentence: str) -> list[str]:
    """Whisper-style word list: a leading space starts a word, none continues the previous one."""
    return [w if w.startswith((".", "-")) else " " + w for w in sentence.split()]


@pytest.fixture(scope="module")
def detector() -> SpokenPiiDetector:
    return SpokenPiiDetector(custom_terms=("Grimsby", "Acme Robotics"))


def found(detector: SpokenPiiDetector, sentence: str, open_end: bool = False) -> list[tuple[str, str]]:
    ws = sentence.split()
    return [(" ".join(ws[e.first:e.last + 1]), e.label) for e in detector.find(words(sentence), open_end=open_end)]


@pytest.mark.parametrize("spoken, written", [
    ("five five five one two three", "5 5 5 1 2 3"),
    ("double five oh seven", "55 0 7"),
    ("triple nine", "999"),
    ("four thousand one hundred eleven", "4111"),
    ("twenty three", "23"),
    ("one hundred twenty three", "123"),
    ("nineteen ninety nine", "19 99"),
    ("oh no", "oh no"),  # "oh" is a digit only next to digits
    ("for one one one", "4 1 1 1"),  # Whisper's "for" before digits
    ("thanks for one thing", "thanks for 1 thing"),
])
def test_number_words_are_written_as_digits(spoken, written):
    assert normalize_words(words(spoken)).text == written


def test_whisper_number_style_loses_grouping_commas_but_keeps_word_ownership():
    norm = normalize_words([" is", " 555", "-1234567.", " card", " 4,111,111"])
    assert norm.text == "is 555-1234567. card 4111111"
    start = norm.text.index("555")
    assert norm.words_of(start, start + len("555-1234567")) == (1, 2)
    assert norm.words_of(norm.text.index("4111111"), len(norm.text)) == (4, 4)


def test_spoken_addresses_are_written_with_symbols():
    assert normalize_words(words("email me at john dot smith at example dot com")).text == \
        "email me at john.smith@example.com"
    assert normalize_words(words("go to www dot example dot org")).text == "go to www.example.org"
    assert normalize_words(words("look at this dot")).text == "look at this dot"


def test_composite_number_characters_cover_all_its_words():
    groups = number_words_to_digits(["four", "thousand", "one", "hundred", "eleven"])
    assert groups == [("4111", 0, 4)]
    norm = normalize_words(words("four thousand one hundred eleven"))
    assert norm.words_of(0, len(norm.text)) == (0, 4)


@pytest.mark.parametrize("sentence, expected", [
    ("my number is five five five, one two three, four five six seven.",
     [("five five five, one two three, four five six seven.", "phone")]),
    ("my card is four five three nine, one four eight eight, oh three four three, six four six seven.",
     [("four five three nine, one four eight eight, oh three four three, six four six seven.", "card")]),
    ("the code is seven seven three nine one two four four", [("seven seven three nine one two four four", "account")]),
    ("email me at john dot smith at example dot com", [("john dot smith at example dot com", "email")]),
    ("Email me at jon .mit .emple .com.", [("jon .mit .emple .com.", "url")]),
    ("go to www dot example dot org please", [("www dot example dot org", "url")]),
    ("my password is hunter two. Thanks", [("hunter two.", "account")]),
    ("my PIN is one two three four", [("one two three four", "account")]),
    ("my address is twelve Oak lane, Springfield.", [("twelve Oak lane,", "address")]),
    ("my password is hunter two and then we log in", [("hunter two", "account")]),
    ("I live at forty two Elm Street", [("forty two Elm Street", "address")]),
    ("I live at forty two Elm near the park", [("forty two Elm", "address")]),  # street word misheard
    ("I was born on the third of March nineteen ninety, in fact", [("the third of March nineteen ninety,", "date_of_birth")]),
    ("I grew up in Grimsby and work at Acme Robotics", [("Grimsby", "custom"), ("Acme Robotics", "custom")]),
    ("my name is John Smith", [("John Smith", "person")]),
])
def test_spoken_pii_is_found_as_whole_entities(detector, sentence, expected):
    assert found(detector, sentence) == expected


@pytest.mark.parametrize("sentence", [
    "I have two cats and three dogs",
    "the score was ten to eight",
    "version three point two",
    "we shipped version three point two of the game today.",
    "I am at home.",
    "thanks for one thing",
    "the year nineteen ninety nine was great",
    "we played for twenty minutes and won three games",
    "look at this dot, it moves",
    "my password is... wait",
    "the acme of the genre",
    "see you at noon",
])
def test_ordinary_speech_is_not_pii(detector, sentence):
    assert found(detector, sentence) == []
    assert found(detector, sentence + " and then we went out") == []


def test_unfinished_digits_and_addresses_count_at_the_open_end(detector):
    """Decided before the speaker finished: the rest of the number may not have been heard yet."""
    assert found(detector, "my phone number is five", open_end=True) == [("five", "account")]
    assert found(detector, "so one two three", open_end=True) == [("one two three", "account")]
    assert found(detector, "email me at john.", open_end=True) == [("john.", "email")]
    assert found(detector, "and now I work at Acme", open_end=True) == [("Acme", "custom")]  # "Acme Robotics"?
    assert found(detector, "we met at Tesco", open_end=True) == []  # a place, not "at john" of an address
    assert found(detector, "so one two three", open_end=False) == []
    assert found(detector, "I have two cats", open_end=True) == []
    assert found(detector, "I am at home.", open_end=True) == []


def test_empty_and_punctuation_only_transcripts(detector):
    assert detector.find([]) == []
    assert detector.find([" ...", " ,"]) == []
