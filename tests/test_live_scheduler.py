"""The video scheduler's privacy invariant: a decision that is not fail-closed never misses what
is in its frame, across a scene cut, with detection runs overlapping the frames' arrival.

Real parts: the VisionEngine (scene-cut detector and coverage), the shared-memory ring and
the scheduler's threads.  The detector is a stand-in that reads the frame from the ring and
reports the white square drawn on it: the bug this guards against is one of timing between
threads, and the real detectors' run time cannot be steered (tests/test_live_detection.py
runs CenterFace through the real server).

The bug (bench_live.py, "covered" 94.4 %): the detection thread picked the newest frame
before the decision thread had checked it for a scene cut, so a run on the first frames of a
new scene was filed under the old scene; the new scene then looked empty and its estimates
covered nothing.  This test failed that way (frame 62: no region, not fail-closed) before
scene cuts were checked as frames arrive.
"""

import threading
import time

import numpy as np

from inference_server.detect_worker import FrameRef
from inference_server.protocol import FORMAT_RGBA8
from inference_server.regions import Region
from inference_server.scheduler import DetectionGate, VideoScheduler
from inference_server.shm import RingReader, RingWriter, SlotOverwritten, slot_size_for_video
from inference_server.speech_link import SpeechLinks

import inference_server.speech  # noqa: F401  (the server imports it before serving; here it is not timed)
from inference_server.vision import VisionEngine

W, H, FPS = 640, 360, 30
SQUARE_A = (100, 100, 160, 160)
SQUARE_B = (420, 200, 480, 260)
FACES_ONLY = {"targets": {"faces": True, "plates": False, "text": False, "speech": False}}


def scene_frame(scene: int) -> np.ndarray:
    """Scene 0: blue sky over grass, square left; scene 1: red over dark, square right."""
    frame = np.zeros((H, W, 4), np.uint8)
    frame[..., 3] = 255
    if scene == 0:
        frame[: H // 2, :, :3] = (60, 120, 220)
        frame[H // 2:, :, :3] = (40, 160, 60)
        x0, y0, x1, y1 = SQUARE_A
    else:
        frame[:, : W // 3, :3] = (200, 40, 30)
        frame[:, W // 3:, :3] = (25, 20, 20)
        x0, y0, x1, y1 = SQUARE_B
    frame[y0:y1, x0:x1, :3] = 255
    return frame


class SquareFinder:
    """Stand-in detector: reads the frame out of the ring (as the worker does) and reports the white square."""

    def __init__(self, ring_name: str):
        self.reader = RingReader(ring_name)
        self.runs = 0

    def load(self, group: str) -> None:
        pass

    def update_settings(self, settings: dict) -> None:
        pass

    def detect(self, ref: FrameRef, t: float, kinds, text_areas=None, face_scale=None):
        try:
            _, rgba = self.reader.read(ref.slot, ref.seq)
        except SlotOverwritten:
            return None  # as the worker answers: no run
        time.sleep(0.04)  # a detector run takes a while; frames keep arriving meanwhile
        ys, xs = np.nonzero(np.all(rgba[..., :3] == 255, axis=-1))
        self.runs += 1
        return [Region("face", (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)))]


def inside(inner, outer) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3]


def stream(frames: int, delay_s: float, scene_of=lambda i: 0, speech=None, on_frame=lambda i: None):
    """Frames through a real scheduler in real time; returns (decisions by frame id, scheduler, finder runs)."""
    writer = RingWriter(FORMAT_RGBA8, 6, slot_size_for_video(W, H))
    decisions: dict[int, object] = {}
    done = threading.Event()

    def publish(frame, decision):
        decisions[frame.frame_id] = decision
        if len(decisions) == frames:
            done.set()

    finder = SquareFinder(writer.name)
    sched = VideoScheduler(VisionEngine(FACES_ONLY), finder, delay_s, DetectionGate(), publish, name="test",
                           speech=speech)
    reader = RingReader(writer.name)
    try:
        start = time.monotonic()
        for i in range(frames):
            time.sleep(max(0.0, start + i / FPS - time.monotonic()))
            slot, seq = writer.write(scene_frame(scene_of(i)), i, i / FPS, time.monotonic())
            header, thumb = reader.thumbnail(slot, seq)
            sched.add_frame(i, i / FPS, header.submitted, thumb, size=(W, H), ref=FrameRef(writer.name, slot, seq))
            on_frame(i)
        assert done.wait(delay_s + 2.0)
    finally:
        sched.stop()
        reader.close()
        finder.reader.close()
        writer.close()
    return decisions, sched, finder.runs


def test_estimates_never_miss_the_new_scene():
    frames = 120
    decisions, sched, runs = stream(frames, 1.0, scene_of=lambda i: i * 2 // frames)
    vouched = {i: d for i, d in decisions.items() if not d.fail_closed}
    for i, d in vouched.items():
        square = SQUARE_A if i < frames // 2 else SQUARE_B
        assert any(inside(square, r.box) for r in d.regions), (i, d)
    # The test means something only if the new scene got decisions that are not fail-closed.
    assert sum(1 for i in vouched if i >= frames // 2) >= 10, sorted(vouched)
    assert sched.stats.estimate_misses == 0
    assert runs >= 10


def test_mouths_are_covered_while_the_stream_is_bleeped_and_while_its_audio_is_undecided():
    """The audio side stands in here (intervals fed by hand); tests/test_live_speech.py runs the recogniser."""
    links = SpeechLinks()
    track, link = links.open("desk", "mic"), links.follow("desk")

    def audio(i):  # the recogniser's watermark trails the stream by 0.45 s and stops at t = 1.5 s
        t = i / FPS
        track.heard(t)  # the audio itself keeps coming
        if t <= 1.5:
            # Like SpeechRedactor: an interval is issued when the watermark passes its start.
            track.add([[0.5, 0.8, "phone"]] if i == 29 else [], t - 0.45)  # frame 29: watermark 0.517 passes 0.5

    decisions, _, _ = stream(75, 0.8, speech=link, on_frame=audio)
    for i, d in decisions.items():
        if d.fail_closed:
            continue
        t, mouths = i / FPS, [r for r in d.regions if r.kind == "mouth"]
        if 0.5 <= t < 0.8:
            assert [m.label for m in mouths] == ["phone"], (i, d)
            assert inside(mouths[0].box, SQUARE_A) or mouths[0].box[1] >= SQUARE_A[1], mouths
        elif t < 0.35:
            assert mouths == [], (i, d)
        elif t >= 1.1:  # audio never decided past 1.05 s: every mouth covered at the deadline
            assert [m.label for m in mouths] == ["failclosed"], (i, d)
    assert sum(1 for i, d in decisions.items() if 0.5 <= i / FPS < 0.8 and not d.fail_closed) >= 5
