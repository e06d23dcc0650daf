"""The live audio scheduler with the real speech redactor (Whisper tiny.en, the PII rules): what it
publishes when the streamer changes an audio setting mid-stream."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from inference_server.scheduler import AudioScheduler
from privastream_testkit.processes import wait_until

RATE = 48000
PACKET = 1024
SPEECH_ON = {"targets": {"faces": False, "plates": False, "text": False, "speech": True}}


class Published:
    """Everything the scheduler published: mute intervals and the decided mark of each message."""

    def __init__(self):
        self.lock = threading.Lock()
        self.messages: list[tuple[list, float]] = []

    def __call__(self, intervals: list, decided_until: float) -> None:
        with self.lock:
            self.messages.append(([tuple(m) for m in intervals], decided_until))

    def mutes(self) -> list[tuple[float, float, str]]:
        with self.lock:
            return [m for intervals, _ in self.messages for m in intervals]

    def decided(self) -> float:
        with self.lock:
            return self.messages[-1][1] if self.messages else float("-inf")

    def count(self) -> int:
        with self.lock:
            return len(self.messages)


def feed(scheduler: AudioScheduler, pts: float, seconds: float) -> float:
    """Silent packets from ``pts``, at twice real time; returns the pts after the last one."""
    packet = np.zeros((1, PACKET), np.float32)
    for _ in range(int(seconds * RATE / PACKET)):
        scheduler.add_packet(pts, packet, RATE, PACKET)
        pts += PACKET / RATE
        time.sleep(PACKET / RATE / 2)
    return pts


def uncovered(start: float, end: float, mutes) -> float:
    """Seconds of [start, end) that no mute covers."""
    cursor, gap = start, 0.0
    for s, e, _ in sorted(mutes):
        if e <= cursor:
            continue
        if s >= end:
            break
        gap += max(0.0, s - cursor)
        cursor = max(cursor, e)
    return gap + max(0.0, end - cursor)


@pytest.mark.timeout(300)
def test_a_settings_change_mutes_what_the_recogniser_had_not_decided():
    """The recogniser decides about a second behind the newest audio.  Changing the bleep sound or
    the custom words builds a new recogniser: the old one's undecided second must be muted, not
    skipped (the new one starts at the next packet, so its mark would vouch for audio nobody analysed)."""
    published = Published()
    scheduler = AudioScheduler(SPEECH_ON, published, delay_s=2.0, name="settings-test")
    try:
        pts = feed(scheduler, 0.0, 4.0)
        wait_until(lambda: published.decided() > 1.0, 120.0, interval=0.05)  # Whisper loads on the first packet
        pts = feed(scheduler, pts, 2.0)
        settled = published.count()
        time.sleep(0.5)  # no packet, no message: the mark the client holds stays where it is
        assert published.count() == settled and scheduler.error is None
        held, change_at = published.decided(), pts
        assert change_at - held > 0.3, (held, change_at)  # undecided audio there is
        scheduler.update_settings({"custom_terms": ["Jane Doe"], "bleep_mode": "silence"})
        pts = feed(scheduler, pts, 1.0)
        wait_until(lambda: published.decided() >= change_at, 120.0, interval=0.05)
        assert uncovered(held, change_at, published.mutes()) < 1e-6, (held, change_at, published.mutes())
        assert all(kind == "failclosed" for s, e, kind in published.mutes() if s < change_at and e > held)
    finally:
        scheduler.stop()
