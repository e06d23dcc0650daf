"""The live path with the real detectors: a face streamed through the server is covered on every frame.

Real CenterFace (and the scene-cut check) in the real server process; text detection is off
here to keep the test short on 2 cores (tests/test_text.py covers OCR, scripts/bench_live.py
the full load).
"""

import time

import numpy as np
import pytest
import skimage.data

from inference_server.client import LiveClient

from live_helpers import ServerProcess, wait_for

ASTRONAUT_FACE = (175, 70, 272, 188)  # x0, y0, x1, y1 in skimage's astronaut()
FACES_ONLY = {"targets": {"faces": True, "plates": False, "text": False, "speech": False}}


@pytest.fixture
def server(tmp_path):
    proc = ServerProcess(tmp_path / "server.json").start(timeout=120)
    yield proc
    proc.stop()


def covered(inner, outer) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3]


def test_streamed_face_is_covered_on_every_frame_before_its_deadline(server):
    rgb = skimage.data.astronaut()
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    with LiveClient(source="cam", delay_s=1.0, settings=FACES_ONLY, state_file=server.state_file) as client:
        wait_for(lambda: client.status.state == "connected", 5.0)
        frame_id = 0

        def send(n):
            nonlocal frame_id
            for _ in range(n):
                # Drift the picture a little so tracking has something to follow.
                client.submit_frame(frame_id, frame_id / 30, np.roll(rgba, frame_id % 8, axis=1))
                frame_id += 1
                time.sleep(1 / 30)

        # Warm-up: the face model loads on the first detection; frames meanwhile fail closed.
        while frame_id < 300:
            send(15)
            d = client.frame_decision(frame_id - 30) if frame_id >= 30 else None
            if d is not None and not d.fail_closed:
                break
        first = frame_id
        send(60)
        wait_for(lambda: client.frame_decision(frame_id - 1) is not None, 1.5)
        for i in range(first, frame_id):
            d = client.frame_decision(i)
            assert d is not None and not d.fail_closed, (i, d)
            shift = i % 8
            face = (ASTRONAUT_FACE[0] + shift, ASTRONAUT_FACE[1], ASTRONAUT_FACE[2] + shift, ASTRONAUT_FACE[3])
            faces = [r.box for r in d.regions if r.kind == "face"]
            assert any(covered(face, box) for box in faces), (i, faces)
        assert client.status.detections.get("faces", 0) > 1
