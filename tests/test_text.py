"""TextDetector on the real PP-OCRv4 models and the real PII classifier, over real photos.

Each frame is composed once per module (OCR takes seconds a frame on 2 cores)
and every test asserts on the regions of that one run.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inference_server.detectors.text import TextDetector
from inference_server.pii import LABELS
from privastream_testkit.boxes import inside, overlap_share

# Chat lines as a streamer's overlay shows them: the text, then the private
# phrases in it with the label the detector must give them.  The lines without
# secrets are the tricky negatives: versions, dates, order numbers, scores, times, prices.
CHAT = [
    ("mail me at jane.doe@example.com tonight", {"jane.doe@example.com": "email"}),
    ("call me on +44 20 7946 0958 after 6pm", {"+44 20 7946 0958": "phone"}),
    ("card 4111 1111 1111 1111 exp soon", {"4111 1111 1111 1111": "card"}),
    ("ship it to 42 Elm Street, Springfield", {"42 Elm Street, Springfield": "address"}),
    ("gg wp John Smith won 3-1", {"John Smith": "person"}),
    ("version 2.3.1 released 2024-05-01", {}),
    ("order #A12345 ships Friday", {}),
    ("server at 192.168.10.42 is down", {"192.168.10.42": "ip"}),
    ("thanks Jane Doe for the raid", {"Jane Doe": "custom"}),
    ("final score 21-17 at 19:45", {}),
    ("my ssn is 078-05-1120 ok", {"078-05-1120": "ssn"}),
    ("price $1,299.99 today only", {}),
]
# A line turned 8 degrees (an overlay placed at an angle): the character span must map
# through the turned crop back to the frame.
TURNED = ("write to kim.lee@mail.org or not", {"kim.lee@mail.org": "email"})
PLATES = [  # centre, text, height px, background, perspective tilt
    ((200, 500), "AB12 CDE", 34, (245, 245, 245), 0.0),
    ((520, 560), "ABC 1234", 28, (250, 210, 0), 0.15),
    ((850, 480), "B-MW 1234", 40, (245, 245, 245), 0.1),
    ((1100, 600), "123-ABC", 21, (245, 245, 245), 0.0),
    ((300, 650), "AB-123-CD", 24, (245, 245, 245), 0.2),
    ((380, 380), "XY51   ZRT", 34, (245, 245, 245), 0.0),  # a wide gap: the text detector splits it in two
]


@pytest.fixture(scope="module")
def detector():
    return TextDetector(threads=2, custom_terms=("Jane Doe",))


@pytest.fixture(scope="module")
def chat(detector, scene):
    """Twelve chat lines over the astronaut photo, some on panels, some outlined over the
    photo, and one turned line (s.lines[-1])."""
    s = scene("astronaut")
    for i, (text, _) in enumerate(CHAT):
        s.write(30 + (i % 2) * 620, 30 + (i // 2) * 56 + (i % 2) * 20, text, size=20 + (i % 3) * 2,
                panel=(20, 20, 20) if i % 4 else None)
    s.write(700, 620, TURNED[0], size=24, angle=8)
    return s, detector.detect(s.frame)


@pytest.fixture(scope="module")
def street(detector, scene):
    """Six plates of common formats, 21-40 px tall, some warped, and two signs, on the motorcycle photo."""
    s = scene("motorcycle")
    for centre, text, height, background, tilt in PLATES:
        s.plate(*centre, text, height=height, background=background, tilt=tilt)
    signs = [s.write(900, 120, "NO PARKING", size=30, colour=(200, 0, 0), panel=(255, 255, 255), bold=True),
             s.write(700, 250, "STOP", size=40, colour=(255, 255, 255), panel=(200, 0, 0), bold=True)]
    return s, signs, detector.detect(s.frame)


def phrase_boxes(words, phrase):
    """Box of each word of ``phrase`` within a rendered line."""
    tokens = phrase.split()
    texts = [w.text for w in words]
    for i in range(len(texts) - len(tokens) + 1):
        if texts[i:i + len(tokens)] == tokens:
            return [w.box for w in words[i:i + len(tokens)]]
    raise AssertionError(f"{phrase!r} not in the rendered line")


def test_every_pii_phrase_is_covered_with_its_label(chat):
    s, found = chat
    texts = [r for r in found if r.kind == "text"]
    for (line, secrets), words in zip(CHAT + [TURNED], s.lines):
        for phrase, label in secrets.items():
            for box in phrase_boxes(words, phrase):
                covering = [r for r in texts if inside(box, r.box, tolerance=1.0)]
                assert covering, f"{phrase!r} in {line!r} is not covered"
                assert covering[0].label == label


def test_non_pii_words_stay_visible(chat):
    """Only the private part of a line is covered: every other word (and every word of the
    versions/dates/order/score/price lines) keeps at least 85 % of its area visible."""
    s, found = chat
    for (line, secrets), words in zip(CHAT, s.lines):
        private = {b for phrase in secrets for b in phrase_boxes(words, phrase)}
        for word in words:
            if word.box in private:
                continue
            hidden = max([overlap_share(word.box, r.box) for r in found] + [0.0])
            assert hidden <= 0.15, f"{word.text!r} of {line!r} is {hidden:.0%} covered"


def test_regions_carry_the_category_never_the_text(chat):
    s, found = chat
    assert found and all(r.kind == "text" and r.label in LABELS and r.origin == "detected" for r in found)
    assert all(0 <= r.box[0] < r.box[2] <= 1280 and 0 <= r.box[1] < r.box[3] <= 720 for r in found)
    assert all(not hasattr(r, "text") for r in found)


def test_a_static_overlay_is_read_from_the_cache(detector, chat):
    """Unchanged line crops (a chat panel between messages) skip the recogniser and give the same regions."""
    s, found = chat
    again = detector.detect(s.frame)
    assert again == found
    assert detector.last_timing["rec_cached"] == detector.last_timing["rec_lines"] > 0


def test_dropped_spaces_are_put_back_so_addresses_and_names_are_found(detector, scene):
    """PP-OCRv4 reads these 24 px lines on one stacked panel as "Iliveat42ElmStreet": the
    spaces come back from the ink gaps, and the address and the name are covered."""
    s = scene("coffee")
    lines = ["I live at 42 Elm Street", "thanks John Smith for the sub"]
    for i, text in enumerate(lines):
        s.write(40, 300 + i * 36, text, size=24, panel=(20, 20, 28))
    read = detector.ocr.find_lines(s.frame)
    detector.ocr.read_lines(s.frame, read)
    assert [ln.text for ln in read] == lines
    assert any(ln.inserted_spaces for ln in read)  # the case under test: the recogniser dropped them
    found = detector.detect(s.frame)
    for phrase, label, words in (("42 Elm Street", "address", s.lines[0]), ("John Smith", "person", s.lines[1])):
        for box in phrase_boxes(words, phrase):
            assert any(r.label == label and inside(box, r.box, tolerance=1.0) for r in found), f"{phrase!r} not covered"


def test_word_gaps_place_spaces_and_edges_from_ink():
    """Unit check of the layout rule on a hand-made ink profile: letters 4 px apart, one 20 px gap."""
    from inference_server.detectors.word_gaps import lay_out

    ink = np.zeros(100, bool)
    for x0, x1 in ((2, 10), (14, 22), (42, 50), (54, 62)):
        ink[x0:x1] = True
    text, edges, inserted = lay_out(list("abcd"), np.array([6.0, 18.0, 46.0, 58.0]), (ink, ink), 100)
    assert text == "ab cd" and inserted == (2,)
    assert edges.tolist() == [0.0, 12.0, 22.0, 42.0, 52.0, 100.0]


def test_a_row_split_by_the_detector_is_classified_whole(detector, scene):
    """In this layout the text detector splits the card line into "card 4111 1111" and
    "1111 1111 exp soon"; neither half is a card number, the joined row is."""
    s = scene("rocket")
    for i, (text, _) in enumerate(CHAT):
        s.write(20 + (i % 2) * 640, 20 + (i // 2) * 67, text, size=26)
    read = detector.ocr.find_lines(s.frame)
    detector.ocr.read_lines(s.frame, read)
    card_words = s.lines[2]
    halves = [ln for ln in read if any(overlap_share(w.box, ln.bounds()) > 0.5 for w in card_words)]
    assert len(halves) == 2  # the case under test
    found = detector.detect(s.frame)
    for box in phrase_boxes(card_words, "4111 1111 1111 1111"):
        assert any(r.label == "card" and inside(box, r.box, tolerance=1.0) for r in found)


def test_card_read_with_look_alike_letters_is_still_covered_at_1080p(detector, scene):
    """At 28 px on a 1080p frame the recogniser reads "4111 1111 1111 1111" as "411l 111l 1l11 111l":
    the digit reading of the line still finds the card, and the whole number is covered."""
    s = scene("astronaut", size=(1920, 1080))
    words = s.write(40, 116, "card 4111 1111 1111 1111 exp soon", size=28)
    found = detector.detect(s.frame)
    for box in phrase_boxes(words, "4111 1111 1111 1111"):
        assert any(r.label == "card" and inside(box, r.box, tolerance=1.0) for r in found)


def test_readings_map_back_to_the_line():
    from inference_server.detectors.readings import digit_reading, readings

    assert digit_reading("card 4111 1lll 111l exp soon") == "card 4111 1111 1111 exp soon"
    assert digit_reading("call 555-l23-4S67 Ollie") == "call 555-123-4567 Ollie"
    assert digit_reading("mail lol@oslo.io Bill") == "mail lol@oslo.io Bill"  # no digit: words stay words
    assert readings("Ilive at 4l Elm", inserted_spaces=(5,)) == [("Ilive at 4l Elm", None), ("Iliveat 4l Elm", [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14]),
                              ("Ilive at 41 Elm", None)]
    assert readings("mail jo @x.io") == [("mail jo @x.io", None), ("mail jo@x.io", [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12])]


@pytest.mark.parametrize("text, plate", [
    ("AB12 CDE", True), ("ABC 1234", True), ("B-MW 1234", True), ("AB-123-CD", True), ("123-ABC", True),
    ("7ABC123", True), ("WA 12345", True),
    ("NO PARKING", False), ("STOP", False), ("2024-05-01", False), ("19:45", False), ("SCORE 3-1", False),
    ("v2.3.1", False), ("$1,299", False), ("Ab12 Cde", False), ("AB1", False), ("ABCD 12345 XYZ", False),
])
def test_plate_text_patterns(text, plate):
    from inference_server.detectors.plates import plate_text

    assert plate_text(text) is plate


def test_plates_are_covered_whole(street):
    s, _, found = street
    plates = [r for r in found if r.kind == "plate"]
    for truth, (_, text, height, _, _) in zip(s.plates, PLATES):
        assert any(inside(truth, r.box, tolerance=2.0) for r in plates), f"plate {text!r} ({height} px) not covered"


def test_signs_without_digits_are_not_plates(street):
    s, signs, found = street
    for words in signs:
        for word in words:
            assert all(overlap_share(word.box, r.box) == 0 for r in found), f"sign word {word.text!r} covered"


def test_unreadable_plate_shaped_text_is_still_covered(detector, scene):
    """A plate blurred until the recogniser reads garbage is covered because its pixels look like a plate."""
    s = scene("motorcycle")
    truth = s.plate(500, 600, "AB12 CDE", height=34, background=(250, 210, 0))
    rng = np.random.default_rng(0)
    s.frame[:] = np.clip(cv2.GaussianBlur(s.frame, (0, 0), 3.5) + rng.normal(0, 6, s.frame.shape), 0, 255)
    lines = detector.ocr.find_lines(s.frame)
    detector.ocr.read_lines(s.frame, lines)
    plate_lines = [ln for ln in lines if overlap_share(truth, ln.bounds()) > 0.5]
    assert plate_lines and plate_lines[0].confidence < 0.8  # the case under test: no confident read
    found = detector.detect(s.frame)
    assert any(r.kind == "plate" and inside(truth, r.box, tolerance=2.0) for r in found)


def test_targets_odd_size_and_rgba(scene):
    """targets=("plate",) reports plates only; a 641x359 RGBA frame works and boxes stay inside it."""
    s = scene("motorcycle", size=(641, 359))
    truth = s.plate(450, 250, "KL 5678", height=30)
    s.write(20, 20, "mail me at jane.doe@example.com", size=18)
    rgba = np.dstack([s.frame, np.full(s.frame.shape[:2], 255, np.uint8)])
    plates_only = TextDetector(threads=2, targets=("plate",))
    assert plates_only.kinds == ("plate",) and plates_only.pii is None
    found = plates_only.detect(rgba)
    assert [r.kind for r in found] == ["plate"]
    assert inside(truth, found[0].box, tolerance=2.0)
    assert all(0 <= r.box[0] < r.box[2] <= 641 and 0 <= r.box[1] < r.box[3] <= 359 for r in found)


def test_black_frame_has_nothing_and_timing_is_reported(detector):
    assert detector.detect(np.zeros((720, 1280, 3), np.uint8)) == []
    timing = detector.last_timing
    assert {"pre_ms", "infer_ms", "post_ms", "det_infer_ms", "rec_infer_ms", "classify_ms"} <= set(timing)
    assert timing["rec_lines"] == 0


@pytest.mark.parametrize("frame, message", [
    (np.zeros((72, 128, 3), np.int16), "frame must be uint8, got int16"),
    (np.zeros((72, 128, 3, 1), np.uint8), "frame must be HxWx3 (RGB) or HxWx4 (RGBA), got shape (72, 128, 3, 1)"),
    (np.zeros((72, 0, 4), np.uint8), "frame is empty (shape (72, 0, 4))"),
])
def test_bad_frames_are_refused_with_a_clear_message(detector, frame, message):
    with pytest.raises(ValueError) as info:
        detector.detect(frame)
    assert str(info.value) == message


def test_bad_settings_are_refused(detector):
    with pytest.raises(ValueError, match="targets must be a non-empty subset of"):
        TextDetector(targets=("text", "faces"))
    with pytest.raises(ValueError, match="pass custom_terms to the PiiClassifier"):
        TextDetector(custom_terms=("x",), pii=detector.pii)
