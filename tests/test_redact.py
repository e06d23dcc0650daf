"""`python -m inference_server redact` end to end on a generated clip, and its bad inputs."""

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from scripts.synthclip import Clip, speak, write_clip

ROOT = Path(__file__).resolve().parent.parent
CLIP = Clip()
# Three seconds straddling the scene cut at frame 90: faces before, faces, text and plates after.
FRAMES = range(75, 165)


def redact(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "inference_server", "redact", *map(str, args), "--no-progress"],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def decode(path):
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        rate = c.streams.video[0].average_rate
        has_audio = bool(c.streams.audio)
    return frames, rate, has_audio


@pytest.fixture(scope="module")
def redacted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("redact")
    src = tmp / "in.mp4"
    speech = speak("hello, call five five five, one two three, four five six seven", speed=190)
    truths = write_clip(src, CLIP, FRAMES, audio=speech)
    out, report = tmp / "out.mp4", tmp / "report.jsonl"
    proc = redact(src, "-o", out, "--report", report, "--face-every", "3", "--text-every", "10")
    assert proc.returncode == 0, proc.stderr
    return src, out, report, truths


def test_same_frames_rate_and_audio(redacted):
    src, out, _, _ = redacted
    a, rate_a, _ = decode(src)
    b, rate_b, audio_b = decode(out)
    assert len(a) == len(b) == len(FRAMES)
    assert rate_a == rate_b
    assert audio_b


def test_faces_and_pii_are_altered_and_the_rest_is_not(redacted):
    src, out, _, truths = redacted
    before, _, _ = decode(src)
    after, _, _ = decode(out)
    sensitive_changed, background_changed = [], []
    for a, b, truth in zip(before, after, truths):
        diff = np.abs(a.astype(int) - b.astype(int)).mean(axis=2)
        mask = np.zeros(diff.shape, bool)
        for tr in truth:
            x0, y0, x1, y1 = (int(v) for v in tr.box)
            if tr.sensitive:
                # A face's cover is an ellipse through the corners of its padded box: reaches ~3/4 of its size out.
                m = int(0.75 * max(x1 - x0, y1 - y0)) if tr.kind == "face" else 12
                mask[max(0, y0 - m):y1 + m, max(0, x0 - m):x1 + m] = True
                if tr.kind in ("text", "plate") or x1 - x0 >= 40:
                    sensitive_changed.append((diff[y0:y1, x0:x1].mean(), tr.label))
        background_changed.append((diff[~mask] > 40).mean())
    # Covered regions change a lot; everything else only by encoding noise (never 40 levels).
    assert min(sensitive_changed)[0] > 15, sorted(sensitive_changed)[:5]
    assert max(background_changed) < 0.01, max(background_changed)


def test_report_records_regions_but_never_text(redacted):
    _, _, report, _ = redacted
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    mutes = [r["mute"] for r in lines if "mute" in r]
    lines = [r for r in lines if "frame" in r]
    assert [r["frame"] for r in lines] == list(range(len(FRAMES)))
    assert any(m["kind"] != "failclosed" for m in mutes), mutes
    kinds = {reg["kind"] for r in lines for reg in r["regions"]}
    origins = {reg["origin"] for r in lines for reg in r["regions"]}
    assert {"face", "text", "plate"} <= kinds
    assert {"detected", "interpolated"} <= origins
    raw = report.read_text()
    for secret in ("jane.doe", "example.com", "4111", "555", "Elm", "AB12"):
        assert secret not in raw


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    (b"", "cannot read"),
    (b"this is not a video at all" * 100, "cannot read"),
])
def test_bad_input_gives_a_clear_error_and_no_output(tmp_path, content, message):
    src = tmp_path / "bad.mp4"
    if content is not None:
        src.write_bytes(content)
    out = tmp_path / "out.mp4"
    proc = redact(src, "-o", out, timeout=120)
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == ([src] if content is not None else [])


def test_truncated_input_fails_without_leaving_a_file(tmp_path, redacted):
    src, _, _, _ = redacted
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    out = tmp_path / "out.mp4"
    proc = redact(cut, "-o", out, timeout=300)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["cut.mp4"]


def test_spoken_phone_number_is_bleeped_and_mouths_covered(redacted):
    src, out, report, _ = redacted
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    mutes = [r["mute"] for r in lines if "mute" in r]
    with av.open(str(src)) as c:
        before = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
    with av.open(str(out)) as c:
        after = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
    n = min(len(before), len(after))
    phone = next(m for m in mutes if m["kind"] != "failclosed")  # the digits: phone or account number
    a, b = int(phone["start"] * 48000), int(phone["end"] * 48000)
    # Inside the interval the speech is replaced; the greeting before it is intact.
    inside = np.corrcoef(before[a:b], after[a:b])[0, 1]
    greeting = np.corrcoef(before[:int(0.4 * 48000)], after[:int(0.4 * 48000)])[0, 1]
    assert inside < 0.3 and greeting > 0.9, (inside, greeting)
    assert n > 0
    mouths = [reg for r in lines if "frame" in r for reg in r["regions"] if reg["kind"] == "mouth"]
    assert mouths and all(m["label"] == phone["kind"] for m in mouths if m.get("label"))
