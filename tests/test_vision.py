"""The vision engine on generated clips with exact ground truth: real models, real photos."""

import numpy as np
import skimage.data

from inference_server.redact import RedactOptions
from inference_server.scenecut import SceneCutDetector
from inference_server.vision import VisionEngine
from privastream_testkit.boxes import inside, overlap_share
from privastream_testkit.scenes import Clip
from privastream_testkit.vision_eval import evaluate


def test_every_face_frame_covered_after_the_face_is_first_covered():
    """Faces moving, growing, entering the frame and occluded, across a scene cut, at the default cadence."""
    r = evaluate(Clip(seconds=3), RedactOptions(targets=("faces",)))  # the default cadence: every 4th frame
    assert r["face_uncovered_after_first_cover"] == []
    assert r["face_uncovered_share"] <= 0.02  # only slivers of a face entering at the frame edge
    assert r["nonsensitive_altered_share"] <= 0.05


def test_text_pii_and_plates_covered_with_sparse_ocr():
    """OCR once a second; chat PII, addresses and plates covered on every frame, other words left alone."""
    clip = Clip(seconds=4)
    r = evaluate(clip, RedactOptions(targets=("text", "plates"), text_every=30))
    assert r["text_pii_recall"] >= 0.95
    assert r["text_pii_precision"] >= 0.9
    assert r["plate_coverage"] >= 0.9


def test_scene_cuts_found_and_motion_ignored():
    a, b = skimage.data.astronaut(), skimage.data.coffee()[:512, :512]
    det = SceneCutDetector()
    assert det.is_cut(a) is False  # the first frame starts no cut
    assert det.is_cut(np.roll(a, 12, axis=1)) is False  # a pan
    assert det.is_cut((a * 0.7).astype(np.uint8)) is False  # a fade in brightness
    assert det.is_cut(b) is True


STATIC_CHAT = ["welcome to the stream everyone", "mail me at jane.doe@example.com tonight",
               "version 2.3.1 released 2024-05-01", "gg wp everyone see you tomorrow"]


def _screen(scene, lines):
    """A 720p screen: an overlay photo and a chat panel of ``lines``, one every 50 px."""
    s = scene("coffee")
    words = [s.write(40, 40 + 50 * i, text, size=22) for i, text in enumerate(lines)]
    return s.frame.copy(), words


def _read(engine, t, frame):
    """One text run of ``engine`` on the frame at t, as redact and the live server run it."""
    engine.observe(t, frame)
    areas = engine.text_areas(("text", "plate"), t)
    regions = engine.detect(t, frame, ("text", "plate"))
    return areas, regions


def test_text_is_read_again_only_where_the_picture_changed(scene):
    """A static screen is read once; a new chat line is read alone, the earlier answers kept, and a
    line that went away takes its box with it."""
    engine = VisionEngine({"targets": {"faces": False}}, threads=2, follow=True)
    first, words = _screen(scene, STATIC_CHAT)
    areas, found = _read(engine, 0.0, first)
    assert areas is None  # the first run reads the whole frame
    address = [w.box for w in words[1] if "@" in w.text][0]
    assert any(inside(address, r.box, tolerance=1.0) for r in found)

    areas, again = _read(engine, 0.5, first.copy())
    assert areas == [] and again == found  # nothing changed: nothing read, the same answer

    added, _ = _screen(scene, STATIC_CHAT + ["call me on +44 20 7946 0958 after 6pm"])
    areas, now = _read(engine, 1.0, added)
    assert areas and sum((a[2] - a[0]) * (a[3] - a[1]) for a in areas) < 0.25 * 1280 * 720
    assert all(a[1] >= 40 + 50 * 3 for a in areas)  # only around the new line
    assert any(inside(address, r.box, tolerance=1.0) for r in now)  # kept from the first read
    assert len(now) == len(found) + 1

    removed, _ = _screen(scene, [t if "@" not in t else "see you all next week" for t in STATIC_CHAT]
                         + ["call me on +44 20 7946 0958 after 6pm"])
    areas, later = _read(engine, 1.5, removed)
    assert areas and not any(overlap_share(address, r.box) > 0 for r in later)
    assert len(later) == 1


def test_an_unread_text_box_is_never_dropped():
    """The plan's rectangles grow to hold every earlier box they reach into; a box they do not hold
    whole stays, whatever the run found."""
    from inference_server.read_memory import ReadMemory
    from inference_server.regions import Region

    memory, scale = ReadMemory(), (2.0, 2.0)
    before = np.zeros((360, 640), np.uint8)
    memory.plan(0.0, before, scale)
    wide = Region("text", (100.0, 100.0, 900.0, 130.0), label="email")
    assert memory.remember(0.0, [wide]) == [wide]
    after = before.copy()
    after[50:60, 60:70] = 255  # a change under the box's left end only
    areas = memory.plan(1.0, after, scale)
    assert areas is not None and any(a[0] <= 100 and a[2] >= 900 for a in areas)  # grown to hold the box
    assert memory.remember(1.0, []) == []  # read again whole and gone: dropped
    far = Region("text", (1000.0, 600.0, 1200.0, 640.0), label="phone")
    memory.forget()
    memory.plan(2.0, after, scale)
    memory.remember(2.0, [far])
    changed = after.copy()
    changed[0:10, 0:10] = 255
    areas = memory.plan(3.0, changed, scale)
    assert areas and not any(a[2] > 1000 for a in areas)
    assert memory.remember(3.0, []) == [far]  # not read again: kept
    memory.plan(4.0, changed, scale)
    memory.forget()  # the settings changed while the run read
    assert memory.remember(4.0, []) is None
