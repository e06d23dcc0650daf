"""The video client's frame ledger on its own, with a clock the test moves: each frame gets one
decision, and a frame nobody answered in time is fail-closed, never answered late."""

from inference_server.frame_ledger import DECISIONS_KEPT, FrameLedger
from inference_server.regions import FrameDecision, Region

FACE = FrameDecision(regions=[Region("face", (0.0, 0.0, 10.0, 10.0))])


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def ledger() -> tuple[FrameLedger, Clock]:
    clock = Clock()
    return FrameLedger(clock), clock


def test_an_answer_in_time_is_the_decision_and_counts_in_the_figures():
    frames, clock = ledger()
    frames.expect(1, taken=0.0, deadline=1.0)
    assert frames.decision(1) is None  # may still come
    clock.now = 0.2
    frames.answer(1, FACE)
    assert frames.decision(1) == FACE
    latency, fps, late = frames.figures()
    assert latency == 200.0 and not late


def test_a_frame_unanswered_at_its_deadline_is_fail_closed_and_a_late_answer_changes_nothing():
    frames, clock = ledger()
    frames.expect(1, taken=0.0, deadline=1.0)
    frames.expect(2, taken=0.1, deadline=1.1)
    clock.now = 1.0
    d = frames.decision(1)
    assert d.fail_closed and d.reason == "no decision before the deadline"
    frames.answer(1, FACE)
    assert frames.decision(1) == d
    clock.now = 1.2
    frames.answer(2, FACE)  # the answer arrives after the deadline
    assert frames.decision(2).reason == "decision arrived after the deadline"
    assert frames.figures()[2]  # late


def test_expire_and_fail_pending_cover_every_frame_in_flight():
    frames, clock = ledger()
    for i in range(4):
        frames.expect(i, taken=i * 0.1, deadline=1.0 + i * 0.1)
    clock.now = 1.15
    frames.expire()
    assert [frames.decision(i) is not None for i in range(4)] == [True, True, False, False]
    frames.fail_pending("inference server unavailable")
    assert {frames.decision(i).reason for i in (2, 3)} == {"inference server unavailable"}


def test_a_refused_frame_is_fail_closed_at_once_and_not_a_miss():
    frames, _ = ledger()
    frames.refuse(5, "not connected to the inference server")
    assert frames.decision(5).fail_closed and not frames.figures()[2]


def test_old_decisions_are_forgotten():
    frames, _ = ledger()
    for i in range(DECISIONS_KEPT + 1):
        frames.refuse(i, "x")
    assert frames.decision(0) is None and frames.decision(DECISIONS_KEPT) is not None
