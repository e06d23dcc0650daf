"""Detection in child processes of the live server.

Under load the detectors' Python pre- and post-processing (resizing, NMS, OCR crops, the PII
classifier) held the server's GIL for long stretches, so heartbeats starved and clients
wrongly failed closed.  The server now only schedules: one worker process per detector
group ("faces"; "text" = OCR for text and plates), spawned, never forked, so it starts with
no server threads or sockets, owns that group's models and reads each frame it is asked
about straight from the client's shared-memory slot.  Only the slot's name travels to it
and only regions come back, over a pipe (as frigate does with its detector process);
pixels are never pickled and never touch disk.  Two processes, so that a long OCR run
never holds back a face run.

    worker = DetectWorker("faces", threads=0, provider="auto")
    worker.load(settings)                                   # models load in the worker
    regions = worker.detect(FrameRef(ring, slot, seq), t, ("face",), settings)
    worker.close()

``detect`` returns None when the slot was rewritten before the worker read it (the ring
wrapped): no run is recorded and the scheduler tries again on a newer frame.  A worker that
dies or hangs is killed and started again on the next call; meanwhile no detection is
recorded, so the frames it would have vouched for fail closed.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass

from .errors import ModelLoadError, PrivaStreamError, StateError
from .settings import Settings, Targets

log = logging.getLogger("privastream.detect_worker")

CALL_TIMEOUT_S = 60.0
"""A run longer than this (OCR on a machine busy with other work can take seconds) means the worker hung."""
NICE = 5
"""The workers run this much nicer than the server.  Detection is the load that can wait: its
cadence adapts to how long runs take and tracking fills the frames in between, whereas the speech
decoder in the server must finish before its deadline (else the audio is muted) and OBS must keep
its frame rate.  On a machine with CPU to spare this changes nothing; on two cores with OBS
rendering in software, scripts/bench_obs_load.py shows what each stage gets (CPU seconds per
second of stream, by stage) and what is decided late."""
LOAD_TIMEOUT_S = 300.0
RINGS_KEPT = 8
"""Rings the worker keeps attached (clients replace theirs on size changes)."""
DETECTOR_SETS_KEPT = 4
"""Settings variants (enabled kinds, custom terms) the worker keeps detector sets for."""


@dataclass(frozen=True)
class FrameRef:
    """Where a frame sits in shared memory: enough for another process to read it once."""

    ring: str
    slot: int
    seq: int


def _group_settings(group: str, settings: Settings) -> Settings:
    """What changes this group's detection: its own enabled targets (others off) and custom terms."""
    from .vision import DETECTOR_OF_KIND, TARGET_OF_KIND

    targets = {TARGET_OF_KIND[k]: settings.targeted(TARGET_OF_KIND[k]) and g == group
               for k, g in DETECTOR_OF_KIND.items()}
    return Settings(targets=Targets(**targets, speech=False), custom_terms=settings.custom_terms)


class DetectWorker:
    """The server's handle on one group's detection process; one call at a time (callers also share a gate)."""

    def __init__(self, group: str, threads: int = 0, provider: str = "auto"):
        self.group, self.threads, self.provider = group, threads, provider
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._proc = None
        self._conn = None
        self.restarts = 0

    def _ensure(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        if self._proc is not None:
            self.restarts += 1
            log.error("_ensure() | detection worker died; starting it again [group:%s exitcode:%s restarts:%d]",
                      self.group, self._proc.exitcode, self.restarts)
            self._conn.close()
        parent, child = self._ctx.Pipe(duplex=True)
        self._proc = self._ctx.Process(target=_worker_main, args=(child, self.threads, self.provider),
                                       name=f"privastream-{self.group}", daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        log.info("_ensure() | detection worker started [group:%s pid:%d]", self.group, self._proc.pid)

    def _call(self, request: tuple, timeout: float):
        with self._lock:
            self._ensure()
            try:
                self._conn.send(request)
                if not self._conn.poll(timeout):
                    raise TimeoutError(f"no answer in {timeout:.0f} s")
                status, payload = self._conn.recv()
            except (OSError, EOFError, TimeoutError) as exc:
                self._kill()
                raise StateError(f"detection worker failed ({exc.__class__.__name__}: {exc})") from None
        if status == "model":
            raise ModelLoadError(payload)
        if status == "error":
            raise StateError(f"detection worker: {payload}")
        return payload

    def _kill(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
            self._proc.join(timeout=5.0)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def load(self, settings: Settings) -> None:
        """Load this group's models that the settings enable, in the worker."""
        self._call(("load", _group_settings(self.group, settings)), LOAD_TIMEOUT_S)

    def detect(self, ref: FrameRef, t: float, kinds: tuple[str, ...], settings: Settings, text_areas=None,
               face_scale: float | None = None):
        """Regions of ``kinds`` in the frame at ``ref`` (text only in ``text_areas``, frame pixels,
        when given; faces on an input scaled by ``face_scale``, when given), or None if the slot no
        longer holds it."""
        return self._call(("detect", _group_settings(self.group, settings), ref, t, kinds, text_areas, face_scale),
                          CALL_TIMEOUT_S)

    def close(self) -> None:
        """Stop the worker (closing the pipe ends its loop).  Safe to call twice."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._proc is not None:
                self._proc.join(timeout=5.0)
                self._kill()
                self._proc = None


def start_workers(threads: int = 0, provider: str = "auto") -> dict[str, DetectWorker]:
    """One worker per detector group (they start on their first call).

    threads=0: the cores split between the workers, which run side by side.  Each taking
    every core made onnxruntime's threads fight (CenterFace at 720p: 1.05 s a run with two
    threads against 0.48 s with one, on 2 busy cores).
    """
    from .vision import DETECTOR_OF_KIND

    groups = list(dict.fromkeys(DETECTOR_OF_KIND.values()))
    threads = threads or max(1, (os.cpu_count() or 1) // len(groups))
    return {group: DetectWorker(group, threads, provider) for group in groups}


class WorkerDetector:
    """One session's view of the shared workers: its settings, for the scheduler's detection threads."""

    def __init__(self, workers: dict[str, DetectWorker], settings: Settings):
        self.workers = workers
        self.settings = settings

    def update_settings(self, settings: Settings) -> None:
        self.settings = settings

    def load(self, group: str) -> None:
        self.workers[group].load(self.settings)

    def detect(self, ref: FrameRef, t: float, kinds: tuple[str, ...], text_areas=None, face_scale=None):
        from .vision import DETECTOR_OF_KIND

        if text_areas == []:
            return []  # nothing changed where text was read: the earlier answers stand (read_memory.py)
        return self.workers[DETECTOR_OF_KIND[kinds[0]]].detect(ref, t, kinds, self.settings, text_areas, face_scale)


# ---------------------------------------------------------------- the child process

class _Models:
    """The worker's detector sets (one per settings variant) and attached rings, both bounded."""

    def __init__(self, threads: int, provider: str):
        self.threads, self.provider = threads, provider
        self.detector_sets: collections.OrderedDict = collections.OrderedDict()
        self.rings: collections.OrderedDict = collections.OrderedDict()

    def detectors(self, settings: Settings):
        from .vision import Detectors

        key = settings  # frozen: one detector set per distinct settings
        if key not in self.detector_sets:
            self.detector_sets[key] = Detectors(settings, threads=self.threads, provider=self.provider)
            while len(self.detector_sets) > DETECTOR_SETS_KEPT:
                self.detector_sets.popitem(last=False)
        self.detector_sets.move_to_end(key)
        return self.detector_sets[key]

    def ring(self, name: str):
        from .shm import RingReader

        if name not in self.rings:
            self.rings[name] = RingReader(name)
            while len(self.rings) > RINGS_KEPT:
                self.rings.popitem(last=False)[1].close()
        self.rings.move_to_end(name)
        return self.rings[name]

    def detect(self, settings: Settings, ref: FrameRef, t: float, kinds, text_areas, face_scale):
        from .shm import SlotOverwritten

        try:
            # The one full read of the frame, in this process: the server never copies it.
            _, rgba = self.ring(ref.ring).read(ref.slot, ref.seq)
        except SlotOverwritten:
            return None
        return [r for _, found in self.detectors(settings).detect(rgba, kinds, text_areas, face_scale) for r in found]


def _worker_main(conn, threads: int, provider: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the server stops us
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.nice(NICE)
    models = _Models(threads, provider)
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):  # the server closed the pipe or died: nothing left to serve
            return
        op, settings, *args = request
        started = time.monotonic()
        try:
            if op == "load":
                models.detectors(settings).load()
                reply = ("ok", None)
            elif op == "detect":
                reply = ("ok", models.detect(settings, *args))
            else:
                reply = ("error", f"unknown request {op!r}")
        except ModelLoadError as exc:
            reply = ("model", str(exc))
        except PrivaStreamError as exc:
            reply = ("error", str(exc))
        except Exception as exc:  # a broken detector: the server fails closed; the worker keeps serving
            log.exception("_worker_main() | %s failed", op)
            reply = ("error", f"{op} failed ({exc.__class__.__name__}: {exc})")
        log.debug("_worker_main() | %s [ms:%.1f]", op, (time.monotonic() - started) * 1000)
        try:
            conn.send(reply)
        except (OSError, BrokenPipeError):
            return
