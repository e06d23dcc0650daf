"""`python -m inference_server redact` end to end on a generated clip, and its bad inputs."""

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from privastream_testkit.scenes import Clip, write_clip
from privastream_testkit.speech import speak

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


# ---- any audio track, and audio that starts late ------------------------------------------------

PHONE = "hello, call five five five, one two three, four five six seven"


def write_video(path, seconds, size=(320, 240), fps=30, picture=None, rotation=0, audio=None, audio_at=0.0,
                audio_codec="aac", audio_layout="mono", audio_format="fltp", sample_rate=48000):
    """A real file written with PyAV: ``picture(i)`` (default grey) for ``seconds`` and an optional
    (channels, n) float32 ``audio`` track whose first sample plays at ``audio_at`` seconds."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = *size, "yuv420p"
        if rotation:
            vs.set_display_rotation(rotation)
        aus = out.add_stream(audio_codec, rate=sample_rate, layout=audio_layout) if audio is not None else None
        if aus is not None:
            aus.format = audio_format
        for i in range(int(seconds * fps)):
            img = picture(i) if picture else np.full((size[1], size[0], 3), 128, np.uint8)
            for packet in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if aus is not None:
            samples = audio if audio_format == "fltp" else np.ascontiguousarray(audio.T).reshape(1, -1)
            if audio_format in ("s16", "s32"):
                bits = 16 if audio_format == "s16" else 32
                samples = (samples * (2 ** (bits - 1) - 1)).astype(f"int{bits}")
            af = av.AudioFrame.from_ndarray(samples, format=audio_format, layout=audio_layout)
            af.sample_rate, af.pts = sample_rate, round(audio_at * sample_rate)
            for packet in aus.encode(af):
                out.mux(packet)
            for packet in aus.encode():
                out.mux(packet)


def audio_on_clock(path, seconds, rate=48000):
    """The first channel of the audio track, placed by its timestamps on a zeroed ``seconds`` clock."""
    clock = np.zeros(int(seconds * rate), np.float32)
    with av.open(str(path)) as c:
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate)
        for frame in c.decode(audio=0):
            start = round(frame.time * rate)
            for f in resampler.resample(frame):
                x = f.to_ndarray()[0]
                a, b = max(start, 0), min(start + x.size, clock.size)
                if b > a:
                    clock[a:b] = x[a - start:b - start]
                start += x.size
    return clock


def mutes_of(report):
    return [json.loads(line)["mute"] for line in report.read_text().splitlines() if '"mute"' in line]


def lag_of(before, after, window):
    """Samples by which ``after`` lags ``before`` within ±10 ms, by cross-correlation over ``window``
    (MP4 edit lists place a late start to the millisecond, so a few samples either way are normal)."""
    a, b = window
    reach = 480
    scores = [np.dot(before[a:b], after[a + k:b + k]) for k in range(-reach, reach + 1)]
    return int(np.argmax(scores)) - reach


def assert_phone_bleeped(src, out, report, seconds):
    """The number is replaced in the output at the times it is said in the input; the greeting
    plays at its own time, untouched: so the output's audio is both redacted and in sync."""
    before, after = audio_on_clock(src, seconds), audio_on_clock(out, seconds)
    phone = next(m for m in mutes_of(report) if m["kind"] != "failclosed")
    a, b = int(phone["start"] * 48000), int(phone["end"] * 48000)
    g0 = int(np.flatnonzero(np.abs(before) > 0.02)[0])
    g1 = min(g0 + int(0.4 * 48000), a)
    lag = lag_of(before, after, (g0, g1))
    assert abs(lag) < 96, lag  # 2 ms
    after = np.roll(after, -lag)
    inside = np.corrcoef(before[a:b], after[a:b])[0, 1]
    greeting = np.corrcoef(before[g0:g1], after[g0:g1])[0, 1]
    assert inside < 0.3 and greeting > 0.9, (inside, greeting)


@pytest.mark.parametrize("codec, fmt, layout", [
    ("pcm_s16le", "s16", "mono"),
    ("pcm_s16le", "s16", "stereo"),
    ("pcm_s24le", "s32", "5.1"),
])
def test_a_pcm_track_in_mkv_is_redacted(tmp_path, codec, fmt, layout):
    """Screen recorders, cameras and editors export PCM in MKV/MOV; FFmpeg reads its channel layout
    as unspecified ("2 channels"), which the AAC encoder refused: every such file crashed."""
    speech = speak(PHONE, speed=190)
    channels = av.AudioLayout(layout).nb_channels
    src, out, report = tmp_path / "in.mkv", tmp_path / "out.mp4", tmp_path / "r.jsonl"
    seconds = speech.size / 48000 + 0.5
    write_video(src, seconds, audio=np.repeat(speech[None], channels, axis=0), audio_codec=codec,
                audio_format=fmt, audio_layout=layout)
    proc = redact(src, "-o", out, "--report", report, "--targets", "faces")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_phone_bleeped(src, out, report, seconds)


def test_a_track_whose_format_changes_midway_is_redacted(tmp_path):
    """Two recordings joined (here MPEG-TS files, one after the other): mono 44.1 kHz, then stereo
    48 kHz in the same track.  Both halves come through, each at its own time."""
    parts = []
    for i, (hz, rate, channels) in enumerate(((440, 44100, 1), (660, 48000, 2))):
        part = tmp_path / f"part{i}.ts"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=30:duration=1",
                        "-f", "lavfi", "-i", f"sine=frequency={hz}:duration=1:sample_rate={rate}",
                        "-c:v", "libx264", "-c:a", "aac", "-ac", str(channels), "-output_ts_offset", str(i),
                        "-f", "mpegts", str(part)], check=True)
        parts.append(part.read_bytes())
    src, out = tmp_path / "joined.ts", tmp_path / "out.mp4"
    src.write_bytes(b"".join(parts))
    proc = redact(src, "-o", out, "--targets", "faces", timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    with av.open(str(out)) as c:
        first = c.streams.audio[0].start_time * c.streams.audio[0].time_base
    heard = audio_on_clock(out, 3.0)
    for hz, (a, b) in ((440, (0.2, 0.8)), (660, (1.2, 1.8))):
        i, j = int((float(first) + a) * 48000), int((float(first) + b) * 48000)
        spectrum = np.abs(np.fft.rfft(heard[i:j]))
        assert abs(np.argmax(spectrum) * 48000 / (j - i) - hz) < 5, (hz, np.argmax(spectrum) * 48000 / (j - i))


def test_a_track_that_cannot_be_decoded_is_refused_not_copied(tmp_path):
    """An audio codec this FFmpeg has no decoder for cannot be checked for speech, so it must not
    reach the output as it is, with or without --no-speech: a clear error and no file."""
    src = tmp_path / "in.mkv"
    write_video(src, 1.0, audio=np.zeros((1, 48000), np.float32))
    data = src.read_bytes()
    assert data.count(b"A_AAC") == 1
    src.write_bytes(data.replace(b"A_AAC", b"A_XYZ"))  # a codec id FFmpeg knows no decoder for
    for extra in ((), ("--no-speech",)):
        out = tmp_path / "out.mp4"
        proc = redact(src, "-o", out, "--targets", "faces", *extra, timeout=120)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert "cannot be decoded" in proc.stderr.strip().splitlines()[-1]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv"]


def test_audio_that_starts_after_the_picture_stays_in_sync(tmp_path):
    """A recording whose audio starts 1.5 s into the picture: the output's audio starts there too,
    and the bleep falls on the number where it is said, not 1.5 s earlier."""
    speech = speak(PHONE, speed=190)
    seconds = 1.5 + speech.size / 48000 + 0.5
    src, out, report = tmp_path / "in.mp4", tmp_path / "out.mp4", tmp_path / "r.jsonl"
    write_video(src, seconds, audio=speech[None], audio_at=1.5)
    proc = redact(src, "-o", out, "--report", report, "--targets", "faces")
    assert proc.returncode == 0, proc.stderr[-2000:]
    after = audio_on_clock(out, seconds)
    assert np.abs(after[: int(1.45 * 48000)]).max() < 0.01  # nothing plays before the audio starts
    assert_phone_bleeped(src, out, report, seconds)


def test_audio_that_starts_before_the_picture_keeps_its_place(tmp_path):
    """The picture starts 1 s into the recording, on a white frame, as a click sounds: in the
    output the white frame still shows when the click sounds."""
    src, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    click = np.zeros((1, 96000), np.float32)
    click[0, 48000:48010] = 0.9
    with av.open(str(src), "w") as o:
        vs = o.add_stream("libx264", rate=30)
        vs.width, vs.height, vs.pix_fmt = 160, 120, "yuv420p"
        aus = o.add_stream("aac", rate=48000, layout="mono")
        for i in range(30):
            vf = av.VideoFrame.from_ndarray(np.full((120, 160, 3), 255 if i == 0 else 0, np.uint8), format="rgb24")
            vf.pts = 30 + i
            for packet in vs.encode(vf):
                o.mux(packet)
        for packet in vs.encode():
            o.mux(packet)
        af = av.AudioFrame.from_ndarray(click, format="fltp", layout="mono")
        af.sample_rate, af.pts = 48000, 0
        for packet in [*aus.encode(af), *aus.encode()]:
            o.mux(packet)
    proc = redact(src, "-o", out, "--no-speech", "--targets", "faces", timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with av.open(str(out)) as c:
        white = next(f.time for f in c.decode(video=0) if f.to_ndarray(format="rgb24").mean() > 200)
    heard = np.flatnonzero(np.abs(audio_on_clock(out, 2.0)) > 0.3)[0] / 48000
    assert abs(heard - white) < 0.02, (heard, white)


# ---- rotation -------------------------------------------------------------------------------------

@pytest.mark.parametrize("rotation", [90, -90])
def test_a_phone_video_stored_sideways_is_redacted_upright(tmp_path, rotation):
    """Phones store portrait video sideways with a rotation in the display matrix.  Until the
    matrix is applied the faces lie on their side, and the face detector misses some of these
    (measured: the 50 px and 70 px faces below) in every frame, so nothing covers them."""
    from privastream_testkit.scenes import faces, paste_face

    w, h = 360, 640  # upright portrait
    people = [(1, (90, 140), 70), (4, (270, 140), 50), (5, (90, 420), 50), (3, (270, 420), 30)]
    truths = []

    def upright(i):
        frame = np.full((h, w, 3), 60, np.uint8)
        truths.append([paste_face(frame, faces()[k], (x, y + 2 * i), size) for k, (x, y), size in people])
        return frame

    frames = [upright(i) for i in range(10)]
    # Stored turned the other way, so that turning it by ``rotation`` shows it upright.
    stored = [np.ascontiguousarray(np.rot90(f, -rotation // 90)) for f in frames]
    src, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    write_video(src, 10 / 30, size=(h, w), picture=lambda i: stored[i], rotation=rotation)
    proc = redact(src, "-o", out, "--targets", "faces", "--face-every", "1", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    after, _, _ = decode(out)
    if after[0].shape != (h, w, 3):  # written as stored: compare it turned upright
        after = [np.rot90(b, rotation // 90) for b in after]
    changed = []
    for a, b, people_seen in zip(frames, after, truths):
        for truth in people_seen:
            x0, y0, x1, y1 = (int(v) for v in truth.box)
            changed.append(np.abs(a[y0:y1, x0:x1].astype(int) - b[y0:y1, x0:x1].astype(int)).mean())
    assert min(changed) > 15, sorted(changed)[:5]
    assert decode(out)[0][0].shape == (h, w, 3)  # written upright: players show it as the phone did


# ---- unsafe arguments -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_clip(tmp_path_factory):
    src = tmp_path_factory.mktemp("small") / "in.mp4"
    write_video(src, 1.0, audio=np.zeros((1, 48000), np.float32))
    return src


@pytest.mark.parametrize("case", ["-o IN", "-o link to IN", "--report IN", "--report OUT"])
def test_an_output_that_would_replace_the_input_is_refused(tmp_path, small_clip, case):
    src = tmp_path / "in.mp4"
    src.write_bytes(small_clip.read_bytes())
    original = src.read_bytes()
    link = tmp_path / "link.mp4"
    link.symlink_to(src)
    out = tmp_path / "out.mp4"
    args = {"-o IN": ("-o", src), "-o link to IN": ("-o", link), "--report IN": ("-o", out, "--report", src),
            "--report OUT": ("-o", out, "--report", out)}[case]
    proc = redact(src, *args, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "same file" in proc.stderr or "is the input file" in proc.stderr, proc.stderr[-500:]
    assert src.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "link.mp4"]


@pytest.mark.parametrize("targets", ["", ",", " , "])
def test_empty_targets_are_refused(tmp_path, small_clip, targets):
    out = tmp_path / "out.mp4"
    proc = redact(small_clip, "-o", out, "--targets", targets, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "--targets is empty" in proc.stderr
    assert not out.exists()


def test_a_failed_run_leaves_no_report(tmp_path):
    """A file that breaks halfway through: the run fails, and neither the output nor a report
    of half a redaction stays behind."""
    src, out, report = tmp_path / "in.mp4", tmp_path / "out.mp4", tmp_path / "r.jsonl"
    noise = np.random.default_rng(0).integers(0, 256, (30, 240, 320, 3), dtype=np.uint8)
    write_video(src, 1.0, picture=lambda i: noise[i])
    data = bytearray(src.read_bytes())
    a, b = int(len(data) * 0.4), int(len(data) * 0.7)  # the middle of the video's samples
    data[a:b] = np.random.default_rng(1).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    src.write_bytes(data)
    proc = redact(src, "-o", out, "--report", report, "--targets", "faces", timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "corrupt" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def peak_rss_mb(*args, timeout=600):
    """Peak resident memory of one redact run, in MiB (its own process tree, nothing else)."""
    code = ("import resource, subprocess, sys; "
            "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "sys.stderr.write(p.stderr); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(p.returncode)")
    proc = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "inference_server", "redact",
                           *map(str, args), "--no-progress"], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return int(proc.stdout.split()[-1]) / 1024


def test_the_audio_track_is_streamed_not_held_in_memory(tmp_path):
    """Memory must not grow with the length of the audio: a two-hour recording held whole (and
    bleeped whole) needs gigabytes.  Five minutes of stereo against twenty seconds of it."""
    peaks = {}
    for seconds in (20, 300):
        src = tmp_path / f"in{seconds}.mkv"
        write_video(src, 0.5, size=(64, 64), audio=np.zeros((2, seconds * 48000), np.float32),
                    audio_layout="stereo")
        peaks[seconds] = peak_rss_mb(src, "-o", tmp_path / f"out{seconds}.mp4", "--targets", "faces")
    assert peaks[300] - peaks[20] < 40, peaks
