"""Deadline scheduling for the live sessions: video frames and audio packets decided before they play.

A video frame captured at t is shown D later.  Each video session has these threads:

- the server's loop thread checks every frame for a scene cut (``observe``, on a 640x360 grey
  copy that the engine also keeps for following faces and measuring change) as it arrives, so
  the coverage knows every cut before any detection or decision can concern a frame after it;
- the decision thread has the publisher (publisher.py) publish every pending frame the detections
  around it have settled
  (``decide(final=True)``) and, for frames whose deadline is about to pass, the estimate
  (``decide(final=False)``: faces followed from the newest run, unexplained change covered, or
  the whole frame when nothing recent enough vouches for it; vision.py);
- one detection thread per detector group (faces; text and plates, one OCR run) asks that
  group's worker process (detect_worker.py) to run on the newest frame, read straight from the
  client's shared memory, when the governor (governor.py) says it is due, and hands the regions
  to the coverage.  Only the newest frame is ever detected on, so a slow detector never builds a
  queue, and a run longer than D never delays a decision.

Runs of one group share one gate across sessions (a semaphore): two concurrent runs of the same
models only slow each other down.

The publisher owns the pending frames: whichever thread answers a frame first is the one answer
sent.  It audits the estimates: when a frame published as an estimate later settles, a settled
region that the estimate did not cover counts as ``estimate_misses`` (dashboard, stats.json).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import replace
from typing import Callable

import numpy as np

from .coverage import DEFAULT_POLICIES
from .errors import PrivaStreamError, StateError
from .governor import GROUP_KINDS, Governor, SpeechCosts, speech_model
from .publisher import PUBLISH_MARGIN_S, FramePublisher, PendingFrame
from .regions import FrameDecision, clip_box
from .session_stats import SessionStats
from .settings import MODEL_CHOICES, Settings, as_settings

log = logging.getLogger("privastream.scheduler")

DECISION_PERIOD_S = 0.005
"""The decision thread wakes at least this often to publish estimates before deadlines."""
SLOW_PASS_S = 0.1
"""A decision pass longer than this is logged: it eats into the publishing margin."""
RESETTLE_PERIOD_S = 0.05
"""Without a new run, pending frames are re-decided this often (mouth blur waits on the audio)."""
PRUNE_EVERY = 64
"""Frames published between two prunings of what the engine remembers."""
MAX_QUEUED_PACKETS = 512
"""Audio packets (~11 s of OBS's 1024-sample packets) queued with their samples for the recogniser."""
LIVE_POLICIES = {"face": replace(DEFAULT_POLICIES["face"], max_extrapolation=3.0, lead=0.35),
                 "text": replace(DEFAULT_POLICIES["text"], max_extrapolation=10.0),
                 "plate": replace(DEFAULT_POLICIES["plate"], max_extrapolation=10.0)}
"""A live estimate is vouched for by the newest run of each kind for this long: faces are followed
frame by frame from it and whatever changed since it that no track explains is covered
(vision.py, history.py), so its age costs cover, not privacy.  Beyond it the frame fails closed.
Text is given longer: a whole-frame OCR run of a 720p picture takes 1-6 s on two cores busy with
OBS and speech, and text stands still (history.KEEP_S keeps the frames this needs).
A new face is covered from 0.35 s before the last run that missed it (default 0.1 s): a face
sliding in from the edge is found only once ~30 px of it show."""
class DetectionGate:
    """One run per detector group at a time across sessions, and how many sessions share them."""

    def __init__(self):
        self.semaphores = {group: threading.Semaphore(1) for group in GROUP_KINDS}
        self.sessions = 0
        self._lock = threading.Lock()

    def join(self) -> None:
        with self._lock:
            self.sessions += 1

    def leave(self) -> None:
        with self._lock:
            self.sessions = max(0, self.sessions - 1)


class _SessionWorker:
    """A session's worker thread, the condition its producer notifies, and its figures."""

    def __init__(self, name: str):
        self.stats = SessionStats()
        self.error: str | None = None
        """Set when the engine failed: from then on everything is decided fail-closed at once."""
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=f"privastream-sched-{name}", daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout=5.0)


class VideoScheduler(_SessionWorker):
    """Publishes one decision per frame, before its deadline.

    The decision thread decides from ``engine`` (whose coverage the detections feed and
    ``add_frame`` tells of scene cuts) and never waits for a detector.  One detection thread
    per detector group runs it through ``detector`` (``load(group)``, ``update_settings(Settings)``,
    ``detect(ref, t, kinds, text_areas, face_scale) -> list[Region] | None``;
    detect_worker.WorkerDetector in the server) and hands the regions to ``engine``'s coverage under
    a short lock.  So an OCR run longer than D never delays a decision, nor a face run.
    """

    def __init__(self, engine, detector, delay_s: float, gate: DetectionGate,
                 publish: Callable[[PendingFrame, FrameDecision], None], name: str = "video", speech=None):
        super().__init__(name)
        self.speech = speech
        """The stream's speech_link.SpeechLink (mouth blur while speech is bleeped), or None."""
        self.engine = engine
        self.detector = detector
        self._engine_lock = threading.Lock()
        self._settings_generation = 0
        """Bumped by every settings change; each detection thread reloads its models when it sees a new one."""
        self._detector_threads = [threading.Thread(target=self._detect_loop, args=(group,), daemon=True,
                                                   name=f"privastream-{group}-{name}") for group in GROUP_KINDS]
        self.delay_s = delay_s
        self.gate = gate
        self.publisher = FramePublisher(publish, self.stats)
        self._pruned_at = 0
        """frames_out when the engine was last pruned."""
        self._settings_update: Settings | None = None
        self.governor = Governor()
        self._runs_added = 0
        """Detection runs handed to the coverage so far (the decision thread settles frames when it changes)."""
        gate.join()
        self._thread.start()
        for thread in self._detector_threads:
            thread.start()

    # ------------------------------------------------------------ called from the server's loop thread

    def add_frame(self, frame_id: int, t: float, submitted: float, thumb: np.ndarray | None,
                  size: tuple[int, int] = (0, 0), ref=None) -> None:
        """Check a frame for a scene cut and queue it.

        ``thumb``: every few pixels of the frame (RGB) and ``size`` its (width, height);
        thumb=None (lost in transport) or a failed engine decides it fail-closed at once.
        """
        frame = PendingFrame(frame_id, t, submitted, submitted + self.delay_s, ref)
        failed = self.error or (None if thumb is not None else "frame lost in transport")
        if failed:
            self.publisher.refuse(frame, failed, lost=thumb is None)
            return
        with self._engine_lock:
            cut = self.engine.observe(t, thumb, size=size)
        self.governor.frame(t, cut)
        self.publisher.add(frame)
        with self._cond:
            self._cond.notify()

    def update_settings(self, settings: Settings, delay_s: float | None = None) -> None:
        with self._cond:
            self._settings_update = settings
            if delay_s is not None and delay_s > 0:
                self.delay_s = delay_s
            self._cond.notify()

    def stop(self) -> None:
        super().stop()
        for thread in self._detector_threads:
            thread.join(timeout=5.0)
        self.gate.leave()

    # ------------------------------------------------------------ worker thread

    def _run(self) -> None:
        """Decision thread: settle, and publish estimates just before deadlines."""
        settled_at, settled_time = -1, 0.0
        try:
            while True:
                with self._cond:
                    if self._stopped:
                        break
                    self._cond.wait(timeout=DECISION_PERIOD_S)
                    settings, self._settings_update = self._settings_update, None
                if settings is not None:
                    with self._engine_lock:
                        self.engine.update_settings(settings)
                    self.detector.update_settings(settings)
                    self._settings_generation += 1
                started = time.monotonic()
                if self._runs_added != settled_at or started - settled_time >= RESETTLE_PERIOD_S:
                    # Only a new detection run can settle a frame (or, with mouth blur, audio decided
                    # later): re-deciding every pending frame every 5 ms took the GIL from the heartbeats.
                    settled_at, settled_time = self._runs_added, started
                    self._settle()
                settled = time.monotonic()
                self.publisher.fallback(settled + 2 * DECISION_PERIOD_S, self._estimate)
                self._prune()
                if time.monotonic() - started > SLOW_PASS_S:
                    log.warning("_run() | slow decision pass [settle_ms:%.0f estimate_ms:%.0f pending:%d]",
                                (settled - started) * 1000, (time.monotonic() - settled) * 1000, len(self.publisher))
        except Exception as exc:  # a broken engine must not leave frames undecided: fail every one closed
            self._crashed(exc)
        else:
            self.publisher.fail_all("session closed")

    def _crashed(self, exc: Exception) -> None:
        log.exception("_crashed() | scheduler failed; failing closed")
        self.error = f"inference failed ({exc.__class__.__name__}: {exc}); covering everything"
        self.publisher.fail_all(self.error)

    def _detect_loop(self, group: str) -> None:
        """Detection thread of one group: runs on the newest frame whenever the group is due."""
        loaded = -1
        try:
            while not self._stopped and self.error is None:
                if not self._enabled(group):
                    time.sleep(0.05)
                    continue
                if loaded != self._settings_generation:
                    loaded = self._settings_generation
                    self.detector.load(group)  # model loading must not count as a run's duration
                if not self._is_due(group):
                    time.sleep(DECISION_PERIOD_S)
                elif self.gate.semaphores[group].acquire(timeout=0.05):
                    try:
                        self._detect(group)
                    except StateError as exc:  # the worker died or hung; it restarts on the next run
                        log.error("_detect_loop() | detection run failed [group:%s]: %s", group, exc)
                        time.sleep(0.1)
                    finally:
                        self.gate.semaphores[group].release()
        except Exception as exc:
            self._crashed(exc)

    def _settle(self) -> None:
        """Publish every pending frame the detections have settled (they never change after)."""
        self.publisher.settle(self._is_settled, self._settled_answer)
        self.publisher.audit(self._final)

    def _is_settled(self, t: float) -> bool:
        with self._engine_lock:
            return self.engine.coverage.settled(t)

    def _final(self, t: float) -> FrameDecision | None:
        with self._engine_lock:
            return self.engine.decide(t, final=True)

    def _settled_answer(self, f: PendingFrame) -> FrameDecision | None:
        if self._awaits_audio(f.t):
            return None  # its mouths are not decided yet: deciding its regions now would be wasted
        decision = self._final(f.t)
        return None if decision is None else self._with_mouths(f.t, decision, final=False)

    def _estimate(self, f: PendingFrame) -> FrameDecision:
        """The best answer for a frame at its publication time (vision.py: followed faces, change covered)."""
        with self._engine_lock:
            decision = self.engine.decide(f.t, final=False)
        with_mouths = self._with_mouths(f.t, decision, final=True)  # final: undecided audio is covered
        return with_mouths if with_mouths is not None else FrameDecision(
            fail_closed=True, reason="speech not decided at the deadline")

    def _prune(self) -> None:
        if self.stats.frames_out - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = self.stats.frames_out
            with self._engine_lock:
                self.engine.prune(self.publisher.emitted_t - 10.0)  # coverage keeps its own context before that

    def _mouth_blur(self) -> bool:
        return self.speech is not None and self.engine.settings.mouth_blur

    def _awaits_audio(self, t: float) -> bool:
        """True while the frame at t waits for the stream's audio to be decided (mouth blur)."""
        return self._mouth_blur() and self.speech.waiting(t)

    def _with_mouths(self, t: float, decision: FrameDecision, final: bool) -> FrameDecision | None:
        """The decision plus mouth regions while the stream's speech is bleeped (None: audio not decided yet)."""
        if decision.fail_closed or not self._mouth_blur():
            return decision
        mouths = self.speech.mouths(t, decision.regions, final)
        if not mouths:
            return None if mouths is None else decision
        w, h = self.engine.frame_size or (0, 0)
        if w and h:
            mouths = [r.with_box(clip_box(r.box, w, h)) for r in mouths]
        return FrameDecision(regions=decision.regions + mouths)

    # ------------------------------------------------------------ cadence

    def _enabled(self, group: str) -> bool:
        return any(k in self.engine.kinds for k in GROUP_KINDS[group])

    def _is_due(self, group: str) -> bool:
        newest = self.publisher.newest()
        if newest is None:
            return False
        groups = tuple(g for g in GROUP_KINDS if self._enabled(g))
        interval = self.stats.interval_s[group] = self.governor.interval(group, self.gate.sessions, groups)
        return self.governor.due(group, newest.t, interval)

    def _detect(self, group: str) -> None:
        newest = self.publisher.newest()
        if newest is None:
            return
        start = time.monotonic()
        with self._engine_lock:
            areas = self.engine.text_areas(GROUP_KINDS[group], newest.t)
            size = self.engine.frame_size
        scale = (self.governor.face_scale(size, self.delay_s - PUBLISH_MARGIN_S, self.gate.sessions)
                 if group == "faces" and size else None)
        regions = self.detector.detect(newest.ref, newest.t, GROUP_KINDS[group], areas, scale)
        if regions is None:
            return  # the ring wrapped before the worker read the slot: no run; a newer frame is next
        with self._engine_lock:
            covered = tuple(k for k in GROUP_KINDS[group] if k in self.engine.kinds)
            self.engine.add_run(newest.t, covered, regions)
            self._runs_added += 1
        with self._cond:
            self._cond.notify()  # frames this run settles are published at once
        self.governor.ran(group, newest.t, time.monotonic() - start)
        self.stats.runs.setdefault(group, collections.deque(maxlen=256)).append(time.monotonic())
        self.stats.run_ms[group] = round(self.governor.duration[group] * 1000, 1)


def preload_speech() -> None:
    """Load Whisper and the PII classifier's spaCy model now (seconds on a busy machine; both are
    cached per process, so every audio session then starts decided).  When they cannot load, audio
    sessions mute everything and say why."""
    try:
        from .pii.ner import load_spacy
        from .speech.asr import AsrOptions, load_whisper

        options = AsrOptions()  # what a session's redactor asks for: load_whisper caches by these
        load_whisper(options.model, options.device, options.threads)
        load_spacy()
    except (ImportError, PrivaStreamError) as exc:
        log.warning("preload_speech() | speech redaction unavailable: %s", exc)


SPEECH_COSTS = SpeechCosts()


def _speech_redactor(settings: Settings, delay_s: float):
    """The speech package's live redactor, with the richest model this machine decodes in time, or None
    when it is not installed (then speech fails closed)."""
    try:
        from .speech.redactor import SpeechRedactor, decode_budget_s
    except ImportError:
        return None
    latency_s = max(0.3, delay_s - 0.2)  # leaves room for the trip back before the audio plays at +D
    model = speech_model(MODEL_CHOICES, SPEECH_COSTS.snapshot(), decode_budget_s(latency_s))
    log.info("_speech_redactor() | [model:%s, latency_s:%.2f]", model, latency_s)
    return SpeechRedactor(latency_s=latency_s, custom_terms=settings.custom_terms, model=model, background=True)


class AudioScheduler(_SessionWorker):
    """Runs speech redaction continuously for one audio session and publishes mute intervals.

    With speech redaction off nothing is muted and audio is decided as soon as it arrives.
    With it on but unavailable (or failing), every packet is muted ("failclosed").  The decided
    mark it publishes is on the audio's own clock, which may go back (a source restarting): it
    is the newest packet's, never a maximum over packets.
    """

    def __init__(self, settings: Settings | dict, publish: Callable[[list, float], None], delay_s: float = 1.0,
                 name: str = "audio"):
        super().__init__(name)
        self.publish = publish
        self.delay_s = delay_s
        self._settings = as_settings(settings)
        self._settings_changed = False
        self._redactor = None
        self._packets: collections.deque = collections.deque()
        self._last_end: float | None = None
        """End of the newest packet handed to the recogniser (or muted)."""
        self._published = float("-inf")
        """The decided mark last published: what the client holds as decided."""
        self._thread.start()

    @property
    def speech_enabled(self) -> bool:
        return self._settings.targets.speech

    def add_packet(self, pts: float, planar: np.ndarray | None, sample_rate: int, n_samples: int) -> None:
        """Queue a packet.  Beyond MAX_QUEUED_PACKETS (the recogniser loading or far behind) the oldest
        queued packet loses its samples and is muted: a packet is never dropped unseen, since its
        span would then count as decided once the watermark passes it."""
        with self._cond:
            self.stats.frames_in += 1
            self._packets.append((pts, planar, sample_rate, n_samples))
            if planar is None:
                self.stats.dropped += 1
            elif len(self._packets) > MAX_QUEUED_PACKETS:
                i = len(self._packets) - MAX_QUEUED_PACKETS - 1
                old_pts, old_planar, rate, n = self._packets[i]
                if old_planar is not None:
                    self._packets[i] = (old_pts, None, rate, n)
                    self.stats.dropped += 1
            self._cond.notify()

    def update_settings(self, settings: Settings | dict) -> None:
        """New settings, whole; the recogniser is rebuilt with them on the worker thread (``_retire``), not here
        on the server's loop, which must not wait for a decode to finish."""
        with self._cond:
            self._settings = as_settings(settings)
            self._settings_changed = True
            self._cond.notify()

    def _run(self) -> None:
        if self.speech_enabled:
            self._load()  # before the first packet: loading Whisper takes seconds
        else:  # in the background: not in a video session's decision thread (mouth blur), not before packets
            threading.Thread(target=preload_speech, name="privastream-load-speech", daemon=True).start()
        while True:
            with self._cond:
                while not self._packets and not self._settings_changed and not self._stopped:
                    self._cond.wait(timeout=0.05)
                if self._stopped:
                    if self._redactor is not None:
                        self._redactor.close()
                    return
                batch = list(self._packets)
                self._packets.clear()
                retire, self._settings_changed = self._settings_changed, False
            mutes, decided = self._retire() if retire else ([], None)
            for pts, planar, rate, n in batch:
                end = pts + n / rate
                self.stats.frames_out += 1
                if planar is None or (self.speech_enabled and not self._push(pts, planar, rate)):
                    # With it, the gap since the packet before: one the server refused on the way.
                    gap = self._last_end is not None and self._last_end < pts
                    mutes.append([self._last_end if gap else pts, end, "failclosed"])
                    self.stats.fail_closed += 1
                self._last_end = decided = end
            if self.speech_enabled and self._redactor is not None and self.error is None:
                intervals, decided = self._redactor.poll()
                mutes.extend([m.start, m.end, m.kind] for m in intervals)
                slowest = self._redactor.slowest_decode_s
                if slowest is not None:
                    SPEECH_COSTS.record(self._redactor.options.asr.model, slowest)
            if decided is None:  # nothing decided yet: claim no more than the mutes themselves
                if not mutes:
                    continue
                decided = min(m[0] for m in mutes)
            self._published = decided
            self.publish(mutes, decided)

    def _retire(self) -> tuple[list[list], float | None]:
        """Close the recogniser built for the old settings.  The next one starts at the next packet, so
        what the old one heard and had not decided yet is muted here: nothing else would decide it."""
        old, self._redactor = self._redactor, None
        if old is None:
            return [], None
        try:
            intervals, decided = old.abandon("settings changed")
            return [[m.start, m.end, m.kind] for m in intervals], decided
        except Exception as exc:
            self._failed(exc)
            undecided = [[self._published, self._last_end, "failclosed"]] if self._last_end is not None else []
            return undecided, self._last_end

    def _load(self) -> None:
        """Build the speech redactor if there is none (sets ``error`` when it cannot be)."""
        try:
            if self._redactor is None and self.error is None:
                self._redactor = _speech_redactor(self._settings, self.delay_s)
                if self._redactor is None:
                    self.error = "speech redaction is not installed; muting all audio"
        except Exception as exc:  # a recogniser that cannot load must mute, not pass speech through
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        log.exception("_failed() | speech redaction failed; muting")
        self.error = f"speech redaction failed ({exc.__class__.__name__}); muting all audio"
        self._redactor = None

    def _push(self, pts: float, planar: np.ndarray, rate: int) -> bool:
        """Hand a packet to the speech redactor; False when speech redaction is unavailable."""
        self._load()
        if self._redactor is None:
            return False
        try:
            self._redactor.push(pts, planar, rate)
            return True
        except Exception as exc:  # a broken recogniser must mute, not pass speech through
            self._failed(exc)
            return False
