"""FaceDetector on the real CenterFace model and real packaged photos (no mocks)."""

from __future__ import annotations

import numpy as np
import pytest

from inference_server.detectors.faces import FaceDetector
from inference_server.regions import iou

# Where the face is in each photo at its own size, checked by eye: the detector's
# box must overlap this one well.
PHOTO_FACES = {"astronaut": (180, 55, 272, 180), "grace_hopper": (175, 125, 360, 335)}


@pytest.fixture(scope="module")
def detector():
    return FaceDetector(threads=2)


def matched(found, truth, min_iou=0.3):
    """How many ground-truth boxes some found region overlaps, and the found regions matching none."""
    hits = sum(any(iou(r.box, t) >= min_iou for r in found) for t in truth)
    false = [r for r in found if not any(iou(r.box, t) >= min_iou for t in truth)]
    return hits, false


def scaled(box, sx, sy, x, y):
    return (box[0] * sx + x, box[1] * sy + y, box[2] * sx + x, box[3] * sy + y)


@pytest.mark.parametrize("name", sorted(PHOTO_FACES))
def test_finds_the_one_face_in_a_real_photo(detector, photos, name):
    found = detector.detect(photos[name])
    assert len(found) == 1
    face = found[0]
    assert face.kind == "face" and face.origin == "detected" and 0.3 < face.score <= 1.0
    assert iou(face.box, PHOTO_FACES[name]) > 0.6


def test_photos_composed_into_a_720p_frame(detector, photos, scene):
    """Both photos at a smaller scale side by side in a 720p frame: both faces, nothing else."""
    s = scene("grey")
    truth = []
    for (name, x, width) in (("astronaut", 40, 300), ("grace_hopper", 700, 240)):
        sx, sy = s.paste_photo(photos[name], x, 100, width)
        truth.append(scaled(PHOTO_FACES[name], sx, sy, x, 100))
    hits, false = matched(detector.detect(s.frame), truth, min_iou=0.5)
    assert hits == 2 and not false


def test_recall_on_lfw_faces_from_24_to_200_px(detector, lfw, scene):
    """100 real faces (lfw_subset), 24-200 px, over a real photo and on grey: recall >= 0.9, no false alarm.

    lfw patches are 25 px tight crops (forehead and chin cut), scaled up here, so
    they are harder than faces in a real frame; the 24-28 px ones are the limit.
    """
    faces, _ = lfw
    rng = np.random.default_rng(7)
    small = scene("coffee")
    x = y = 12
    for i in range(70):  # small faces, 24-40 px, in rows over the coffee photo
        size = int(rng.integers(24, 41))
        if x + size > 1268:
            x, y = 12, y + 52
        small.paste_face(faces[i], x, y, size)
        x += size + 14
    large = scene("grey")
    x = 10
    for i, size in zip(range(70, 100), (200, 170, 150, 130, 112, 96, 84, 72, 64, 56, 48) * 3):
        if x + size > 1270:
            break
        large.paste_face(faces[i], x, 260 - size // 2, size)
        x += size + 12
    total = hits = 0
    for s in (small, large):
        h, false = matched(detector.detect(s.frame), s.faces)
        assert not false
        total, hits = total + len(s.faces), hits + h
    assert total >= 80
    assert hits / total >= 0.9


def test_no_false_alarms_on_lfw_non_faces_and_faceless_photos(detector, lfw, photos, scene):
    _, non_faces = lfw
    s = scene("black")
    for i, patch in enumerate(non_faces):
        s.paste_face(patch, 20 + (i % 20) * 62, 20 + (i // 20) * 62, 48)
    alarms = len(detector.detect(s.frame))
    for name in ("coffee", "rocket", "chelsea", "motorcycle"):
        alarms += len(detector.detect(scene(name).frame))
    assert alarms <= 1


def test_landmarks_lie_in_the_face_with_the_mouth_below_the_eyes(detector, photos):
    for name in PHOTO_FACES:
        face = detector.detect(photos[name])[0]
        assert len(face.landmarks) == 5
        x0, y0, x1, y1 = face.box
        assert all(x0 <= px <= x1 and y0 <= py <= y1 for px, py in face.landmarks)
        left_eye, right_eye, nose, mouth_left, mouth_right = face.landmarks
        assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
        eyes_y = (left_eye[1] + right_eye[1]) / 2
        assert eyes_y < nose[1] < min(mouth_left[1], mouth_right[1])


def test_rgba_input_gives_the_same_faces_as_rgb(detector, photos):
    rgb = photos["astronaut"]
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    a, b = detector.detect(rgb), detector.detect(rgba)
    assert len(a) == len(b) == 1 and a[0].box == b[0].box


def test_odd_frame_size_maps_boxes_back_into_the_frame(detector, photos, scene):
    s = scene("grey", size=(641, 359))
    sx, sy = s.paste_photo(photos["grace_hopper"], 200, 10, 290)
    found = detector.detect(s.frame)
    assert len(found) == 1
    x0, y0, x1, y1 = found[0].box
    assert 0 <= x0 < x1 <= 641 and 0 <= y0 < y1 <= 359
    assert iou(found[0].box, scaled(PHOTO_FACES["grace_hopper"], sx, sy, 200, 10)) > 0.5


def test_smaller_detection_input_maps_boxes_back_to_frame_pixels(photos, scene):
    """max_side shrinks the frame for detection only: the box must land where the full-size one does."""
    s = scene("grey")
    s.paste_photo(photos["astronaut"], 400, 0, 600)
    full = FaceDetector(threads=2).detect(s.frame)
    small = FaceDetector(threads=2, max_side=640).detect(s.frame)
    assert len(full) == len(small) == 1
    assert iou(full[0].box, small[0].box) > 0.8


def test_an_enlarged_input_finds_small_faces_the_frame_size_misses(detector, lfw, scene):
    """40 real faces of 20-24 px: the governor enlarges the input when runs are cheap enough
    (governor.face_input_scale), and the boxes still land on the faces in frame pixels."""
    faces, _ = lfw
    s = scene("coffee")
    for i in range(40):
        s.paste_face(faces[i], 20 + (i % 20) * 62, 200 + (i // 20) * 200, 20 + i % 5)
    own, false_own = matched(detector.detect(s.frame), s.faces)
    enlarged, false_enlarged = matched(detector.detect(s.frame, scale=2.0), s.faces)
    assert not false_own and not false_enlarged
    assert enlarged >= own + 8 and enlarged >= 30


def test_black_frame_has_no_faces_and_timing_is_reported(detector):
    assert detector.detect(np.zeros((720, 1280, 3), np.uint8)) == []
    assert set(detector.last_timing) == {"pre_ms", "infer_ms", "post_ms"}
    assert all(v >= 0 for v in detector.last_timing.values())


@pytest.mark.parametrize("frame, message", [
    (np.zeros((72, 128, 3), np.float32), "frame must be uint8, got float32"),
    (np.zeros((72, 128), np.uint8), "frame must be HxWx3 (RGB) or HxWx4 (RGBA), got shape (72, 128)"),
    (np.zeros((72, 128, 2), np.uint8), "frame must be HxWx3 (RGB) or HxWx4 (RGBA), got shape (72, 128, 2)"),
    (np.zeros((0, 128, 3), np.uint8), "frame is empty (shape (0, 128, 3))"),
    ([[0, 0, 0]], "frame must be a numpy array, got list"),
])
def test_bad_frames_are_refused_with_a_clear_message(detector, frame, message):
    with pytest.raises(ValueError) as info:
        detector.detect(frame)
    assert str(info.value) == message


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="threshold must be between 0 and 1"):
        FaceDetector(threshold=1.5)
    with pytest.raises(ValueError, match="max_side must be at least 32"):
        FaceDetector(max_side=16)
