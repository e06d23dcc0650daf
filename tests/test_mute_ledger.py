"""The client's mute ledger on its own (no socket, no server): runs of the audio clock, where the
server's mark falls, merged mutes, outages.  The real client and server run it in tests/test_live.py."""

from __future__ import annotations

import time

import pytest

from inference_server.mute_ledger import FAILCLOSED, RUN_KEPT_S, MuteLedger

P = 1024 / 48000


def hand_over(ledger: MuteLedger, pts: float, packets: int) -> float:
    for i in range(packets):
        ledger.handed_over(pts + i * P, pts + (i + 1) * P)
    return pts + packets * P


def covers(mutes, start: float, end: float, kind: str = FAILCLOSED) -> bool:
    return any(s <= start and end <= e and k == kind for s, e, k in mutes)


def test_the_mark_is_read_in_the_run_the_server_is_deciding():
    ledger = MuteLedger()
    first = hand_over(ledger, 100.0, 40)
    ledger.update([], first)
    assert ledger.decision(100.0, first)[1] == pytest.approx(first)
    second = hand_over(ledger, 5.0, 40)  # the clock went back
    # The old clock's mark vouches for nothing on the new one.
    assert ledger.decision(5.0, second)[1] == 5.0
    ledger.update([], 5.5)
    assert ledger.decision(5.0, second)[1] == 5.5
    assert ledger.current_mark() == 5.5
    # The old run stays decided to its end (its audio is still being played, D late).
    assert ledger.decision(100.0, first)[1] == pytest.approx(first)


def test_a_mark_far_ahead_vouches_only_for_its_own_packet():
    ledger = MuteLedger()
    first = hand_over(ledger, 100.0, 40)
    ledger.update([], first)
    hand_over(ledger, 100_000.0, 1)
    second = hand_over(ledger, first, 40)
    ledger.update([(first - 0.1, first, FAILCLOSED)], 100_000.0 + P)
    assert ledger.decision(first, second)[1] == first  # the new run is not reached yet
    ledger.update([], first + 0.2)  # the server moved on to the new run
    assert ledger.decision(first, second)[1] == pytest.approx(first + 0.2)
    assert ledger.decision(first - 0.1, first)[0] == [(first - 0.1, first, FAILCLOSED)]


def test_a_mark_that_fits_no_run_ahead_is_ignored():
    ledger = MuteLedger()
    end = hand_over(ledger, 10.0, 10)
    ledger.update([], 10.1)
    ledger.update([], 50.0)  # nothing handed over there: the mark stays where it was
    assert ledger.decision(10.0, end)[1] == 10.1


def test_a_query_over_two_runs_is_decided_as_far_as_the_less_decided():
    ledger = MuteLedger()
    hand_over(ledger, 100.0, 100)  # 100 .. 102.13
    ledger.update([], 101.9)
    hand_over(ledger, 100.5, 20)  # back by 1.6 s: both runs hold 100.5 .. 100.93
    assert ledger.decision(100.6, 100.62)[1] == 100.5  # muted: either run's sample may be the one played
    ledger.update([], 100.7)
    assert ledger.decision(100.6, 100.62)[1] == 100.7


def test_an_hour_of_refused_packets_is_one_interval_and_a_query_stays_fast():
    ledger = MuteLedger()
    hand_over(ledger, 0.0, 10)
    ledger.connection_lost()
    for i in range(10, 10 + int(3600 / P)):
        ledger.refused(i * P, (i + 1) * P)
    assert ledger.interval_count() <= 2  # the outage's run, and its open end until audio is handed over
    t0 = time.perf_counter()
    for _ in range(1000):
        mutes, _ = ledger.decision(1800.0, 1800.0 + P)
    assert (time.perf_counter() - t0) / 1000 < 1e-4
    assert len(mutes) <= 2 and covers(mutes, 0.0, 3600.0)


def test_an_outage_mutes_what_was_undecided_and_what_follows_until_audio_is_handed_over_again():
    ledger = MuteLedger()
    end = hand_over(ledger, 0.0, 50)
    ledger.update([(0.2, 0.3, "phone")], 0.6)
    ledger.connection_lost()
    mutes, decided = ledger.decision(0.0, end + 5.0)
    assert (0.2, 0.3, "phone") in mutes and covers(mutes, 0.6, end) and covers(mutes, end, end + 5.0)
    assert not covers(mutes, 0.5, 0.6)
    assert decided == pytest.approx(end)
    again = hand_over(ledger, end + 1.0, 10)  # a new connection: its server starts with a new run
    mutes, decided = ledger.decision(end, again)
    assert covers(mutes, end, end + 1.0) and not covers(mutes, end + 1.0, end + 1.01) and decided == float("-inf")
    ledger.update([], end + 1.1)
    assert ledger.decision(end + 1.0, again)[1] == pytest.approx(end + 1.1)


def test_touching_intervals_of_one_kind_merge_and_other_kinds_stay_apart():
    ledger = MuteLedger()
    hand_over(ledger, 0.0, 100)
    ledger.update([(0.1, 0.2, "phone"), (0.2, 0.3, "phone"), (0.25, 0.4, "email"), (0.5, 0.6, "phone")], 1.0)
    assert ledger.decision(0.0, 1.0)[0] == [(0.1, 0.3, "phone"), (0.25, 0.4, "email"), (0.5, 0.6, "phone")]
    ledger.update([(0.15, 0.55, "phone")], 1.0)
    assert ledger.decision(0.0, 1.0)[0] == [(0.1, 0.6, "phone"), (0.25, 0.4, "email")]


def test_an_old_clocks_bleeps_do_not_land_on_the_new_clock():
    """A bleep at 30 s on the old clock must not bleep the new clock's 30 s, once the old audio has played."""
    ledger = MuteLedger()
    end = hand_over(ledger, 0.0, int(40 / P))
    ledger.update([(30.0, 30.5, "phone")], end)
    hand_over(ledger, 0.0, int((RUN_KEPT_S + 1) / P))  # the source restarted its clock
    assert ledger.decision(30.0, 30.5)[0] == []
