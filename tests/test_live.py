"""The live path end to end with the real server process: transport, security, reliability.

Detection is switched off in most of these tests (targets all false) so that they test the
transport and the fail-closed timing, not the models; test_live_detection.py runs the models.
"""

import asyncio
import json
import random
import threading
import time

import numpy as np
import pytest
from websockets.asyncio.client import connect

from inference_server.client import LiveClient
from inference_server.models import CACHE_ENV
from inference_server.protocol import CONTROL_PATH, PROTOCOL_VERSION
from privastream_testkit.processes import wait_until
from privastream_testkit.server import TARGETS_OFF, ServerProcess, login

SPEECH_ON = {"targets": {"faces": False, "plates": False, "text": False, "speech": True}}


@pytest.fixture
def server(tmp_path):
    proc = ServerProcess(tmp_path / "server.json", "--no-preload").start()
    yield proc
    proc.stop()


@pytest.fixture
def speechless_server(tmp_path, monkeypatch):
    """A real server whose model cache is empty: the recogniser cannot load, so speech redaction
    fails and every packet it is handed is muted ("failclosed") at once."""
    (tmp_path / "no-models").mkdir()
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "no-models"))
    proc = ServerProcess(tmp_path / "server.json", "--no-preload").start()
    yield proc
    proc.stop()


def client_for(server, **kw) -> LiveClient:
    kw.setdefault("settings", TARGETS_OFF)
    client = LiveClient(state_file=server.state_file, **kw)
    wait_until(lambda: client.status.state == "connected", 5.0)
    return client


def stream(client, first_id: int, count: int, size=(360, 640), fps: float = 30.0) -> list[bool]:
    frame = np.full((*size, 4), 128, np.uint8)
    accepted = []
    for i in range(first_id, first_id + count):
        accepted.append(client.submit_frame(i, i / fps, frame))
        time.sleep(1 / fps)
    return accepted


def test_every_frame_gets_its_decision_before_the_deadline(server):
    with client_for(server, source="cam", delay_s=0.5) as client:
        assert all(stream(client, 0, 45))
        wait_until(lambda: client.frame_decision(44) is not None, 1.0)
        decisions = [client.frame_decision(i) for i in range(45)]
        assert all(d is not None and not d.fail_closed and d.regions == [] for d in decisions), \
            [(i, d and d.reason) for i, d in enumerate(decisions) if d is None or d.fail_closed]
        status = client.status
        assert status.state == "connected" and 0 < status.latency_ms < 500 and status.fps > 10


def test_frame_size_change_mid_stream(server):
    """OBS sources change size (a window capture resized): a bigger frame gets a new ring."""
    with client_for(server, source="resize") as client:
        assert all(stream(client, 0, 5, size=(180, 320)))
        assert all(stream(client, 5, 5, size=(1080, 1920)))
        assert all(stream(client, 10, 5, size=(90, 160)))
        wait_until(lambda: client.frame_decision(14) is not None, 1.0)
        assert all(not client.frame_decision(i).fail_closed for i in range(15)), \
            [(i, client.frame_decision(i).reason) for i in range(15)]


def test_two_clients_at_once(server):
    with client_for(server, source="a") as a, client_for(server, source="b", delay_s=0.7) as b:
        threads = [threading.Thread(target=stream, args=(c, 0, 30)) for c in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for c in (a, b):
            wait_until(lambda: c.frame_decision(29) is not None, 1.0)
            assert all(not c.frame_decision(i).fail_closed for i in range(30))
        stats = server.stats()
        assert sorted(s["source"] for s in stats["sessions"]) == ["a", "b"]
        assert all(s["frames_out"] == 30 for s in stats["sessions"])


def test_kill9_fails_closed_within_200ms_and_restart_recovers(server, tmp_path):
    """A dead server is noticed within 200 ms; every frame it cannot vouch for is fail-closed;
    the same client recovers by itself when a server comes back."""
    client = client_for(server, source="cam", delay_s=2.0)
    frame = np.zeros((360, 640, 4), np.uint8)
    assert all(stream(client, 0, 10))
    wait_until(lambda: client.frame_decision(9) is not None, 1.0)
    # Frames in flight when the server dies: their deadline is 2 s away, yet they must fail closed at once.
    for i in range(10, 13):
        client.submit_frame(i, i / 30, frame)
    server.kill9()
    killed = time.monotonic()
    wait_until(lambda: client.status.state == "failclosed", 1.0, interval=0.001)
    assert time.monotonic() - killed < 0.2
    assert all(client.frame_decision(i) is not None and client.frame_decision(i).fail_closed for i in range(10, 13))
    assert "covering everything" in client.status.message
    # While the server is down frames are refused and fail-closed, never left undecided.
    assert client.submit_frame(13, 13 / 30, frame) is False
    assert client.frame_decision(13).fail_closed
    server.start()
    wait_until(lambda: client.status.state == "connected", 5.0)
    assert all(stream(client, 20, 10))
    wait_until(lambda: client.frame_decision(29) is not None, 1.0)
    assert not client.frame_decision(29).fail_closed
    client.close()
    client.close()


def test_audio_speech_off_is_decided_and_outage_mutes(server):
    with client_for(server, source="mic", kind="audio") as mic:
        packet = np.zeros((2, 1024), np.float32)
        for i in range(20):
            assert mic.submit_audio(i * 1024 / 48000, packet)
        end = 20 * 1024 / 48000
        wait_until(lambda: mic.audio_decision(0, end)[1] >= end - 1e-6, 1.0)
        assert mic.audio_decision(0, end)[0] == []
        server.kill9()
        wait_until(lambda: mic.status.state == "failclosed", 0.5)
        mutes, decided = mic.audio_decision(end, end + 1.0)
        assert decided == pytest.approx(end) and len(mutes) == 1
        assert mutes[0][0] == pytest.approx(end) and mutes[0][1:] == (end + 1.0, "failclosed")


def test_speech_on_without_a_recogniser_mutes_everything(speechless_server):
    """Speech redaction requested but not available must mute, never pass speech through."""
    with client_for(speechless_server, source="mic", kind="audio", settings=SPEECH_ON) as mic:
        assert mic.submit_audio(1.0, np.zeros((1, 4800), np.float32))
        wait_until(lambda: mic.audio_decision(1.0, 1.1)[1] >= 1.1 - 1e-6, 20.0)
        assert mic.audio_decision(1.0, 1.1)[0] == [(1.0, 1.1, "failclosed")]


PACKET_S = 1024 / 48000


def feed_audio(mic: LiveClient, pts: float, packets: int) -> float:
    """Hand over ``packets`` silent packets from ``pts`` on; returns the pts after the last one."""
    packet = np.zeros((1, 1024), np.float32)
    for i in range(packets):
        assert mic.submit_audio(pts + i * PACKET_S, packet)
    return pts + packets * PACKET_S


def exposed(mic: LiveClient, start: float, end: float) -> float:
    """Seconds of [start, end) the client calls decided and does not mute: what the filter plays as it is."""
    mutes, decided = mic.audio_decision(start, end)
    edges = sorted({start, min(max(decided, start), end)} | {min(max(x, start), end) for s, e, _ in mutes
                                                              for x in (s, e)})
    return sum(b - a for a, b in zip(edges, edges[1:])
               if b <= decided and not any(s <= a and b <= e for s, e, _ in mutes))


def test_audio_after_a_clock_reset_is_muted_until_the_server_decides_it(speechless_server):
    """A media source restarting sends the audio clock back.  The server must take the new clock's
    packets (refused as out of order, nothing would mute them), and the client's decided mark must
    follow the real timeline (a mark that only moves forward lets the old clock's 100.9 s vouch for
    the new clock's 5.0-5.9 s, which the server never heard)."""
    with client_for(speechless_server, source="mic", kind="audio", settings=SPEECH_ON) as mic:
        first = feed_audio(mic, 100.0, 40)
        wait_until(lambda: mic.audio_decision(100.0, first)[1] >= first - 1e-6, 20.0)
        second = feed_audio(mic, 5.0, 40)
        time.sleep(0.5)
        assert exposed(mic, 5.0, second) == 0.0, mic.audio_decision(5.0, second)
        # The mark follows the new clock: the server decides (here: mutes) it.
        wait_until(lambda: mic.audio_decision(5.0, second)[1] >= second - 1e-6, 5.0)
        assert exposed(mic, 5.0, second) == 0.0 and exposed(mic, 100.0, first) == 0.0


def test_one_timestamp_far_ahead_does_not_vouch_for_the_audio_after_it(speechless_server):
    """One packet stamped far in the future, then the clock carries on: the mark must come back with it."""
    with client_for(speechless_server, source="mic", kind="audio", settings=SPEECH_ON) as mic:
        first = feed_audio(mic, 100.0, 40)
        wait_until(lambda: mic.audio_decision(100.0, first)[1] >= first - 1e-6, 20.0)
        feed_audio(mic, 100_000.0, 1)
        second = feed_audio(mic, first + PACKET_S, 40)
        time.sleep(0.5)
        assert exposed(mic, first, second) == 0.0, mic.audio_decision(first, second)
        wait_until(lambda: mic.audio_decision(first + PACKET_S, second)[1] >= second - 1e-6, 5.0)
        assert exposed(mic, 100.0, second) == 0.0


def test_a_long_outage_keeps_the_audio_callback_fast(server):
    """During an hour without a server every packet is muted; the mute list a query walks must not
    grow with it (one interval per packet is ~5 ms per OBS audio callback after an hour)."""
    mic = client_for(server, source="mic", kind="audio")
    try:
        feed_audio(mic, 0.0, 10)
        server.kill9()
        wait_until(lambda: mic.status.state == "failclosed", 1.0)
        packet = np.zeros((2, 1024), np.float32)
        hour = int(3600 / PACKET_S)
        for i in range(10, 10 + hour):
            mic.submit_audio(i * PACKET_S, packet)
        end = (10 + hour) * PACKET_S
        took = []
        for _ in range(50):
            t0 = time.perf_counter()
            mutes, _ = mic.audio_decision(end - 3.0, end - 3.0 + PACKET_S)
            took.append(time.perf_counter() - t0)
        assert mutes and mutes[0][0] <= end - 3.0 and mutes[-1][1] >= end - 3.0 + PACKET_S
        assert sorted(took)[25] < 0.0005, f"median query {sorted(took)[25] * 1000:.2f} ms"
    finally:
        mic.close()


def decision_delays(cam: LiveClient, mic: LiveClient, desktop: LiveClient, frames: int) -> list[float]:
    """Seconds from submitting each of ``frames`` frames (30 fps, stamped with the time since the start)
    to its decision, while the microphone's audio is decided 1 s behind the frames (a recogniser's lag)
    and the desktop audio 1 s ahead of them."""
    frame, start = np.zeros((90, 160, 4), np.uint8), time.monotonic()
    sent: dict[int, float] = {}
    took: dict[int, float] = {}
    mic_pts, desk_pts, packet = -1.0, 0.0, np.zeros((1, 1024), np.float32)
    while len(took) < frames:
        now = time.monotonic() - start
        while mic_pts < now - 1.0:
            mic.submit_audio(mic_pts, packet)
            mic_pts += PACKET_S
        while desk_pts < now + 1.0:
            desktop.submit_audio(desk_pts, packet)
            desk_pts += PACKET_S
        if len(sent) < frames and len(sent) / 30 <= now:
            assert cam.submit_frame(len(sent), len(sent) / 30, frame)
            sent[len(sent)] = time.monotonic()
        for i in sent.keys() - took.keys():
            if cam.frame_decision(i) is not None:
                took[i] = time.monotonic() - sent[i]
        time.sleep(0.002)
    return [took[i] for i in sorted(took)]


@pytest.mark.parametrize("linked", [None, ["Desktop Audio"]])
def test_mouth_blur_waits_for_the_audio_sessions_it_follows(server, linked):
    """Mouth blur holds a frame back until the audio is decided past it, so a bleep's mouth can be
    covered.  With a microphone and desktop audio on one stream, a frame must not go out because the
    desktop audio (decided ahead) is past it while the microphone's bleeps are unknown.  By default
    a video session follows every audio session of its stream and waits for the slowest; one that
    names its audio sources (here: only the desktop audio) waits for those alone."""
    video = {**TARGETS_OFF, "mouth_blur": True, **({"mouth_audio_sources": linked} if linked else {})}
    with client_for(server, source="Mic/Aux", kind="audio") as mic, \
            client_for(server, source="Desktop Audio", kind="audio") as desktop, \
            client_for(server, source="Webcam", delay_s=1.0, settings=video) as cam:
        took = decision_delays(cam, mic, desktop, 15)
    if linked:
        assert max(took) < 0.5, took  # the desktop audio is decided past every frame
    else:
        assert min(took) > 0.8, took  # the microphone is not: held until the deadline


def test_wrong_token_is_refused(server):
    """A client with another token cannot log in: its own check of the server's proof fails first
    (it cannot tell a stale token from an impostor), and the server refuses a wrong proof."""
    client = LiveClient(source="intruder", port=server.port, token="not-the-token", settings=TARGETS_OFF)
    try:
        wait_until(lambda: "cannot prove that it knows the token" in client.status.message, 3.0)
        assert client.status.state != "connected"
        assert client.submit_frame(0, 0.0, np.zeros((8, 8, 4), np.uint8)) is False
        assert client.frame_decision(0).fail_closed
    finally:
        client.close()
    replies = asyncio.run(_raw_session(server.port, "bad-token", []))
    assert replies[0]["type"] == "error" and replies[0]["code"] == "auth" and replies[0]["fatal"]
    assert replies[0]["message"].startswith("wrong token")
    stats = server.stats()
    assert stats["server"]["refused"] >= 2 and stats["sessions"] == []


FUZZ_MESSAGES = [
    b"\x00\xff garbage",
    b"{}",
    b'{"v": 99, "type": "frame"}',
    json.dumps({"v": PROTOCOL_VERSION, "type": "frame", "frame_id": 5, "generation": 1, "slot": 0, "seq": 2}),
    json.dumps({"v": PROTOCOL_VERSION, "type": "ring", "name": "/etc/passwd", "generation": 1}),
    json.dumps({"v": PROTOCOL_VERSION, "type": "ring", "name": "/psv0_1_00000000", "generation": 1}),
    json.dumps({"v": PROTOCOL_VERSION, "type": "decision", "frame_id": 1}),
    json.dumps({"v": PROTOCOL_VERSION, "type": "settings", "settings": {}, "delay_s": 1e9}),
    json.dumps({"v": PROTOCOL_VERSION, "type": "audio", "generation": 1, "slot": 0, "seq": 2}),
    b"x" * 100_000,
]


def test_fuzzed_control_messages_get_error_replies_and_the_server_stays_up(server):
    rng = random.Random(4)
    messages = FUZZ_MESSAGES + [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300))) for _ in range(40)]
    replies = asyncio.run(_raw_session(server.port, server.token, messages))
    assert replies[0]["type"] == "welcome"
    errors = [r for r in replies if r["type"] == "error"]
    assert len(errors) == len(messages) and not any(e["fatal"] for e in errors)
    assert "no ring of generation 1 was announced" in errors[3]["message"]
    assert "not a PrivaStream segment name" in errors[4]["message"]
    assert "exceeds 65536" in errors[-41]["message"]
    # The server is still serving real clients.
    with client_for(server, source="after-fuzz") as client:
        assert all(stream(client, 0, 5))
        wait_until(lambda: client.frame_decision(4) is not None, 1.0)


def test_out_of_order_frames_are_refused():
    """Checked on the session directly: frame ids must increase."""
    from inference_server.errors import ProtocolError
    from inference_server.protocol import FrameNotice
    from inference_server.server import VideoSession

    session = VideoSession.__new__(VideoSession)
    session.last_frame_id = 7
    with pytest.raises(ProtocolError, match=r"frame 5 is out of order \(last was 7\)"):
        session.handle(FrameNotice(frame_id=5, generation=1, slot=0, seq=2))


def test_a_session_takes_only_its_own_kind_of_media():
    """Checked on the sessions directly: a video session refuses audio notices, an audio session frames."""
    from inference_server.errors import StateError
    from inference_server.protocol import AudioNotice, FrameNotice
    from inference_server.server import AudioSession, VideoSession

    with pytest.raises(StateError, match="a video session cannot take audio"):
        VideoSession.__new__(VideoSession).handle(AudioNotice(generation=1, slot=0, seq=2))
    with pytest.raises(StateError, match="an audio session cannot take frames"):
        AudioSession.__new__(AudioSession).handle(FrameNotice(frame_id=1, generation=1, slot=0, seq=2))


async def _raw_session(port: int, token: str, messages) -> list[dict]:
    """Speak the protocol by hand: log in, then send each message; collect every non-heartbeat reply."""
    async with connect(f"ws://127.0.0.1:{port}{CONTROL_PATH}", max_size=None) as ws:
        replies = [await login(ws, token)]
        if replies[0].get("fatal"):
            return replies
        for m in messages:
            await ws.send(m)
            while True:
                try:
                    reply = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
                except (asyncio.TimeoutError, Exception):
                    return replies
                if reply["type"] != "heartbeat":
                    replies.append(reply)
                    break
            if replies and replies[-1].get("fatal"):
                return replies
    return replies
