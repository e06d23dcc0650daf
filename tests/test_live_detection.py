"""The live path with the real detectors: a face streamed through the server is covered on every frame.

Real CenterFace (and the scene-cut check) in the real server process; text detection is off
here to keep the test short on 2 cores (tests/test_text.py covers OCR, scripts/bench_live.py
the full load).
"""

import os
import signal
import time

import numpy as np
import pytest
import skimage.data

from inference_server.client import LiveClient
from inference_server.detect_worker import NICE
from privastream_testkit.boxes import inside
from privastream_testkit.processes import wait_until
from privastream_testkit.server import ServerProcess

ASTRONAUT_FACE = (175, 70, 272, 188)  # x0, y0, x1, y1 in skimage's astronaut()
FACES_ONLY = {"targets": {"faces": True, "plates": False, "text": False, "speech": False}}


@pytest.fixture
def server(tmp_path):
    proc = ServerProcess(tmp_path / "server.json").start(timeout=120)
    yield proc
    proc.stop()


class Camera:
    """The astronaut, drifting a little (so tracking has something to follow), at 30 fps."""

    def __init__(self, client: LiveClient):
        rgb = skimage.data.astronaut()
        self.rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
        self.client = client
        self.frame_id = 0

    def send(self, n: int) -> None:
        for _ in range(n):
            i = self.frame_id
            self.client.submit_frame(i, i / 30, np.roll(self.rgba, i % 8, axis=1))
            self.frame_id += 1
            time.sleep(1 / 30)

    def warm_up(self) -> None:
        """The face model may still be loading: frames meanwhile fail closed."""
        while self.frame_id < 300:
            self.send(15)
            d = self.client.frame_decision(self.frame_id - 30) if self.frame_id >= 30 else None
            if d is not None and not d.fail_closed:
                return

    def face_at(self, i: int) -> tuple[int, int, int, int]:
        shift = i % 8
        return (ASTRONAUT_FACE[0] + shift, ASTRONAUT_FACE[1], ASTRONAUT_FACE[2] + shift, ASTRONAUT_FACE[3])

    def vouched_frames_cover_the_face(self, first: int) -> list[int]:
        """Asserts every decision not fail-closed covers the face; returns the fail-closed frame ids."""
        closed = []
        for i in range(first, self.frame_id):
            d = self.client.frame_decision(i)
            assert d is not None, i
            if d.fail_closed:
                closed.append(i)
                continue
            faces = [r.box for r in d.regions if r.kind == "face"]
            assert any(inside(self.face_at(i), box) for box in faces), (i, faces)
        return closed


@pytest.fixture
def cam(server):
    with LiveClient(source="cam", delay_s=1.0, settings=FACES_ONLY, state_file=server.state_file) as client:
        wait_until(lambda: client.status.state == "connected", 5.0)
        camera = Camera(client)
        camera.warm_up()
        yield camera


def test_streamed_face_is_covered_on_every_frame_before_its_deadline(cam):
    first = cam.frame_id
    cam.send(60)
    wait_until(lambda: cam.client.frame_decision(cam.frame_id - 1) is not None, 1.5)
    assert cam.vouched_frames_cover_the_face(first) == []
    assert cam.client.status.detections.get("faces", 0) > 1


def test_killed_detection_worker_fails_closed_and_is_restarted(server, cam):
    """kill -9 of the face worker mid-stream: no frame goes out uncovered, the server restarts it, nothing raises."""
    first = cam.frame_id
    os.kill(workers(server)["faces"]["pid"], signal.SIGKILL)
    cam.send(150)
    wait_until(lambda: cam.client.frame_decision(cam.frame_id - 1) is not None, 1.5)
    # Frames around the gap are either interpolated across it (the restart took less than D) or fail closed.
    closed = cam.vouched_frames_cover_the_face(first)
    assert not closed or closed[-1] < cam.frame_id - 30, "the restarted worker vouches for the last second again"
    assert workers(server)["faces"]["restarts"] == 1
    assert cam.client.status.state in ("connected", "late")


def test_detection_workers_run_nicer_than_the_server(server):
    """Detection is what slows down when the CPU is short, not the speech decoder nor OBS."""
    wanted = min(19, os.getpriority(os.PRIO_PROCESS, server.proc.pid) + NICE)

    def niced() -> bool:
        pids = [w["pid"] for w in workers(server).values()]
        return all(pids) and all(os.getpriority(os.PRIO_PROCESS, pid) == wanted for pid in pids)
    wait_until(niced, 60.0, interval=0.2)


def workers(server) -> dict:
    return server.stats()["server"]["workers"]
