"""Temporal coverage: which regions to cover at any instant, from sparse detections.

Detectors run on some frames only (text far less often than faces), yet every
frame must be covered.  This module keeps, per kind, the times at which a
detector ran ("runs") and the tracks built by associating its detections across
runs, and answers "what must be covered at time t?":

* between two detections of a track, the box is interpolated, with a margin
  that grows with the distance it moved;
* after a track's last detection, it is extrapolated with its velocity and a
  margin growing with speed and elapsed time, until a little after the first
  run that no longer saw it (tracks end softly, never abruptly);
* before a track's first detection, it is extended back to the previous run
  that did not see it, so an object that appears is covered from its first
  frame once a later detection is known (the live path's lookahead D);
* a missed detection in between (detector flicker) is bridged by
  interpolation as long as the two detections are at most ``max_gap`` apart;
* scene cuts split everything: no track, run or interpolation crosses one.

A time t is *settled* for a kind when a run at or before t and a run at or
after t exist in t's scene: from then on the answer for t never changes.  The
offline redactor waits for that; the live path waits until the frame's
deadline and then asks for the best extrapolated estimate (``final=False``),
which fails closed when no detection is recent enough.

Nothing here touches pixels or knows about OBS: times are seconds on the
caller's clock, boxes are frame pixels.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass, field

from .regions import TRACKED_KINDS, FrameDecision, Region, iou

_EPS = 1e-6


@dataclass(frozen=True)
class KindPolicy:
    """How one kind of region behaves over time (seconds, and fractions of the box size)."""

    max_gap: float = 1.0
    """Longest interval between two detections that are bridged as one track."""
    hold: float = 0.2
    """How long a track stays covered after the first run that no longer saw it."""
    lead: float = 0.1
    """How far before the last run that did not see a new track it is already covered."""
    max_extrapolation: float = 1.0
    """Live: how far past the newest run an estimate may reach before failing closed."""
    margin: float = 0.12
    """Margin around every box, as a fraction of its smaller side."""
    growth: float = 0.5
    """Extra margin per second since the nearest detection, as a fraction of the smaller side."""
    speed_factor: float = 1.0
    """Extra margin per second per pixel/second of speed."""


DEFAULT_POLICIES = {
    # CenterFace boxes are tight (cheek to cheek, brow to chin): a fifth more reaches the ears and jaw.
    "face": KindPolicy(margin=0.2),
    "mouth": KindPolicy(),
    # Text and plates are detected rarely (OCR is slow) but move little: long gaps, small growth.
    "text": KindPolicy(max_gap=3.0, hold=0.3, lead=0.2, max_extrapolation=3.0, margin=0.15, growth=0.1),
    "plate": KindPolicy(max_gap=2.0, hold=0.3, lead=0.2, max_extrapolation=2.0, margin=0.2, growth=0.3),
}


@dataclass
class _Track:
    id: int
    kind: str
    scene: float
    times: list[float] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)
    """Detections, by time."""
    measured: dict[float, tuple] = field(default_factory=dict)
    """Boxes the tracker measured between detections (tracking.py), by frame time."""

    def add(self, t: float, region: Region) -> None:
        i = bisect.bisect_left(self.times, t)
        self.times.insert(i, t)
        self.regions.insert(i, region)

    def velocity(self, i: int, j: int) -> tuple[float, float, float, float]:
        """Per-second change of the box between keys i and j."""
        dt = self.times[j] - self.times[i]
        if dt <= _EPS:
            return (0.0, 0.0, 0.0, 0.0)
        a, b = self.regions[i].box, self.regions[j].box
        return tuple((b[k] - a[k]) / dt for k in range(4))


def _grow(box, pad: float) -> tuple[float, float, float, float]:
    return (box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad)


def _size(box) -> float:
    """The scale margins are measured in: the smaller side, so a long text line is not padded by its length."""
    return max(min(box[2] - box[0], box[3] - box[1]), 1.0)


def _lerp(a, b, u: float):
    return tuple(x + (y - x) * u for x, y in zip(a, b))


def _shift_landmarks(landmarks, old_box, new_box):
    """Move landmarks with the box (scaling about its top-left corner)."""
    if not landmarks:
        return ()
    sx = (new_box[2] - new_box[0]) / max(old_box[2] - old_box[0], _EPS)
    sy = (new_box[3] - new_box[1]) / max(old_box[3] - old_box[1], _EPS)
    return tuple((new_box[0] + (x - old_box[0]) * sx, new_box[1] + (y - old_box[1]) * sy) for x, y in landmarks)


class Coverage:
    """Runs, tracks and the cover decision for every instant; one per video stream."""

    def __init__(self, kinds=("face", "text", "plate"), policies: dict[str, KindPolicy] | None = None):
        self.kinds = tuple(kinds)
        self.policies = {**DEFAULT_POLICIES, **(policies or {})}
        self._cuts: list[float] = []
        self._runs: dict[str, list[float]] = {k: [] for k in TRACKED_KINDS}
        self._tracks: dict[str, list[_Track]] = {k: [] for k in TRACKED_KINDS}
        self._ids = itertools.count()

    # -- input ---------------------------------------------------------------

    def add_cut(self, t: float) -> None:
        """A scene cut: the frame at t is the first of a new scene."""
        if not self._cuts or t > self._cuts[-1]:
            self._cuts.append(t)
        elif t not in self._cuts:
            bisect.insort(self._cuts, t)

    def add_run(self, t: float, kinds, regions: list[Region]) -> None:
        """A detector ran on the frame at t for ``kinds`` and found ``regions``."""
        scene = self._scene(t)
        for kind in kinds:
            runs = self._runs[kind]
            if runs and runs[-1] < t:
                runs.append(t)
            elif t not in runs:
                bisect.insort(runs, t)
            self._associate(t, scene, kind, [r for r in regions if r.kind == kind])

    def _associate(self, t: float, scene: float, kind: str, found: list[Region]) -> None:
        policy = self.policies[kind]
        candidates = []
        for track in self._tracks[kind]:
            if track.scene != scene or t in track.times:
                continue
            i = bisect.bisect_left(track.times, t)
            nearest = min(abs(track.times[j] - t) for j in (i - 1, i) if 0 <= j < len(track.times))
            if nearest <= policy.max_gap:
                candidates.append(track)
        pairs = []
        for ti, track in enumerate(candidates):
            predicted = self._track_box(track, t)
            for ri, region in enumerate(found):
                score = iou(predicted, region.box)
                if score <= 0:
                    # Fast motion between sparse runs: fall back to centre distance relative to size.
                    (px, py), (rx, ry) = _center(predicted), region.center
                    dist = math.hypot(px - rx, py - ry) / max(_size(predicted), _size(region.box))
                    score = 0.1 * (1 - dist / 2) if dist < 2 else 0
                if score > 0:
                    pairs.append((score, ti, ri))
        used_t, used_r = set(), set()
        for score, ti, ri in sorted(pairs, reverse=True):
            if ti in used_t or ri in used_r:
                continue
            used_t.add(ti)
            used_r.add(ri)
            track = candidates[ti]
            track.add(t, found[ri].with_box(found[ri].box, track_id=track.id))
        for ri, region in enumerate(found):
            if ri not in used_r:
                track = _Track(next(self._ids), kind, scene)
                track.add(t, region.with_box(region.box, track_id=track.id))
                self._tracks[kind].append(track)

    def add_measurement(self, track_id: int, kind: str, t: float, box) -> None:
        """A followed track's box measured in the frame at t (tracking.py), between detections."""
        for track in self._tracks[kind]:
            if track.id == track_id:
                track.measured[t] = tuple(box)
                return

    def followable(self, kind: str, t: float) -> list[tuple[int, float, tuple, float, tuple]]:
        """Tracks to follow up to t: those the newest run at or before t (in t's scene) saw, as
        (track id, time and box of that detection, time and box of their newest measurement after it
        and before t, or of the detection itself)."""
        before, _ = self._neighbour_runs(kind, t)
        if before is None or before == t:
            return []
        out = []
        for track in self._tracks[kind]:
            i = bisect.bisect_left(track.times, before)
            if i < len(track.times) and track.times[i] == before:
                # Frames are followed in time order, so the newest measurement is near the end.
                last = next(((mt, box) for mt, box in reversed(track.measured.items()) if before < mt < t),
                            (before, track.regions[i].box))
                out.append((track.id, before, track.regions[i].box, *last))
        return out

    def newest_run_before(self, kind: str, t: float) -> float | None:
        """The newest run of ``kind`` at or before t in t's scene: what vouches for t's picture."""
        return self._neighbour_runs(kind, t)[0]

    # -- queries -------------------------------------------------------------

    def _scene(self, t: float) -> float:
        """A scene is named by the time of the cut that starts it (-inf for the first)."""
        i = bisect.bisect_right(self._cuts, t)
        return self._cuts[i - 1] if i > 0 else -math.inf

    def _scene_bounds(self, scene: float) -> tuple[float, float]:
        i = bisect.bisect_right(self._cuts, scene)
        return scene, self._cuts[i] if i < len(self._cuts) else math.inf

    def _neighbour_runs(self, kind: str, t: float) -> tuple[float | None, float | None]:
        """The runs of ``kind`` at or before t and at or after t, within t's scene."""
        runs = self._runs[kind]
        start, end = self._scene_bounds(self._scene(t))
        i = bisect.bisect_right(runs, t)
        before = runs[i - 1] if i > 0 and runs[i - 1] >= start else None
        j = bisect.bisect_left(runs, t)
        after = runs[j] if j < len(runs) and runs[j] < end else None
        return before, after

    def settled(self, t: float) -> bool:
        """True when the answer for t can no longer change (detections known on both sides)."""
        return all(None not in self._neighbour_runs(k, t) for k in self.kinds)

    def newest_run(self, kind: str) -> float | None:
        runs = self._runs[kind]
        return runs[-1] if runs else None

    def decide(self, t: float, final: bool = True) -> FrameDecision | None:
        """What to cover at t.

        final=True: None until t is settled, then the answer that never changes.
        final=False: the best estimate now; fail-closed when some kind has no
        detection recent enough to extrapolate from (or none in this scene).
        """
        regions: list[Region] = []
        for kind in self.kinds:
            before, after = self._neighbour_runs(kind, t)
            if after is None:
                if final:
                    return None
                if before is None or t - before > self.policies[kind].max_extrapolation:
                    return FrameDecision(fail_closed=True, reason=f"no recent {kind} detection")
            elif before is None:
                if final:
                    return None
                # Nothing vouches for the picture before a scene's first run: its tracks would be
                # reached back from a later detection, where a moving face no longer is.
                return FrameDecision(fail_closed=True, reason=f"no {kind} detection yet in this scene")
            regions.extend(self.regions_at(kind, t, estimate=not final))
        return FrameDecision(regions=regions)

    def regions_at(self, kind: str, t: float, estimate: bool = False) -> list[Region]:
        """Every track of ``kind`` at t.  A box the tracker measured at t widens the answer from the
        detections (interpolated between them, held after them); only in a live ``estimate`` past a
        track's newest detection does it replace the extrapolation, because there the change cover
        (vision.py) checks it, whereas nothing checks a settled answer."""
        policy, scene = self.policies[kind], self._scene(t)
        found = (self._measured_region(tr, t, policy, estimate) for tr in self._tracks[kind] if tr.scene == scene)
        return [r for r in found if r is not None]

    def _measured_region(self, track: _Track, t: float, policy: KindPolicy, estimate: bool) -> Region | None:
        region = self._track_region(track, t, policy)
        box = track.measured.get(t)
        if box is None:
            return region
        grown = _grow(box, policy.margin * _size(box))
        if region is None or (estimate and t > track.times[-1]):
            near = track.regions[max(bisect.bisect_left(track.times, t) - 1, 0)]
            return near.with_box(grown, landmarks=_shift_landmarks(near.landmarks, near.box, box), origin="tracked")
        a = region.box
        return region.with_box((min(a[0], grown[0]), min(a[1], grown[1]), max(a[2], grown[2]), max(a[3], grown[3])))

    def _track_box(self, track: _Track, t: float):
        """Motion-model box at t, without margins (for association)."""
        i = bisect.bisect_left(track.times, t)
        if 0 < i < len(track.times):
            u = (t - track.times[i - 1]) / (track.times[i] - track.times[i - 1])
            return _lerp(track.regions[i - 1].box, track.regions[i].box, u)
        if i < len(track.times) and track.times[i] == t:
            return track.regions[i].box
        box, _ = self._extrapolate(track, i - 1 if i > 0 else 0, t)
        return box

    def _extrapolate(self, track: _Track, k: int, t: float):
        """Box and speed (px/s) at t, moved from key k with the velocity of the keys beside it."""
        n = len(track.times)
        forward = t > track.times[k]
        if forward and k >= 1:
            v = track.velocity(k - 1, k)
        elif not forward and k + 1 < n:
            v = track.velocity(k, k + 1)
        else:
            v = (0.0, 0.0, 0.0, 0.0)
        dt = t - track.times[k]
        box = tuple(b + vv * dt for b, vv in zip(track.regions[k].box, v))
        return box, math.hypot((v[0] + v[2]) / 2, (v[1] + v[3]) / 2)

    def _track_region(self, track: _Track, t: float, policy: KindPolicy) -> Region | None:
        times, regions = track.times, track.regions
        i = bisect.bisect_left(times, t)
        n = len(times)
        if i < n and times[i] == t:
            r = regions[i]
            return r.with_box(_grow(r.box, policy.margin * _size(r.box)), origin="detected")
        if 0 < i < n and times[i] - times[i - 1] <= policy.max_gap + _EPS:
            a, b = regions[i - 1], regions[i]
            u = (t - times[i - 1]) / (times[i] - times[i - 1])
            box = _lerp(a.box, b.box, u)
            moved = math.hypot(*(p - q for p, q in zip(_center(a.box), _center(b.box))))
            # Linear motion is exact; a curved path strays from the chord by a share of the distance.
            pad = policy.margin * _size(box) + 0.5 * moved * min(u, 1 - u)
            if a.landmarks and b.landmarks:
                marks = tuple(_lerp(p, q, u) for p, q in zip(a.landmarks, b.landmarks))
            else:
                marks = _shift_landmarks(a.landmarks, a.box, box)
            near = a if u < 0.5 else b
            return near.with_box(_grow(box, pad), landmarks=marks, origin="interpolated", score=min(a.score, b.score))
        # Outside the track's detections, or inside a gap too long to bridge: extrapolate from
        # the key on either side that still vouches for t.
        if i > 0:
            seen_until = self._first_run_after(track.kind, times[i - 1], times[i] if i < n else None)
            if seen_until is None or t <= seen_until + policy.hold:
                return self._extrapolated_region(track, i - 1, t, policy)
        if i < n:
            unseen_at = self._last_run_before(track.kind, times[i], times[i - 1] if i > 0 else None)
            start, _ = self._scene_bounds(track.scene)
            if t >= start and (unseen_at is None or t >= unseen_at - policy.lead):
                return self._extrapolated_region(track, i, t, policy)
        return None

    def _extrapolated_region(self, track: _Track, k: int, t: float, policy: KindPolicy) -> Region:
        r = track.regions[k]
        box, speed = self._extrapolate(track, k, t)
        dt = abs(t - track.times[k])
        size = _size(r.box)
        pad = policy.margin * size + policy.growth * size * dt + policy.speed_factor * speed * dt
        return r.with_box(_grow(box, pad), landmarks=_shift_landmarks(r.landmarks, r.box, box), origin="tracked")

    def _first_run_after(self, kind: str, t: float, bound: float | None) -> float | None:
        """The first run after t (and before ``bound``): the first one that no longer saw the track."""
        runs = self._runs[kind]
        j = bisect.bisect_right(runs, t)
        if j < len(runs) and (bound is None or runs[j] < bound):
            return runs[j]
        return None

    def _last_run_before(self, kind: str, t: float, bound: float | None) -> float | None:
        """The last run before t (and after ``bound``): the last one that did not yet see the track."""
        runs = self._runs[kind]
        j = bisect.bisect_left(runs, t)
        if j > 0 and (bound is None or runs[j - 1] > bound):
            return runs[j - 1]
        return None

    # -- memory --------------------------------------------------------------

    def prune(self, before_t: float) -> None:
        """Forget what only matters for times before ``before_t`` (keeps one run, key and cut of context)."""
        for runs in self._runs.values():
            del runs[: max(0, bisect.bisect_left(runs, before_t) - 1)]
        for kind, tracks in self._tracks.items():
            horizon = before_t - 2 * self.policies[kind].max_gap - self.policies[kind].hold
            kept = []
            for track in tracks:
                if track.times[-1] < horizon:
                    continue
                drop = bisect.bisect_left(track.times, before_t) - 1
                if drop > 0:
                    del track.times[:drop]
                    del track.regions[:drop]
                track.measured = {mt: box for mt, box in track.measured.items() if mt >= before_t}
                kept.append(track)
            self._tracks[kind] = kept
        del self._cuts[: max(0, bisect.bisect_left(self._cuts, before_t) - 1)]


def _center(box) -> tuple[float, float]:
    return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)

