"""The live wire protocol (inference_server/protocol.py) and the shared-memory rings (shm.py).

Fixtures in tests/fixtures/live/ are messages and a ring slot as a real session sent them,
plus truncated, bad-version and NaN variants.  Every fixture round-trips byte for byte; every
refusal has its exact message.
"""

import contextlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inference_server.errors import ProtocolError, StateError
from inference_server.protocol import (FORMAT_F32_PLANAR, FORMAT_RGBA8, MAX_CONTROL_BYTES, RING_HEADER_SIZE,
                                       ROLE_CLIENT, ROLE_SERVER, SLOT_HEADER_SIZE, Decision, FrameNotice, Hello,
                                       RingHeader, SlotHeader, check_nonce, decision_from_message, new_nonce,
                                       parse_message, proof_matches, read_state_file)
from inference_server.regions import KINDS
from inference_server.shm import SHM_DIR, RingReader, RingWriter, SlotOverwritten, reclaim_stale_segments

FIXTURES = Path(__file__).parent / "fixtures" / "live"
MESSAGES = ["hello.json", "challenge.json", "auth.json", "ring.json", "frame.json", "audio.json", "decision.json",
            "decision_failclosed.json", "mute.json", "heartbeat.json", "error.json"]
FIXTURE_TOKEN = "k3y-TOKEN-example"
"""The token the login fixtures' proofs were made with."""


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.mark.parametrize("name", MESSAGES)
def test_fixture_round_trip(name):
    data = load(name)
    assert bytes(parse_message(data)) == data


def test_hello_fields():
    msg = parse_message(load("hello.json"))
    assert isinstance(msg, Hello)
    assert (msg.source, msg.kind, msg.delay_s, msg.stream, msg.pid) == ("Webcam", "video", 1.0, "main", 4242)
    assert parse_message(load("auth.json")).settings.targets.faces is True


def test_login_fixtures_carry_proofs_of_the_token():
    """Both proofs are HMAC-SHA256 over the role and both nonces: known answers pin the construction,
    and neither proof verifies for the other role, another token or a replayed nonce."""
    hello, challenge, auth = (parse_message(load(n)) for n in ("hello.json", "challenge.json", "auth.json"))
    nonces = (hello.nonce, challenge.nonce)
    assert proof_matches(challenge.proof, FIXTURE_TOKEN, ROLE_SERVER, *nonces)
    assert proof_matches(auth.proof, FIXTURE_TOKEN, ROLE_CLIENT, *nonces)
    assert not proof_matches(challenge.proof, FIXTURE_TOKEN, ROLE_CLIENT, *nonces)
    assert not proof_matches(auth.proof, "another-token", ROLE_CLIENT, *nonces)
    assert not proof_matches(auth.proof, FIXTURE_TOKEN, ROLE_CLIENT, hello.nonce, new_nonce())
    assert FIXTURE_TOKEN.encode() not in b"".join(load(n) for n in ("hello.json", "challenge.json", "auth.json"))
    with pytest.raises(ProtocolError, match=r"the server nonce must be 32 lowercase hex digits \(got ''\)"):
        check_nonce("", "server")


def test_decision_carries_regions_not_text():
    decision = decision_from_message(parse_message(load("decision.json")))
    assert [r.kind for r in decision.regions] == ["face", "text"]
    assert decision.regions[0].box == (100.0, 80.0, 180.5, 190.0)
    assert decision.regions[1].label == "email" and decision.regions[1].origin == "tracked"
    assert not decision.fail_closed
    assert decision_from_message(parse_message(load("decision_failclosed.json"))).fail_closed


@pytest.mark.parametrize("data, message", [
    (load("bad_version.json"), "protocol version 2 is not supported (this side speaks 1)"),
    (load("truncated.json"), "control message is not JSON (JSONDecodeError)"),
    (load("nan_pts.json"), "control message is not JSON (ValueError)"),
    (b"[1, 2]", "control message must be a JSON object"),
    (b'{"v": 1, "type": "launch"}', "unknown message type 'launch'"),
    (b'{"v": 1, "type": "frame", "generation": 1, "slot": 0, "seq": 2}', "frame message lacks field 'frame_id'"),
    (b'{"v": 1, "type": "frame", "frame_id": true, "generation": 1, "slot": 0, "seq": 2}',
     "frame field 'frame_id' must be int (got bool)"),
    (b'{"v": 1, "type": "frame", "frame_id": "7", "generation": 1, "slot": 0, "seq": 2}',
     "frame field 'frame_id' must be int (got str)"),
    (b" " * (MAX_CONTROL_BYTES + 1), f"control message of {MAX_CONTROL_BYTES + 1} bytes exceeds {MAX_CONTROL_BYTES}"),
])
def test_refusals_say_why(data, message):
    with pytest.raises(ProtocolError) as err:
        parse_message(data)
    assert str(err.value) == message


def test_malformed_region_in_decision():
    msg = Decision(frame_id=3, regions=[{"kind": "face", "box": [1, 2, 3]}])
    with pytest.raises(ProtocolError, match=r"decision for frame 3 has a malformed region \(box needs 4 numbers\)"):
        decision_from_message(msg)


@pytest.mark.parametrize("region, why", [
    ('{"kind": "face", "box": [1e999, 0, 10, 10]}', "box must be a finite number (got inf)"),
    ('{"kind": "face", "box": [0, 0, 10, -1e999]}', "box must be a finite number (got -inf)"),
    ('{"kind": "face", "box": [0, 0, 10, 1' + "0" * 400 + ']}', "box must be a finite number (got 1000000000"),
    ('{"kind": "face", "box": [50, 0, 10, 10]}', "box [50.0, 0.0, 10.0, 10.0] is inverted or outside 0..8192"),
    ('{"kind": "face", "box": [0, 0, 9000, 10]}', "box [0.0, 0.0, 9000.0, 10.0] is inverted or outside 0..8192"),
    ('{"kind": "face", "box": [0, 0, 10, 10], "score": 1e999}', "score must be a finite number (got inf)"),
    ('{"kind": "alien", "box": [0, 0, 10, 10]}', f"kind 'alien' is not one of {', '.join(KINDS)}"),
    ('{"kind": "face", "box": {"x": 1}}', "box needs 4 numbers"),
])
def test_boxes_that_cannot_be_drawn_are_refused_at_the_edge(region, why):
    """A box the renderer cannot draw would leave the frame it should cover on screen: refused here,
    so the client decides that frame fail-closed."""
    msg = parse_message(f'{{"v": 1, "type": "decision", "frame_id": 3, "regions": [{region}]}}')
    with pytest.raises(ProtocolError) as err:
        decision_from_message(msg)
    assert str(err.value).startswith(f"decision for frame 3 has a malformed region ({why}")


def test_infinite_numbers_are_refused_in_every_float_field():
    """json reads 1e999 as infinity: a watermark at infinity would declare all later audio decided."""
    with pytest.raises(ProtocolError, match=r"^mute field 'decided_until' must be a finite number \(got inf\)$"):
        parse_message(b'{"v": 1, "type": "mute", "intervals": [], "decided_until": 1e999}')
    with pytest.raises(ProtocolError, match=r"^settings field 'delay_s' must be a finite number \(got -inf\)$"):
        parse_message(b'{"v": 1, "type": "settings", "settings": {}, "delay_s": -1e999}')


def test_ring_fixture_round_trip():
    data = load("ring_video_32x18.bin")
    ring = RingHeader.parse(data)
    assert (ring.kind, ring.slot_count, ring.slot_size) == (FORMAT_RGBA8, 1, 32 * 18 * 4)
    assert bytes(ring) == data[:RING_HEADER_SIZE]
    slot = SlotHeader.parse(data[RING_HEADER_SIZE:])
    slot.validate(ring)
    assert (slot.frame_id, slot.pts, slot.width, slot.height, slot.seq) == (120, 4.0, 32, 18, 242)
    assert bytes(slot) == data[RING_HEADER_SIZE:RING_HEADER_SIZE + SLOT_HEADER_SIZE]
    assert len(data) == ring.segment_size


@pytest.mark.parametrize("name, message", [
    ("ring_header_truncated.bin", "ring header is truncated (20 of 64 bytes)"),
    ("ring_header_bad_version.bin", "ring protocol version 2 is not supported (this side speaks 1)"),
])
def test_bad_ring_headers(name, message):
    with pytest.raises(ProtocolError) as err:
        RingHeader.parse(load(name))
    assert str(err.value) == message


def test_slot_geometry_must_match_payload():
    ring = RingHeader(1, FORMAT_RGBA8, 2, 1 << 20)
    with pytest.raises(ProtocolError, match=r"slot payload is 100 bytes, its geometry needs 2560"):
        SlotHeader(2, 1, 0.0, 0.0, width=32, height=20, payload_bytes=100).validate(ring)
    with pytest.raises(ProtocolError, match="exceeds the slot size"):
        SlotHeader(2, 1, 0.0, 0.0, width=1024, height=1024, payload_bytes=1 << 22).validate(ring)


def test_ring_write_read_video_and_resize():
    """A frame written by the client comes out bit-exact, also from a padded (strided) view as OBS maps it."""
    writer = RingWriter(FORMAT_RGBA8, 3, 64 * 48 * 4)
    reader = RingReader(writer.name)
    try:
        padded = np.random.default_rng(1).integers(0, 255, (48, 80, 4), dtype=np.uint8)
        frame = padded[:, :64]  # rows with a linesize larger than the width
        slot, seq = writer.write(frame, frame_id=7, pts=0.25, submitted=1.0)
        header, pixels = reader.read(slot, seq)
        assert (header.frame_id, header.pts, header.width, header.height) == (7, 0.25, 64, 48)
        np.testing.assert_array_equal(pixels, frame)
        small = frame[:10, :20].copy()  # a smaller frame reuses the same ring
        slot, seq = writer.write(small, frame_id=8, pts=0.3, submitted=1.0)
        np.testing.assert_array_equal(reader.read(slot, seq)[1], small)
    finally:
        reader.close()
        writer.close()


def test_overwritten_slot_is_detected():
    """A slot rewritten before the server read it must not be read as the announced frame."""
    writer = RingWriter(FORMAT_RGBA8, 2, 16 * 16 * 4)
    reader = RingReader(writer.name)
    try:
        frame = np.zeros((16, 16, 4), np.uint8)
        first = writer.write(frame, 1, 0.0, 0.0)
        writer.write(frame, 2, 0.1, 0.0)
        writer.write(frame, 3, 0.2, 0.0)  # back in slot 0
        with pytest.raises(SlotOverwritten, match=r"slot 0 holds seq 6, not 2"):
            reader.read(*first)
        with pytest.raises(ProtocolError, match=r"slot 5 is outside the ring \(0..1\)"):
            reader.read(5, 2)
    finally:
        reader.close()
        writer.close()


def test_audio_ring():
    writer = RingWriter(FORMAT_F32_PLANAR, 4, 2 * 1024 * 4)
    reader = RingReader(writer.name)
    try:
        planar = np.random.default_rng(2).standard_normal((2, 1024)).astype(np.float32)
        header, out = reader.read(*writer.write(planar, 0, 3.5, 0.0, sample_rate=48000))
        assert (header.channels, header.n_samples, header.sample_rate, header.pts) == (2, 1024, 48000, 3.5)
        np.testing.assert_array_equal(out, planar)
    finally:
        reader.close()
        writer.close()


def test_segments_are_user_only_and_unlinked_on_close():
    writer = RingWriter(FORMAT_RGBA8, 1, 4096)
    path = Path(SHM_DIR) / writer.name.lstrip("/")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    writer.close()
    writer.close()
    assert not path.exists()


def test_attach_refuses_foreign_names_and_open_modes():
    with pytest.raises(ProtocolError, match=r"not a PrivaStream segment name: '/etc/passwd'"):
        RingReader("/etc/passwd")
    writer = RingWriter(FORMAT_RGBA8, 1, 4096)
    try:
        os.chmod(Path(SHM_DIR) / writer.name.lstrip("/"), 0o644)
        with pytest.raises(ProtocolError, match=r"is not user-only \(mode 0o644\)"):
            RingReader(writer.name)
    finally:
        writer.close()


def test_segments_of_a_killed_process_are_reclaimed():
    """A client killed with -9 cannot unlink its ring; the next start must."""
    code = ("import os, signal; from inference_server.shm import RingWriter; from inference_server.protocol "
            "import FORMAT_RGBA8; w = RingWriter(FORMAT_RGBA8, 2, 1 << 20); print(w.name, flush=True); "
            "os.kill(os.getpid(), signal.SIGKILL)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    name = out.stdout.strip()
    assert (Path(SHM_DIR) / name.lstrip("/")).exists()
    assert name in reclaim_stale_segments()
    assert not (Path(SHM_DIR) / name.lstrip("/")).exists()


def run_with_a_small_dev_shm(mib: int, code: str) -> subprocess.CompletedProcess:
    """``python -c code`` in a mount namespace whose /dev/shm is a real tmpfs of ``mib`` MiB that
    nobody else sees."""
    namespace = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "--map-root-user", "--mount"]
    script = f"mount -t tmpfs -o size={mib}m tmpfs {SHM_DIR} && exec {sys.executable} -c \"$0\""
    return subprocess.run([*namespace, "sh", "-c", script, code], capture_output=True, text=True,
                          cwd=Path(__file__).parents[1], timeout=120)


def test_a_full_dev_shm_is_a_clear_error_not_a_crash():
    """Docker gives containers a 64 MB /dev/shm.  A ring created sparse, bigger than what is left,
    kills its writer (OBS) with SIGBUS on the first page the tmpfs cannot supply; a ring must
    reserve its memory at creation and say when there is none."""
    code = ("import numpy as np\n"
            "from inference_server.errors import StateError\n"
            "from inference_server.protocol import FORMAT_RGBA8\n"
            "from inference_server.shm import RingWriter\n"
            "try:\n"
            "    ring = RingWriter(FORMAT_RGBA8, 6, 1 << 20)\n"
            "    for i in range(6):\n"
            "        ring.write(np.zeros((512, 512, 4), np.uint8), i, i / 30, 0.0)\n"
            "    print('wrote 6 MiB into a 4 MiB /dev/shm')\n"
            "except StateError as exc:\n"
            "    print(exc)\n")
    out = run_with_a_small_dev_shm(4, code)
    assert out.returncode == 0, f"the writer died (status {out.returncode}): {out.stderr[-500:]}"
    assert re.fullmatch(r"/dev/shm has no room for a 6\.0 MiB ring \(4\.0 MiB free\); enlarge it "
                        r"\(Docker: --shm-size=512m\) or close other users of it\n", out.stdout), out.stdout


def test_a_client_with_a_full_dev_shm_covers_and_says_why(tmp_path):
    """The same through the real client and server, in a namespace whose /dev/shm (16 MiB) cannot
    hold a 1080p ring (6 slots of 8 MiB): the client, which runs inside OBS, never crashes; each
    frame is decided fail-closed, and the status names the problem."""
    code = ("import numpy as np\n"
            "from pathlib import Path\n"
            "from inference_server.client import LiveClient\n"
            "from privastream_testkit.processes import wait_until\n"
            "from privastream_testkit.server import TARGETS_OFF, ServerProcess\n"
            f"server = ServerProcess(Path({str(tmp_path / 'server.json')!r}), '--no-preload').start()\n"
            "print(server.proc.pid, flush=True)\n"
            "client = LiveClient(source='cam', settings=TARGETS_OFF, state_file=server.state_file)\n"
            "wait_until(lambda: client.status.state == 'connected', 10.0)\n"
            "frame = np.zeros((1080, 1920, 4), np.uint8)\n"
            "print(*(client.submit_frame(i, i / 30, frame) for i in range(3)))\n"
            "print(client.frame_decision(2).fail_closed, client.frame_decision(2).reason)\n"
            "print(client.status.state, client.status.message)\n"
            "client.close()\n"
            "server.stop()\n")
    out = run_with_a_small_dev_shm(16, code)
    server_pid, _, lines = out.stdout.partition("\n")
    if out.returncode != 0 and server_pid.isdigit():  # a client that died left its server behind
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(server_pid), signal.SIGKILL)
    assert out.returncode == 0, f"the client died (status {out.returncode}): {out.stderr[-500:]}"
    no_room = "/dev/shm has no room for a 48.0 MiB ring (16.0 MiB free)"
    assert lines.splitlines() == [
        "False False False",
        f"True could not hand the frame over ({no_room}; enlarge it (Docker: --shm-size=512m) or close other "
        "users of it)",
        f"failclosed {no_room}; enlarge it (Docker: --shm-size=512m) or close other users of it"], out.stdout


def test_state_file_must_be_user_only(tmp_path):
    path = tmp_path / "server.json"
    path.write_text(json.dumps({"port": 1234, "token": "t"}))
    os.chmod(path, 0o600)
    assert read_state_file(path) == (1234, "t")
    os.chmod(path, 0o644)
    with pytest.raises(StateError, match="is readable by other users; refusing its token"):
        read_state_file(path)
    with pytest.raises(StateError, match=r"no inference server is running \(.*missing.json does not exist\)"):
        read_state_file(tmp_path / "missing.json")


def test_protocol_module_needs_only_stdlib_numpy():
    """OBS's embedded Python has the venv on sys.path but must not pull in the engine."""
    code = ("import sys; import inference_server.client; "
            "bad = [m for m in ('onnxruntime', 'cv2', 'faster_whisper', 'spacy', 'psutil') if m in sys.modules]; "
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert out.stdout.strip() == "[]", out.stderr


def test_frame_notice_is_small():
    assert len(bytes(FrameNotice(frame_id=10**9, generation=3, slot=5, seq=10**9))) < 120
