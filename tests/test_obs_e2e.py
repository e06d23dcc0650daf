"""End to end: real OBS 29 under Xvfb at 1280x720, the real inference server, both filters at their
default settings (D = 2 s, every target on) on a media source playing a generated clip (real face
photos moving, rendered PII text, espeak-ng speech with a phone number), recorded.  Asserts on the
recording:
  - no face of 24 px or more keeps its detail in any frame that is not wholly covered, and no PII
    text does either (privastream_testkit/cover_judge.py: fine structure inside the true box, each quarter on
    its own, never a mean difference);
  - the spoken phone number is bleeped; the other sentence is never bleeped, and intact;
  - after the server is killed mid-recording, every frame is fully covered and the audio
    muted from the next deadline on;
  - OBS exits with status 0.
Each clip frame carries its index in a barcode strip (cover_judge.stamp), so recorded frames are
matched to the clip's ground truth whatever OBS did to the timing.
"""

from __future__ import annotations

import itertools
import shutil
import time
from typing import NamedTuple

import numpy as np
import pytest

from privastream_testkit.cover_judge import StampedClip, judge_boxes, judge_faces, wholly_covered
from privastream_testkit.media import RATE, iter_video_frames, read_audio
from privastream_testkit.obs import ObsSession, filter_entry, media_source
from privastream_testkit.scenes import write_clip
from privastream_testkit.server import ServerProcess, failclosed_runs
from privastream_testkit.speech import speech_track
from privastream_testkit.speech_judge import Speech, judge_speech

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (shutil.which("obs") and shutil.which("Xvfb")), reason="needs obs-studio and Xvfb")]

SIZE = (1280, 720)
SECONDS = 12  # the number is said whole, then a pause: no digit cut off into the next loop's "hello"
DELAY_S = 2.0
"""The filters' default D (the test leaves their settings at the defaults)."""
MIN_FACE_FRAMES = 200
# Before the kill, a clip length plus the longest window checked (3 s) plus slack: every window
# then lies whole at least once, wherever in the loop the recording starts.
WARM_UP_S, BEFORE_KILL_S, AFTER_KILL_S = 10.0, 16.0, 8.0
FAILCLOSED_RUN_S = (-1.0, 4.0)
"""Where a fail-closed run the server logged can show in the recording, around the time derived
from its log line (OBS starts writing after StartRecord returns; a run lasts until the decoder
catches up, one log line per run)."""


class Run(NamedTuple):
    out: object
    exit_code: int
    obs_log: str
    killed_at: float
    """Seconds into the recording."""
    server_log: str
    started_wall: float
    """time.time() when StartRecord returned."""


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    c = StampedClip(width=SIZE[0], height=SIZE[1], fps=30, seconds=SECONDS)
    audio = speech_track(SECONDS, RATE)
    path = tmp_path_factory.mktemp("e2e") / "clip.mkv"
    truths = write_clip(path, c, audio=audio)
    return path, c, truths, audio


@pytest.fixture(scope="module")
def recording(tmp_path_factory, clip):
    path, _, _, _ = clip
    home = tmp_path_factory.mktemp("obs_e2e")
    run_dir = home / "run"
    run_dir.mkdir(mode=0o700)
    server = ServerProcess(run_dir / "privastream" / "server.json").start(timeout=120)
    chain = [filter_entry("privastream_filter", "PrivaStream"),
             filter_entry("privastream_audio_filter", "PrivaStream Audio")]
    try:
        with ObsSession(home, [media_source("Clip", path, chain)], canvas=SIZE,
                        env={"XDG_RUNTIME_DIR": str(run_dir)}) as obs:
            time.sleep(WARM_UP_S)
            obs.call("StartRecord")
            t0, started_wall = time.monotonic(), time.time()
            time.sleep(BEFORE_KILL_S)
            server.kill9()
            killed_at = time.monotonic() - t0
            time.sleep(AFTER_KILL_S)
            out = obs.stop_recording()
            log = obs.log_text()
    finally:
        server_log = server.stop()
        (home / "server.log").write_text(server_log)  # for a failure's post-mortem (no words, no samples)
    return Run(out, obs.exit_code, log, killed_at, server_log, started_wall)


def test_obs_exits_cleanly(recording):
    assert recording.exit_code == 0
    assert "Traceback" not in recording.obs_log


def test_no_face_or_pii_text_keeps_its_detail_after_warm_up(recording, clip):
    """Every face of 24 px or more and every PII text box, in every recorded frame before the kill
    that is not wholly covered (the warm-up was before the recording started), keeps none of its
    fine detail."""
    _, c, truths, _ = clip
    before_kill = int(recording.killed_at * 30)
    faces = judge_faces(itertools.islice(iter_video_frames(recording.out, SIZE), before_kill), c, truths)
    assert not faces.leaks, f"{len(faces.leaks)} of {faces.face_frames} face-frames kept their detail: {faces.leaks[:10]}"
    assert faces.face_frames >= MIN_FACE_FRAMES, f"only {faces.face_frames} face-frames were shown to judge"
    text = judge_boxes(itertools.islice(iter_video_frames(recording.out, SIZE), before_kill), c, truths, kinds=("text",))
    assert not text.leaks, f"PII text kept its detail: {text.leaks[:10]}"


@pytest.fixture(scope="module")
def speech(recording, clip) -> Speech:
    # BEFORE_KILL_S makes sure the sentence and the number each lie whole at least once.
    return judge_speech(read_audio(recording.out)[: int(recording.killed_at * RATE)], clip[3])


def _failclosed_runs(recording) -> list[float]:
    """Recording time of each run of audio the server failed closed because decoding fell behind.
    A run starts at the watermark the server gave up on, L = D - 0.2 s after that audio arrived,
    and plays D after it arrived: 0.2 s after the log line."""
    return [wall + 0.2 - recording.started_wall for wall, _ in failclosed_runs(recording.server_log)]


def test_pii_speech_bleeped(speech):
    bleeped = speech.pii_ok
    assert bleeped and all(bleeped), f"the phone number was not bleeped every time ({bleeped})"


def test_other_speech_is_never_bleeped(speech):
    """The redactor's precision, whatever the load: no part of the sentence without PII is taken for
    PII.  (Where decoding fell behind it is silenced instead: test_other_speech_intact.)"""
    beeped = [[b.at_s for b in blocks if b.kind == "beep"] for blocks in speech.plain_blocks]
    assert beeped and not any(beeped), f"the sentence without PII was bleeped at {beeped} s of the recording"


@pytest.mark.xfail(strict=False, reason="at the default D = 2 s the decoder must decide within L = 1.8 s; on two "
                   "cores with OBS rendering 1280x720 in software some decodes still come late, and the plain "
                   "speech they had not decided is silenced (fails closed) for a moment: "
                   "scripts/bench_obs_load.py prints how often")
def test_other_speech_intact(recording, speech):
    """The sentence without PII comes through intact.  This is the figure that CPU starvation on two
    cores threatens (docs/obs.md), so a failure says which way it went: silence where the server
    logged that decoding fell behind and it failed closed, or damage no such run explains (OBS
    skipping audio: its audio_thread line)."""
    assert speech.plain_ok, "the sentence without PII never lay whole in the recording"
    if all(speech.plain_ok):
        return
    runs = _failclosed_runs(recording)
    damaged = [b for ok, blocks in zip(speech.plain_ok, speech.plain_blocks) if not ok
               for b in blocks if b.kind not in ("intact", "pause")]
    failclosed = [b for b in damaged if b.kind == "silence"
                  and any(r + FAILCLOSED_RUN_S[0] <= b.at_s <= r + FAILCLOSED_RUN_S[1] for r in runs)]
    other = [round(b.at_s, 1) for b in damaged if b not in failclosed]
    stalls = [line.strip() for line in recording.obs_log.splitlines() if "audio_thread(" in line]
    pytest.fail(f"the sentence without PII did not come through intact every time ({speech.plain_ok}): "
                f"{len(failclosed)} x 0.1 s silenced where the server failed closed (runs logged at "
                f"{[round(r, 1) for r in runs]} s of the recording), other damage at {other} s; OBS {stalls}")


def test_server_killed_covers_and_mutes_from_next_deadline(recording):
    out, killed_at = recording.out, recording.killed_at
    audio = read_audio(out)
    after = killed_at + DELAY_S + 0.5  # the next deadline, plus the time OBS takes to stop recording
    tail = list(itertools.islice(iter_video_frames(out, SIZE), int(after * 30), None))
    assert len(tail) > 30
    assert all(wholly_covered(f) for f in tail), "a frame leaked after the server died"
    assert np.abs(audio[int(after * RATE):]).max() < 1e-3, "audio leaked after the server died"
