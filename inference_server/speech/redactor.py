"""SpeechRedactor: streaming spoken-PII detection with a bounded decision latency.

Audio arrives in chunks stamped with the caller's clock.  It is resampled into
a 16 kHz mono ring; every ``step_s`` seconds the audio from ``lookback_s`` before the
watermark to the newest sample is decoded with word timestamps: only what is still
undecided, plus enough already decided audio to compare readings across the watermark.
Words behind the watermark are committed and stay as context for the PII rules, so "my
password is" said in one window still covers the next one.

Every sample is heard by several overlapping windows before it is due, so the
words being decided are read by the newest three hypotheses (LocalAgreement's
test, widened).  The newest reading is checked for PII: it has heard the
most right context.  An older reading is checked too when it agrees with
another one; one that agrees with none is set aside (Whisper tiny's digit
loops, "seven, one, one, one" over "hello everyone", are such readings).  The
newest is set aside only when Whisper could not place its words in the audio
(``hallucinated``: "11, 11, 11" with no duration) and two other readings agree.  The PII of
every reading checked is muted: an unstable transcript costs a longer bleep,
never a leak.  Context for later windows comes from the newest reading that
agrees with another.

The watermark ``decided_until`` trails the newest audio by ``hold`` seconds
(less than the latency bound L, leaving a step and the time a decode takes).
A word it cuts in two is no loss: an entity that starts before the watermark
is issued whole, past it if need be.  Each time it moves,
every entity that starts before the new watermark is issued as a mute interval
from its first word's start to its last word's end, padded (``pad_before_s``, ``pad_after_s``) and
merged with a neighbour closer than ``merge_gap_s``.  Entities found ahead of the watermark are
remembered until it reaches them: one that two readings found is issued even when the readings
at its deadline have lost it (Whisper drops "john" from "email me at john dot ..." as often as it
keeps it), from the earliest start any reading gave.  An issued interval is
final: it may reach past the watermark, it is never withdrawn or shortened.  (Issuing only up
to the watermark, and leaving the rest to readings that have heard more, leaks: later readings
split e-mail addresses differently, and `scripts/eval_audio.py` then finds PII words uncovered.)

Fail closed: a gap in the caller's timeline, a chunk with
NaN/inf samples, a recogniser error, a timeline reset, or (background mode) a
decode that is later than L, all turn the undecided span into a mute interval
of kind "failclosed".  Nothing undecided is ever reported as decided.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from difflib import SequenceMatcher
from typing import Sequence

import numpy as np

from ..errors import MediaError, StateError
from ..pii.classifier import phrase_words
from .asr import AsrOptions, Recognizer, Word, quietest
from .intervals import FAILCLOSED, MuteInterval, merge_intervals
from .render import render
from .resample import TARGET_RATE, StreamResampler, check_rate, sanitize
from .spoken_pii import SpokenPiiDetector

log = logging.getLogger("privastream.speech.redactor")

PTS_JITTER_S = 0.02
"""Timestamps this close to the expected one are the same instant (OBS rounds audio pts)."""
MAX_GAP_FILL_S = 10.0
"""A longer jump in the caller's clock (or one backwards) restarts the stream."""
GAP_STRETCH_S = 0.4
"""Most of a pause after an entity that is muted with it (see _entity_span).  A reading that drops
the last word of a number ("... six [seven] hello") leaves that word looking like a pause; 0.2 s
muted 0.4 % less plain speech in the evaluation but left such a word's tail live."""
CONTEXT_S = 20.0
"""Committed words kept as context for the PII rules."""
READINGS = 3
"""Hypotheses compared for agreement: the newest and the two before it."""
UNPLACED_S = 0.05
"""A word shorter than this was not placed in the audio by Whisper (see hallucinated)."""
UNSURE_P = 0.15
"""Nor was a word Whisper gave less than this probability."""
CONFIRMING_READINGS = 2
"""Readings that must have found an entity ahead of the watermark for it to be muted even when
the readings at its deadline lost it."""
AGREEMENT = 0.6
"""Two readings agree when this share of their words being decided match (difflib's ratio)."""
DECODE_TIMES = 8
"""Recent decode durations the live compute margin is taken from (their maximum)."""
MARGIN_SAFETY = 1.25
WAKE_JITTER_S = 0.2
"""Kept aside besides the decode itself: the worker wakes and gets the CPU late when the machine
is busy (OBS and x264 on the same two cores).  scripts/eval_live_speech.py with a core kept busy
failed 0-1.4 s of 84 s closed without it, 0.1-0.2 s with it (four decoder threads)."""
MIN_HOLD_S = 1.2
"""The right context the evaluation validates (L = 2 s offline: 2 - 0.5 step - 0.3 margin)."""
MIN_STEP_S = 0.2
"""Live decodes are at least this far apart, so a decoder that cannot meet L does not take a whole core
from OBS and the detectors trying (what it has not decided by L is muted)."""
AGREEMENT_ZONE_S = 1.0
"""Readings are compared on their words from this far before the watermark to the new one: a word
that straddles the watermark was read by the earlier decodes too."""
HEAD_S = 0.3
SNAP_S = 0.5
"""A window starts at the quietest moment of this much audio before its lookback: in a pause when there is one."""
"""Words starting this close to a window's head may be cut in two there; earlier windows heard them whole."""


@dataclass(frozen=True)
class SpeechOptions:
    latency_s: float = 2.0
    """L: every sample is decided at most this long after it was pushed."""
    step_s: float = 0.5
    """How often the window is decoded (compute grows as this shrinks)."""
    window_s: float = 9.0
    """The longest window decoded, when the watermark lags far behind the newest audio; must exceed
    L and fit the encoder input."""
    lookback_s: float = 3.0
    """Decided audio each decode hears again before the watermark: the readings are compared from
    1 s before it (AGREEMENT_ZONE_S), a word cut at the window's head is dropped (HEAD_S), and the
    rest lets Whisper hear the word before.  Decoding cost follows the window's length."""
    pad_before_s: float = 0.25
    """Added before an entity's first word: Whisper tends to start a word late, by up to ~0.2 s
    for the first digit after "is" on our espeak corpus."""
    pad_after_s: float = 0.05
    """Added after its last word.  Small: Whisper's word ends run late into the following pause
    (0.1-0.2 s on our corpus); 0.15 s muted 1.2 % more of the plain speech with no word better
    covered (scripts/eval_audio.py)."""
    merge_gap_s: float = 0.3
    """Intervals closer than this become one."""
    compute_margin_s: float = 0.3
    """Time kept aside in L for decoding itself; live (background) decoding keeps aside what the
    recent decodes really took, when that is more."""
    custom_terms: tuple[str, ...] = ()
    use_ner: bool = True
    asr: AsrOptions = field(default_factory=AsrOptions)

    @property
    def hold(self) -> float:
        """How far the watermark trails the newest audio: right context for the rules."""
        return max(0.0, self.latency_s - self.step_s - self.compute_margin_s)

    @property
    def least_hold(self) -> float:
        """The right context the live decoder never goes below (MIN_HOLD_S, or less when L is short)."""
        return min(MIN_HOLD_S, self.hold)

    def check(self) -> "SpeechOptions":
        if not 0.3 <= self.latency_s <= 8:
            raise StateError(f"latency_s must be 0.3..8 seconds (got {self.latency_s})")
        if not 0.1 <= self.step_s < self.latency_s:
            raise StateError(f"step_s must be at least 0.1 s and below latency_s={self.latency_s} (got {self.step_s})")
        if not AGREEMENT_ZONE_S + HEAD_S <= self.lookback_s < self.window_s:
            raise StateError(f"lookback_s must be {AGREEMENT_ZONE_S + HEAD_S}..window_s seconds (got {self.lookback_s})")
        if not self.latency_s < self.window_s <= self.asr.encoder_s:
            raise StateError(f"window_s ({self.window_s}) must exceed latency_s ({self.latency_s}) and fit "
                             f"the encoder's {self.asr.encoder_s} s")
        return self


def _key(w: Word) -> str:
    return w.text.strip(" .,?!").lower()


def _in(w: Word, zone: tuple[float, float]) -> bool:
    return w.end > zone[0] and w.start < zone[1]


def agreeing(keys: list[list[str]]) -> list[int]:
    """Indexes of the readings whose words (``keys``) are close to another reading's; all of them
    when no two are, so a lone reading is never trusted over the others without a second voice.
    Close: the same digits, and most words the same (a word at the zone's edge is in or out of it
    as its timestamps jitter; a digit is what a made-up reading adds)."""
    def digits(k: list[str]) -> str:
        return "".join(ch for word in k for ch in word if ch.isdigit())

    def close(a: list[str], b: list[str]) -> bool:
        return a == b or (digits(a) == digits(b) and SequenceMatcher(None, a, b, autojunk=False).ratio() >= AGREEMENT)
    agree = [i for i, k in enumerate(keys) if any(close(k, other) for j, other in enumerate(keys) if j != i)]
    return agree or list(range(len(keys)))


def hallucinated(words: list[Word]) -> bool:
    """Whisper tiny's loops ("11, 11, 11, ...", "1, 1, 2, 3, 4" over plain speech) are words it
    cannot place in the audio: no duration, or a token it barely believed.  Real speech, even
    fast, gives each word a tenth of a second or more.  (Whisper's own hallucination check in
    openai-whisper and faster-whisper looks at the same two signs.)"""
    unplaced = sum(1 for w in words if w.end - w.start < UNPLACED_S or w.probability < UNSURE_P)
    return unplaced >= 3 and 3 * unplaced >= len(words)


def _entity_span(words: list[Word], first: int, last: int, before: float, after: float) -> tuple[float, float]:
    """Time span of words[first..last], padded, and stretched over the pauses that separate it from
    its neighbours (at most GAP_STRETCH_S): Whisper's word edges fall late or early by a tenth of
    a second or so, and muting a pause costs nothing a viewer can hear."""
    a = words[first].start - before
    b = words[last].end + after
    if first > 0:
        a = min(a, max(words[first - 1].end, words[first].start - GAP_STRETCH_S))
    if last + 1 < len(words):
        b = max(b, min(words[last + 1].start, words[last].end + GAP_STRETCH_S))
    return a, b


@dataclass
class _Sighting:
    """An entity as the readings found it, before its start is decided."""
    interval: MuteInterval
    readings: set[float]
    """When each reading that found it was decoded (its identity)."""

    def overlaps(self, iv: MuteInterval) -> bool:
        return iv.start < self.interval.end and iv.end > self.interval.start

    def add(self, iv: MuteInterval, reading: float) -> None:
        self.interval = replace(self.interval, start=min(self.interval.start, iv.start),
                                end=max(self.interval.end, iv.end))
        self.readings.add(reading)


class SpeechRedactor:
    """Streaming spoken-PII redaction for one audio source.

        r = SpeechRedactor(latency_s=2.0, custom_terms=("Jane Doe",))
        r.push(pts, planar, 48000)          # (channels, n) float32, pts in seconds
        intervals, decided_until = r.poll() # new final mute intervals, watermark
        r.close()

    ``background=False`` (offline, tests): decoding runs inside ``push`` each time
    ``step_s`` of new audio has arrived, so results do not depend on CPU speed.
    ``background=True`` (live): a worker thread decodes; ``poll`` fails closed
    whatever is older than L and still undecided.
    """

    def __init__(self, *, latency_s: float = 2.0, step_s: float | None = None, window_s: float = 9.0,
                 lookback_s: float = SpeechOptions.lookback_s,
                 pad_before_s: float = SpeechOptions.pad_before_s, pad_after_s: float = SpeechOptions.pad_after_s,
                 merge_gap_s: float = SpeechOptions.merge_gap_s, custom_terms: Sequence[str] = (),
                 use_ner: bool = True, model: str = "whisper-tiny.en", threads: int = 0, device: str = "auto",
                 background: bool = False, recognizer: Recognizer | None = None,
                 detector: SpokenPiiDetector | None = None):
        if step_s is None:
            step_s = default_step_s(latency_s)
        asr = AsrOptions(model=model, threads=threads, device=device,
                         hotwords=", ".join(" ".join(w) for w in map(phrase_words, custom_terms) if w))
        self.options = SpeechOptions(latency_s=latency_s, step_s=step_s, window_s=window_s, lookback_s=lookback_s,
                                     pad_before_s=pad_before_s, pad_after_s=pad_after_s,
                                     merge_gap_s=merge_gap_s, custom_terms=tuple(custom_terms), use_ner=use_ner,
                                     asr=asr).check()
        self._recognizer = recognizer or Recognizer(asr)
        self._detector = detector or SpokenPiiDetector(custom_terms=custom_terms, use_ner=use_ner)
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self.decisions: list[tuple[float, float, float]] = []
        """(pushed_until, from, to) each time the watermark moved: the evaluation's latency record."""
        self._decode_s: list[float] = []
        self._failclosed_end = float("-inf")  # end of the newest fail-closed run (logged once per run)
        self._reset_stream(None)
        self._worker = None
        if background:
            self._worker = threading.Thread(target=self._run_worker, name="speech-redactor", daemon=True)
            self._worker.start()

    # ---- input ---------------------------------------------------------------------------------
    def _reset_stream(self, t0: float | None) -> None:
        self._generation = getattr(self, "_generation", 0) + 1  # a decode of an older stream is dropped
        self._rs: StreamResampler | None = None
        self._ring = np.zeros(0, np.float32)
        self._ring_t0 = t0  # caller time of _ring[0]; None until the first chunk
        self._pushed_until = t0  # caller time just after the newest input sample
        self._decided = t0
        self._last_step = t0
        self._committed: list[Word] = []
        self._recent: list[tuple[float, list[Word]]] = []  # the previous hypotheses by when they were
        # decoded, newest first
        self._sightings: list[_Sighting] = []  # entities found ahead of the watermark
        self._issued: list[MuteInterval] = []
        self._outbox: list[MuteInterval] = []

    def push(self, pts: float, planar: np.ndarray, sample_rate: int = 48000) -> None:
        """Add a chunk starting at ``pts`` seconds.  Never passes undecided audio: bad chunks and gaps
        become "failclosed" intervals.  Raises MediaError for input that is not audio at all."""
        rate = check_rate(sample_rate)
        mono = sanitize(planar)
        raw = np.asarray(planar)
        if mono.size == 0:
            return
        if not np.isfinite(float(pts)):
            raise MediaError(f"audio pts must be a finite number of seconds (got {pts!r})")
        duration = mono.size / rate
        with self._lock:
            if self._closed:
                raise StateError("SpeechRedactor is closed")
            self._align(float(pts), rate)
            if not np.isfinite(raw).all():
                # What these samples held is unknown, so nothing in them may pass.
                self._issue_failclosed(float(pts), float(pts) + duration, "non-finite samples")
            self._pushed_until = float(pts) + duration
            if self._worker is None:
                self._feed_inline(mono)
            else:
                self._append(self._rs.process(mono))
                self._wake.notify()

    def _align(self, pts: float, rate: int) -> None:
        """Keep the ring's timeline equal to the caller's: fill small gaps, restart on jumps."""
        if self._ring_t0 is None:
            self._reset_stream(pts)
        expected = self._pushed_until
        if pts > expected + MAX_GAP_FILL_S or pts < expected - PTS_JITTER_S:
            log.warning("push() | timeline jump, restarting [expected:%.3f, pts:%.3f]", expected, pts)
            self._issue_failclosed(self._decided, expected, "timeline restart")
            pending = self._outbox
            self._reset_stream(pts)
            self._outbox = pending
        elif pts > expected + PTS_JITTER_S:
            # Audio the caller never gave us may still be played: mute it, keep the ring aligned.
            self._issue_failclosed(expected, pts, "gap in the audio")
            self._append(np.zeros(int(round((pts - expected) * TARGET_RATE)), np.float32))
        if self._rs is None or self._rs.rate != rate:
            if self._rs is not None:
                self._append(self._rs.flush())
            self._rs = StreamResampler(rate)

    def _append(self, samples: np.ndarray) -> None:
        if not samples.size:
            return
        self._ring = np.concatenate([self._ring, samples])
        # Only the newest window is ever decoded; a stuck decoder must not grow the ring forever.
        excess = self._ring.size - int((self.options.window_s + 1.0) * TARGET_RATE)
        if excess > 0:
            self._ring = self._ring[excess:]
            self._ring_t0 += excess / TARGET_RATE

    def _ring_end(self) -> float:
        return self._ring_t0 + self._ring.size / TARGET_RATE

    def _feed_inline(self, mono: np.ndarray) -> None:
        """Offline: append in slices of one step, decoding whenever a step is due, so a large
        chunk is decoded exactly as if it had been streamed (no audio skips the window)."""
        per_step = int(self.options.step_s * self._rs.rate)
        for i in range(0, mono.size, per_step):
            self._append(self._rs.process(mono[i:i + per_step]))
            if self._ring_end() - self._last_step >= self.options.step_s:
                self._step()

    # ---- decoding and decisions -----------------------------------------------------------------
    def _run_worker(self) -> None:
        while True:
            with self._lock:
                while not self._closed and (self._ring_t0 is None
                                            or self._ring_end() - self._last_step < self._step_due()):
                    self._wake.wait(timeout=0.5)
                if self._closed:
                    return
            self._step()

    def _step(self, final: bool = False) -> None:
        """Decode the newest window, commit agreed words, move the watermark, issue intervals."""
        o = self.options
        with self._lock:
            now = self._ring_end()
            start = max(self._ring_t0, now - o.window_s, self._decided - o.lookback_s - SNAP_S)
            first = int(round((start - self._ring_t0) * TARGET_RATE))
            first += quietest(self._ring[first:], SNAP_S)
            start = self._ring_t0 + first / TARGET_RATE
            window = self._ring[first:]
            self._last_step = now
            generation = self._generation
        began = time.perf_counter()
        try:
            words = self._recognizer.transcribe(window, start)
        except Exception as exc:  # any engine failure: mute, say so, keep going
            log.error("_step() | recognition failed, failing closed [error:%s]", exc)
            with self._lock:
                if generation == self._generation:
                    self._issue_failclosed(self._decided, now, "recognition error")
            return
        with self._lock:
            self._decode_s = (self._decode_s + [time.perf_counter() - began])[-DECODE_TIMES:]
            if generation != self._generation:
                return  # the stream restarted while decoding
            self._decide(words, now, start, final)

    def _hold(self) -> float:
        """How far the watermark trails the newest audio when it moves (see _live_timing)."""
        return self._live_timing()[1]

    def _step_due(self) -> float:
        """New audio that makes the next decode due (see _live_timing)."""
        return self._live_timing()[0]

    @property
    def slowest_decode_s(self) -> float | None:
        """The slowest of the recent decodes (None before the first): what the live timing plans for."""
        with self._lock:
            return max(self._decode_s, default=None)

    def _live_timing(self) -> tuple[float, float]:
        """(step, hold).  Offline, the configured ones: results must not depend on CPU speed.  Live,
        from what the recent decodes took, so a decode still lands before L when the CPU is busy:
        audio just past the watermark is decided by the next decode, which starts a step later (or
        when this one ends, if decodes take longer than a step).  A short L (D = 2 s in OBS gives
        L = 1.8 s) is met by stepping more often, down to MIN_STEP_S, rather than by holding less
        right context than MIN_HOLD_S: a shorter hold decides words Whisper has not heard yet (it
        drops a trailing partial word), and that leaks.  Audio undecided at L is muted."""
        o = self.options
        if self._worker is None or not self._decode_s:
            return o.step_s, o.hold
        decode = MARGIN_SAFETY * max(self._decode_s)
        step = min(o.step_s, max(MIN_STEP_S, o.latency_s - o.least_hold - decode - WAKE_JITTER_S))
        measured = o.latency_s - step - max(decode - step, 0.0) - decode - WAKE_JITTER_S
        return step, min(o.hold, max(measured, o.least_hold))

    def _decide(self, words: list[Word], now: float, window_start: float, final: bool) -> None:
        o = self.options
        # A word at the head of the window may be cut in two; the previous windows heard it whole.
        head = window_start + HEAD_S if window_start > self._ring_t0 + 1e-6 else -np.inf
        current = [w for w in words if w.start >= head]

        target = max(now if final else now - self._hold(), self._decided)

        # LocalAgreement over the newest readings (see the module doc).
        decoded = [now] + [at for at, _ in self._recent]
        hypotheses = [current] + [words for _, words in self._recent]
        zone = (self._decided - AGREEMENT_ZONE_S, target)
        in_zone = [[w for w in h if _in(w, zone)] for h in hypotheses]
        placed = [i for i, z in enumerate(in_zone) if not hallucinated(z)] or list(range(len(in_zone)))
        keys = [[_key(w) for w in in_zone[i]] for i in placed]
        trusted = [placed[j] for j in agreeing(keys)]
        if trusted[0] == 0 and len(keys) > 1 and keys[0] == keys[1]:
            trusted = [0]  # the newest two agree: one reading says it all
        # The newest reading is checked unless Whisper could not place its words and two others agree.
        newest = [0] if 0 in placed or len(trusted) < 2 else []
        readings = {i: self._in_context(hypotheses[i]) for i in newest + [i for i in trusted if i]}
        found = []
        for i, reading in readings.items():
            if not reading:
                continue
            open_end = not final and reading[-1].end > now - 1.0
            try:
                entities = self._detector.find([w.text for w in reading], open_end=open_end)
            except Exception as exc:
                log.error("_decide() | PII detection failed, failing closed [error:%s]", exc)
                self._issue_failclosed(self._decided, max(target, now), "detection error")
                return
            for e in entities:
                a, b = _entity_span(reading, e.first, e.last, o.pad_before_s, o.pad_after_s)
                found.append((MuteInterval(a, b, e.label), decoded[i]))
        self._weigh(found, target)
        # What lies behind the watermark is final: the newest trusted reading becomes the context
        # later windows build on, never one that was set aside.
        self._committed = [w for w in readings[trusted[0]] if w.end <= target and w.end > now - CONTEXT_S]
        self._recent = [(now, current)] + self._recent[:READINGS - 2]
        self._advance(target)

    def _weigh(self, found: list[tuple[MuteInterval, float]], target: float) -> None:
        """Issue the entities that start before the new watermark: those found in this step, and those
        two readings found earlier, from the earliest start any of them gave.  Whisper often loses a
        word from one reading to the next ("at john" becomes "at example"): an entity two readings
        heard is muted even when the readings at its deadline lost it; one reading's guess at the
        open end ("ten eighteen" that becomes "ten to eight") is not."""
        for iv, reading in found:
            for seen in self._sightings:
                if seen.overlaps(iv):
                    seen.add(iv, reading)
                    break
            else:
                self._sightings.append(_Sighting(iv, {reading}))
        keep = []
        for seen in self._sightings:
            if seen.interval.start >= target:
                keep.append(seen)
            elif seen.interval.end > self._decided - self.options.pad_after_s and (
                    len(seen.readings) >= CONFIRMING_READINGS or any(seen.overlaps(iv) for iv, _ in found)):
                self._issue(seen.interval)
        self._sightings = keep

    def _in_context(self, hypothesis: list[Word]) -> list[Word]:
        """The committed words before ``hypothesis``, then it: one reading of everything heard."""
        first = hypothesis[0].start if hypothesis else np.inf
        return [w for w in self._committed if w.end <= first] + hypothesis

    # ---- output -----------------------------------------------------------------------------------
    def _advance(self, target: float) -> None:
        if target > self._decided:
            self.decisions.append((self._pushed_until, self._decided, target))
            del self.decisions[:-10000]
            self._decided = target

    def _issue(self, iv: MuteInterval) -> None:
        """Issue the part of ``iv`` not yet covered, never before the watermark."""
        if iv.start < self._decided:
            # What of it is already decided and not muted has been played: report that, not the
            # entity's age (an entity growing word by word is muted piece by piece as it grows).
            played = self._uncovered(replace(iv, end=min(iv.end, self._decided)))
            if sum(p.end - p.start for p in played) > self.options.pad_before_s + 1e-6:
                log.warning("_issue() | part of an entity was decided before it was found [kind:%s, played:%s]",
                            iv.kind, ", ".join(f"{p.start:.2f}-{p.end:.2f}" for p in played))
            iv = replace(iv, start=self._decided)
        last = self._issued[-1] if self._issued else None
        if last and iv.start - last.end < self.options.merge_gap_s and iv.start >= last.start:
            iv = replace(iv, start=min(max(iv.start, last.end), max(last.end, self._decided)))
        for piece in self._uncovered(iv):
            self._issued.append(piece)
            self._outbox.append(piece)
        self._issued = [i for i in self._issued if i.end > self._decided - CONTEXT_S]

    def _uncovered(self, iv: MuteInterval) -> list[MuteInterval]:
        pieces, cursor = [], iv.start
        for done in sorted(self._issued, key=lambda i: i.start):
            if done.end <= cursor or done.start >= iv.end:
                continue
            if done.start > cursor:
                pieces.append(MuteInterval(cursor, done.start, iv.kind))
            cursor = max(cursor, done.end)
        if cursor < iv.end:
            pieces.append(MuteInterval(cursor, iv.end, iv.kind))
        return pieces

    def _issue_failclosed(self, a: float, b: float, reason: str) -> None:
        if b <= a:
            return
        if a > self._failclosed_end + PTS_JITTER_S:  # log runs, not every chunk
            log.warning("_issue_failclosed() | muting undecided audio [reason:%s, start:%.3f, slowest decode:%.2f s]",
                        reason, a, max(self._decode_s, default=0.0))
        self._failclosed_end = max(self._failclosed_end, b)
        self._issue(MuteInterval(max(a, self._decided if self._decided is not None else a), b, FAILCLOSED))
        self._advance(b)

    def poll(self) -> tuple[list[MuteInterval], float | None]:
        """New final intervals since the last poll, and the watermark: every instant before it is
        decided (None before the first chunk).  Background mode: undecided audio older than L is
        muted as "failclosed" here, so a slow or stuck decoder never delays the stream."""
        with self._lock:
            if self._worker is not None and self._pushed_until is not None:
                deadline = self._pushed_until - self.options.latency_s
                if deadline > self._decided:
                    self._issue_failclosed(self._decided, deadline, "decoding later than L")
            out, self._outbox = self._outbox, []
            return out, self._decided

    def flush(self) -> tuple[list[MuteInterval], float | None]:
        """End of input: decide everything pushed so far (offline use), then ``poll``."""
        with self._lock:
            if self._rs is not None:
                self._append(self._rs.flush())
                self._rs = StreamResampler(self._rs.rate)
            if self._ring_t0 is None:
                return self.poll()
        self._step(final=True)
        with self._lock:
            if self._pushed_until is not None and self._pushed_until > self._decided:
                self._advance(self._pushed_until)  # the filter's held-back tail is the last few samples
        return self.poll()

    def abandon(self, reason: str) -> tuple[list[MuteInterval], float | None]:
        """Stop deciding: what was pushed and is not decided yet is muted ("failclosed"); then ``close``
        and ``poll`` once more.  For a redactor replaced mid-stream: its successor never hears that audio."""
        with self._lock:
            if self._pushed_until is not None:
                self._issue_failclosed(self._decided, self._pushed_until, reason)
        self.close()
        return self.poll()

    def close(self) -> None:
        """Stop the worker; idempotent."""
        with self._lock:
            self._closed = True
            self._wake.notify_all()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=10)


def default_step_s(latency_s: float) -> float:
    """A short L needs frequent decodes; 0.5 s is the CPU-friendly default."""
    return min(0.5, max(0.1, latency_s / 3))


def decode_budget_s(latency_s: float) -> float:
    """The slowest decode with which live decoding still meets ``latency_s``: decoding back to back,
    the audio just past the watermark waits for two decodes (see SpeechRedactor._live_timing)."""
    o = SpeechOptions(latency_s=latency_s, step_s=default_step_s(latency_s))
    return max(0.0, latency_s - o.least_hold - WAKE_JITTER_S) / (2 * MARGIN_SAFETY)


def redact_audio(planar: np.ndarray, sample_rate: int, t0: float = 0.0, mode: str = "beep",
                 chunk_s: float = 0.1, decisions_out: list | None = None,
                 **options) -> tuple[list[MuteInterval], np.ndarray]:
    """Offline: mute intervals and the redacted copy of a whole recording ((channels, n) float32).

    Streams the recording through a ``SpeechRedactor`` in ``chunk_s`` chunks, exactly as the
    live path would see it, so the offline report matches what a stream would have bleeped.
    ``options`` are SpeechRedactor's keyword arguments; ``decisions_out`` receives its
    watermark record (``SpeechRedactor.decisions``) for latency statistics."""
    audio = np.asarray(planar, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None, :]
    rate = check_rate(sample_rate)
    redactor = SpeechRedactor(background=False, **options)
    intervals: list[MuteInterval] = []
    step = max(1, int(chunk_s * rate))
    started = time.perf_counter()
    try:
        for i in range(0, audio.shape[1], step):
            redactor.push(t0 + i / rate, audio[:, i:i + step], rate)
        intervals.extend(redactor.flush()[0])
    finally:
        redactor.close()
    if decisions_out is not None:
        decisions_out.extend(redactor.decisions)
    merged = merge_intervals(intervals, redactor.options.merge_gap_s)
    log.info("redact_audio() | done [seconds:%.1f, intervals:%d, wall_s:%.1f]",
             audio.shape[1] / rate, len(merged), time.perf_counter() - started)
    return merged, render(audio, rate, t0, merged, mode)
