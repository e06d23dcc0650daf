"""The frame publisher on its own: no threads, no server, a clock the test moves.

Its promises: every frame is published exactly once; a frame not settled by its publication time
(deadline less PUBLISH_MARGIN_S) goes out as an estimate or fail-closed then; an answer that reaches
a frame after its deadline goes out fail-closed and counted, never as if in time; the figures add up.
"""

import math

import pytest

from inference_server.publisher import AUDITED_KEPT, PUBLISH_MARGIN_S, FramePublisher, PendingFrame
from inference_server.regions import FrameDecision, Region

D = 1.0
FACE = Region("face", (10.0, 10.0, 50.0, 50.0))
ELSEWHERE = Region("face", (200.0, 200.0, 240.0, 240.0))


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def pub():
    clock, sent = Clock(), []
    publisher = FramePublisher(lambda f, d: sent.append((f.frame_id, d)), clock=clock)
    publisher.clock, publisher.sent = clock, sent  # the test's handles on what it sees
    return publisher


def frame(i: int, fps: float = 10.0) -> PendingFrame:
    t = i / fps
    return PendingFrame(i, t, t, t + D)


def answer(*regions: Region) -> FrameDecision:
    return FrameDecision(regions=list(regions))


def test_settled_frames_go_out_in_order_up_to_the_first_unsettled_one(pub):
    frames = [frame(i) for i in range(5)]
    for f in frames:
        pub.add(f)
    asked = []

    def decide(f):
        asked.append(f.frame_id)
        return None if f.frame_id == 1 else answer(FACE)  # frame 1 waits (its audio, say)

    pub.settle(lambda t: t < 0.35, decide)
    assert [i for i, _ in pub.sent] == [0, 2, 3]
    assert asked == [0, 1, 2, 3]  # frame 4 is past the settled range: not even decided
    assert len(pub) == 2 and pub.newest() is frames[4]
    assert pub.stats.settled == 3 and pub.stats.frames_in == 5 and pub.stats.frames_out == 3


def test_each_frame_is_published_once_whoever_answers_it(pub):
    f = frame(0)
    pub.add(f)
    pub.settle(lambda t: True, lambda f: answer(FACE))
    pub.fallback(math.inf, lambda f: answer())
    pub.fail_all("session closed")
    assert pub.sent == [(0, answer(FACE))]
    assert pub.stats.frames_out == 1 and pub.stats.tracked == 0 and pub.stats.fail_closed == 0


def test_an_unsettled_frame_goes_out_as_an_estimate_at_its_publication_time(pub):
    f = frame(0)
    pub.add(f)
    due = f.deadline - PUBLISH_MARGIN_S
    pub.fallback(due - 0.01, lambda f: answer(FACE))
    assert pub.sent == []
    pub.clock.now = due
    pub.fallback(due, lambda f: answer(FACE))
    assert pub.sent == [(0, answer(FACE))]
    assert pub.stats.tracked == 1 and pub.stats.deadline_misses == 0 and len(pub) == 0


def test_an_answer_after_the_deadline_goes_out_fail_closed_and_counted(pub):
    pub.add(frame(0))
    pub.clock.now = frame(0).deadline + 0.05  # the decision thread woke late
    pub.fallback(pub.clock.now, lambda f: answer(FACE))
    (_, decision), = pub.sent
    assert decision.fail_closed and decision.reason == "deadline missed"
    st = pub.stats
    assert st.deadline_misses == 1 and st.fail_closed == 1 and st.tracked == 0
    assert st.fail_closed_reasons == {"deadline missed": 1}


def test_refused_frames_are_published_fail_closed_at_once_and_never_pending(pub):
    pub.refuse(frame(0), "frame lost in transport", lost=True)
    pub.refuse(frame(1), "inference failed")
    assert [(i, d.fail_closed, d.reason) for i, d in pub.sent] == [
        (0, True, "frame lost in transport"), (1, True, "inference failed")]
    st = pub.stats
    assert len(pub) == 0 and st.frames_in == 2 and st.frames_out == 2 and st.dropped == 1
    assert st.fail_closed_reasons == {"frame lost in transport": 1, "inference failed": 1}


def test_fail_all_covers_every_pending_frame(pub):
    for i in range(3):
        pub.add(frame(i))
    pub.fail_all("session closed")
    assert [(i, d.reason) for i, d in pub.sent] == [(0, "session closed"), (1, "session closed"), (2, "session closed")]
    assert len(pub) == 0 and pub.newest() is None


def test_the_audit_counts_estimates_that_missed_a_settled_region(pub):
    for i in range(3):
        pub.add(frame(i))
    pub.fallback(math.inf, lambda f: answer(FACE) if f.frame_id != 1 else answer(ELSEWHERE))
    settled = {0.0: answer(FACE), 0.1: answer(FACE)}  # frame 2 (t 0.2) is not settled yet
    pub.audit(lambda t: settled.get(t))
    assert pub.stats.estimate_misses == 1
    settled[0.2] = answer(FACE, ELSEWHERE)
    pub.audit(lambda t: settled.get(t))
    assert pub.stats.estimate_misses == 2
    pub.audit(lambda t: pytest.fail("every estimate was audited already"))


def test_the_audit_keeps_a_bounded_number_of_estimates(pub):
    for i in range(AUDITED_KEPT + 10):
        pub.add(frame(i, fps=1000.0))
    pub.fallback(math.inf, lambda f: answer(FACE))
    audited = []
    pub.audit(lambda t: audited.append(t) or answer(FACE))
    assert len(audited) == AUDITED_KEPT and audited[0] == 10 / 1000.0


def test_latency_and_the_newest_published_pts_are_recorded(pub):
    pub.add(frame(3))
    pub.clock.now = 0.3 + 0.04
    pub.settle(lambda t: True, lambda f: answer())
    assert sum(pub.stats.latency_hist) == 1 and pub.stats.latency_hist[1] == 1  # 40 ms: the 50 ms bucket
    assert pub.emitted_t == pytest.approx(0.3)
    pub.refuse(PendingFrame(4, -math.inf, 0.4, 0.4 + D), "frame lost in transport", lost=True)
    assert pub.emitted_t == pytest.approx(0.3)  # a frame without a pts says nothing about the stream's time
