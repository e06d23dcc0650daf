"""Deadline scheduling for the live sessions: video frames and audio packets decided before they play.

A video frame captured at t is shown D later.  Each video session has these threads:

- the server's loop thread checks every frame for a scene cut (``observe``, on a 640x360 grey
  copy that the engine also keeps for following faces and measuring change) as it arrives, so
  the coverage knows every cut before any detection or decision can concern a frame after it;
- the decision thread publishes every pending frame the detections around it have settled
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

Published estimates are audited: when a frame published as an estimate later settles, a settled
region that the estimate did not cover counts as ``estimate_misses`` (dashboard, stats.json).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from .coverage import DEFAULT_POLICIES
from .errors import PrivaStreamError, StateError
from .governor import GROUP_KINDS, Governor
from .regions import FrameDecision, Region, clip_box, overlap_share

log = logging.getLogger("privastream.scheduler")

PUBLISH_MARGIN_S = 0.15
"""Publish this long before a frame's deadline, for the trip back to the client and for a decision
thread that a busy machine wakes late (with OBS rendering 720p in software on two cores, 60 ms let
a fifth of the frames miss their deadline: scripts/bench_obs_load.py, "deadline missed").  An
estimate this early costs little: faces are followed and change is covered up to the frame itself."""
DECISION_PERIOD_S = 0.005
"""The decision thread wakes at least this often to publish estimates before deadlines."""
SLOW_PASS_S = 0.1
"""A decision pass longer than this is logged: it eats into the publishing margin."""
RESETTLE_PERIOD_S = 0.05
"""Without a new run, pending frames are re-decided this often (mouth blur waits on the audio)."""
AUDITED_KEPT = 512
"""Estimates kept until their frame settles, to count the regions they missed."""
MAX_QUEUED_PACKETS = 512
"""Audio packets (~11 s of OBS's 1024-sample packets) queued with their samples for the recogniser."""
LIVE_POLICIES = {"face": replace(DEFAULT_POLICIES["face"], max_extrapolation=3.0, lead=0.35),
                 "text": replace(DEFAULT_POLICIES["text"], max_extrapolation=6.0),
                 "plate": replace(DEFAULT_POLICIES["plate"], max_extrapolation=6.0)}
"""A live estimate is vouched for by the newest run of each kind for this long: faces are followed
frame by frame from it and whatever changed since it that no track explains is covered
(vision.py, history.py), so its age costs cover, not privacy.  Beyond it the frame fails closed.
A new face is covered from 0.35 s before the last run that missed it (default 0.1 s): a face
sliding in from the edge is found only once ~30 px of it show."""
LATENCY_BUCKETS_MS = (25, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000)


@dataclass(eq=False)  # identity: frames hold numpy arrays
class PendingFrame:
    frame_id: int
    t: float
    """pts, seconds on the client's stream clock."""
    submitted: float
    """Client's time.monotonic() at submit."""
    deadline: float
    ref: object = None
    """Where the detection worker reads the full frame (detect_worker.FrameRef); None if it was lost."""
    published: bool = False


@dataclass
class SessionStats:
    """Figures for the dashboard and the client's status; updated by the worker, read by the loop."""

    frames_in: int = 0
    frames_out: int = 0
    settled: int = 0
    tracked: int = 0
    fail_closed: int = 0
    fail_closed_reasons: collections.Counter = field(default_factory=collections.Counter)
    """Why frames were covered whole, by reason (the panel and the dashboard say it)."""
    estimate_misses: int = 0
    """Estimates that missed a region the settled answer for their frame covers."""
    deadline_misses: int = 0
    dropped: int = 0
    latency_hist: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))
    runs: dict[str, collections.deque] = field(default_factory=dict)
    run_ms: dict[str, float] = field(default_factory=dict)
    interval_s: dict[str, float] = field(default_factory=dict)

    def record_latency(self, seconds: float) -> None:
        ms = seconds * 1000
        i = next((i for i, b in enumerate(LATENCY_BUCKETS_MS) if ms <= b), len(LATENCY_BUCKETS_MS))
        self.latency_hist[i] += 1

    def cadence_hz(self, now: float, window: float = 5.0) -> dict[str, float]:
        return {g: round(sum(1 for t in runs if now - t <= window) / window, 2) for g, runs in self.runs.items()}

    def to_dict(self, now: float) -> dict:
        return {"frames_in": self.frames_in, "frames_out": self.frames_out, "settled": self.settled,
                "tracked": self.tracked, "fail_closed": self.fail_closed,
                "fail_closed_reasons": dict(self.fail_closed_reasons.most_common(8)), "estimate_misses": self.estimate_misses,
                "deadline_misses": self.deadline_misses,
                "dropped": self.dropped, "latency_hist": list(self.latency_hist),
                "latency_buckets_ms": list(LATENCY_BUCKETS_MS), "cadence_hz": self.cadence_hz(now),
                "run_ms": dict(self.run_ms), "interval_s": {g: round(v, 3) for g, v in self.interval_s.items()}}


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
    per detector group runs it through ``detector`` (``load(group)``, ``update_settings(dict)``,
    ``detect(ref, t, kinds) -> list[Region] | None``; detect_worker.WorkerDetector in the
    server) and hands the regions to ``engine``'s coverage under a short lock.  So an OCR run
    longer than D never delays a decision, nor a face run.
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
        self.publish = publish
        self._frames: collections.deque[PendingFrame] = collections.deque()
        self._estimates: collections.OrderedDict[float, list[Region]] = collections.OrderedDict()
        self._settings_update: dict | None = None
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
        if not failed:
            with self._engine_lock:
                cut = self.engine.observe(t, thumb, size=size)
            self.governor.frame(t, cut)
        with self._cond:
            self.stats.frames_in += 1
            if not failed:
                self._frames.append(frame)
                self._cond.notify()
        if failed:
            self.stats.dropped += thumb is None
            self._emit(frame, FrameDecision(fail_closed=True, reason=failed), settled=False)

    def update_settings(self, settings: dict, delay_s: float | None = None) -> None:
        with self._cond:
            self._settings_update = {**(self._settings_update or {}), **settings}
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
                if settings:
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
                self._fallback(settled + 2 * DECISION_PERIOD_S)
                if time.monotonic() - started > SLOW_PASS_S:
                    log.warning("_run() | slow decision pass [settle_ms:%.0f estimate_ms:%.0f pending:%d]",
                                (settled - started) * 1000, (time.monotonic() - settled) * 1000, len(self._frames))
        except Exception as exc:  # a broken engine must not leave frames undecided: fail every one closed
            self._crashed(exc)
        else:
            self._fail_all("session closed")

    def _crashed(self, exc: Exception) -> None:
        log.exception("_crashed() | scheduler failed; failing closed")
        self.error = f"inference failed ({exc.__class__.__name__}: {exc}); covering everything"
        self._fail_all(self.error)

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

    def _fail_all(self, reason: str) -> None:
        with self._cond:
            frames = list(self._frames)
            self._frames.clear()
        for f in frames:
            self._emit(f, FrameDecision(fail_closed=True, reason=reason), settled=False)

    def _settle(self) -> None:
        """Publish every pending frame the detections have settled (they never change after)."""
        with self._cond:
            frames = list(self._frames)
        for f in frames:
            with self._engine_lock:
                if not self.engine.coverage.settled(f.t):
                    break  # frames come in time order: the later ones are not settled either
            if self._awaits_audio(f.t):
                continue  # its mouths are not decided yet: deciding its regions now would be wasted
            with self._engine_lock:
                decision = self.engine.decide(f.t, final=True)
            if decision is not None:
                decision = self._with_mouths(f.t, decision, final=False)
            if decision is not None:
                self._emit(f, decision, settled=True)
        self._audit_estimates()

    def _audit_estimates(self) -> None:
        """Count estimates that missed a region their frame's settled answer covers."""
        for t in list(self._estimates):
            with self._engine_lock:
                settled = self.engine.decide(t, final=True)
            if settled is None:
                break  # later frames settle later
            estimate = self._estimates.pop(t)
            # Margins differ between an estimated and a settled box of the same object, so "missed"
            # means that less than half of it lay under any one estimated region.
            missed = [] if settled.fail_closed else [
                r for r in settled.regions if r.kind != "change"
                and max((overlap_share(r.box, e.box) for e in estimate), default=0.0) < 0.5]
            if missed:
                self.stats.estimate_misses += 1
                log.warning("_audit_estimates() | an estimate missed regions [t:%.3f kinds:%s origins:%s]", t,
                            ",".join(r.kind for r in missed), ",".join(r.origin for r in missed))

    def _fallback(self, horizon: float) -> None:
        """Frames whose deadline comes before ``horizon`` get the best estimate now."""
        with self._cond:
            frames = [f for f in self._frames if f.deadline - PUBLISH_MARGIN_S <= horizon]
        for f in frames:
            with self._engine_lock:
                decision = self.engine.decide(f.t, final=False)
            decision = self._with_mouths(f.t, decision, final=True)
            if self._emit(f, decision, settled=False) and not decision.fail_closed:
                self._estimates[f.t] = decision.regions
                while len(self._estimates) > AUDITED_KEPT:
                    self._estimates.popitem(last=False)

    def _mouth_blur(self) -> bool:
        return self.speech is not None and self.engine.settings.get("mouth_blur", True)

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

    def _emit(self, f: PendingFrame, decision: FrameDecision, settled: bool) -> bool:
        """Publish f's decision once; True when this published regions (not fail-closed, not a repeat)."""
        with self._cond:
            if f.published:
                return False
            f.published = True
            if f in self._frames:
                self._frames.remove(f)
        now = time.monotonic()
        if now >= f.deadline and not decision.fail_closed:
            decision = FrameDecision(fail_closed=True, reason="deadline missed")
        st = self.stats
        st.frames_out += 1
        if now >= f.deadline:
            st.deadline_misses += 1
        if decision.fail_closed:
            st.fail_closed += 1
            st.fail_closed_reasons[decision.reason] += 1
        elif settled:
            st.settled += 1
        else:
            st.tracked += 1
        st.record_latency(now - f.submitted)
        if f.frame_id % 64 == 0:
            with self._engine_lock:
                self.engine.prune(f.t - 10.0)  # coverage keeps its own context before that
        self.publish(f, decision)
        return not decision.fail_closed

    # ------------------------------------------------------------ cadence

    def _enabled(self, group: str) -> bool:
        return any(k in self.engine.kinds for k in GROUP_KINDS[group])

    def _newest(self) -> PendingFrame | None:
        with self._cond:
            return self._frames[-1] if self._frames else None

    def _is_due(self, group: str) -> bool:
        newest = self._newest()
        if newest is None:
            return False
        groups = tuple(g for g in GROUP_KINDS if self._enabled(g))
        interval = self.stats.interval_s[group] = self.governor.interval(group, self.gate.sessions, groups)
        return self.governor.due(group, newest.t, interval)

    def _detect(self, group: str) -> None:
        newest = self._newest()
        if newest is None:
            return
        start = time.monotonic()
        regions = self.detector.detect(newest.ref, newest.t, GROUP_KINDS[group])
        if regions is None:
            return  # the ring wrapped before the worker read the slot: no run; a newer frame is next
        with self._engine_lock:
            covered = tuple(k for k in GROUP_KINDS[group] if k in self.engine.kinds)
            self.engine.coverage.add_run(newest.t, covered, regions)
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


def _speech_redactor(settings: dict, delay_s: float):
    """The speech package's live redactor, or None when it is not installed (then speech fails closed)."""
    try:
        from .speech import SpeechRedactor
    except ImportError:
        return None
    # Its latency must leave room for the trip back before the audio plays at +D.
    return SpeechRedactor(latency_s=max(0.3, delay_s - 0.2), custom_terms=tuple(settings.get("custom_terms", ())),
                          background=True)


class AudioScheduler(_SessionWorker):
    """Runs speech redaction continuously for one audio session and publishes mute intervals.

    With speech redaction off nothing is muted and audio is decided as soon as it arrives.
    With it on but unavailable (or failing), every packet is muted ("failclosed").  The decided
    mark it publishes is on the audio's own clock, which may go back (a source restarting): it
    is the newest packet's, never a maximum over packets.
    """

    def __init__(self, settings: dict, publish: Callable[[list, float], None], delay_s: float = 1.0,
                 name: str = "audio"):
        super().__init__(name)
        self.publish = publish
        self.delay_s = delay_s
        self._settings = dict(settings)
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
        return bool(self._settings.get("targets", {}).get("speech", True))

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

    def update_settings(self, settings: dict) -> None:
        """New settings; the recogniser is rebuilt with them on the worker thread (``_retire``), not here
        on the server's loop, which must not wait for a decode to finish."""
        with self._cond:
            self._settings.update(settings)
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
