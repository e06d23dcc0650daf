"""Shared pieces of the SFU tests: a publisher on its own event loop, and Chromium viewers.

The tests run inside a network namespace (see scripts/sfu_netns.py): the test thread
enters it, and the threads and processes it starts (publisher loop, Playwright,
Chromium, the SFU) inherit it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import whip_client  # noqa: E402
from sfu_netns import Netns, SfuProcess, wait_until  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]

# A plain RTCPeerConnection WHEP player (no mediasoup-client), as any standard player would be.
WHEP_PLAYER = """async (url) => {
    const pc = new RTCPeerConnection();
    // Chromium decodes remote audio only for a track that plays somewhere.
    pc.ontrack = (event) => {
        const element = document.createElement(event.track.kind);
        element.muted = true;
        element.srcObject = new MediaStream([event.track]);
        document.body.appendChild(element);
        element.play();
    };
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((done) => {
        if (pc.iceGatheringState === 'complete') return done();
        pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && done();
    });
    const response = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/sdp' },
                                         body: pc.localDescription.sdp });
    if (response.status !== 201) return { status: response.status, text: await response.text() };
    await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() });
    window.whep = pc;
    return { status: 201, location: response.headers.get('Location') };
}"""

WHEP_STATS = """async () => {
    const out = {};
    (await window.whep.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp') out[s.kind] = { framesDecoded: s.framesDecoded, samples: s.totalSamplesReceived };
    });
    return out;
}"""


def require_prerequisites() -> None:
    """Fails, never skips, when the SFU tests cannot run here, and names what is missing.

    A skipped SFU test reads as a pass in a suite run by a user without root, so a
    missing prerequisite must turn the run red instead.
    """
    missing = []
    if os.geteuid() != 0:
        missing.append("root for network namespaces (run the tests as root, e.g. `sudo ./scripts/test.sh`)")
    for tool, package in (("ip", "iproute2"), ("node", "nodejs")):
        if shutil.which(tool) is None:
            missing.append(f"`{tool}` ({package}; scripts/setup.sh installs it)")
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (Debian's chromium; scripts/setup.sh installs it)")
    if missing:
        pytest.fail("the SFU tests cannot run: missing " + "; ".join(missing), pytrace=False)


@contextlib.contextmanager
def sfu_in_netns(name: str, cidr: str, env: dict[str, str]) -> Iterator[SfuProcess]:
    """An SFU with these settings in a namespace of its own, which the calling thread enters."""
    with Netns(name, cidr) as ns, ns.entered():
        process = SfuProcess.start(ns.ip, env=env)
        try:
            yield process
        finally:
            process.stop()


class PublisherThread(whip_client.BackgroundPublisher):
    """The tests' publisher: OBS-shaped x264 High profile + a tone, or aiortc's own VP8."""

    def publish(self, url: str, token: str, *, obs_shaped: bool = True,  # type: ignore[override]
                size: tuple[int, int] = (640, 360), obs_offer: str | None = None) -> whip_client.WhipPublisher:
        width, height = size
        if obs_shaped:
            def make_video():
                return whip_client.X264PacketTrack(whip_client.moving_pattern(width, height), width, height,
                                                   fps=30, bitrate=800_000, profile="high")
        else:
            def make_video():
                return whip_client.SyntheticVideoTrack(width, height, fps=30)
        return super().publish(url, token, make_video, whip_client.ToneAudioTrack, obs_shaped=obs_shaped,
                               obs_offer=obs_offer)

    def try_publish(self, url: str, token: str) -> int:
        """Publishes and returns 201, or the refusal status (e.g. 409)."""
        try:
            self.publish(url, token)
            return 201
        except whip_client.WhipError as error:
            return error.status


class Viewers:
    """Headless Chromium with one page per viewer, each playing /room/<room>."""

    def __init__(self, executable: str = CHROMIUM) -> None:
        from playwright.sync_api import sync_playwright

        # Playwright gives every launch a fresh temporary profile of its own.
        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(executable_path=executable, headless=True,
                                                         args=CHROMIUM_FLAGS)
        self.pages = []

    def __enter__(self) -> "Viewers":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self, url: str):
        page = self._browser.new_context().new_page()
        page.goto(url)
        self.pages.append(page)
        return page

    @staticmethod
    def stats(page) -> dict:
        return page.evaluate("window.privastream.stats()")

    def wait_decoding(self, page, frames: int = 30, timeout: float = 40.0) -> dict:
        """Waits until the page has decoded `frames` more video frames and some audio."""
        start = self.stats(page)
        base = (start.get("video") or {}).get("framesDecoded") or 0

        def decoding():
            s = self.stats(page)
            video, audio = s.get("video") or {}, s.get("audio") or {}
            ok = (s["status"] == "live" and (video.get("framesDecoded") or 0) >= base + frames
                  and (audio.get("totalSamplesReceived") or 0) > 0)
            return s if ok else None

        return wait_until(decoding, timeout, interval=0.5, what=f"{frames} decoded frames on {page.url}")

    @staticmethod
    def play_whep(page, url: str) -> dict:
        """Runs WHEP_PLAYER on `page` against `url`: {"status", "location"} or {"status", "text"}."""
        return page.evaluate(WHEP_PLAYER, url)

    @staticmethod
    def wait_whep_decoding(page, frames: int = 30, timeout: float = 30.0) -> dict:
        """Waits until the page's WHEP player has decoded more than `frames` video frames."""
        return wait_until(lambda: (s := page.evaluate(WHEP_STATS)).get("video", {}).get("framesDecoded", 0) > frames
                          and s, timeout, interval=0.5, what="WHEP frames decoded")

    def close_page(self, page) -> None:
        page.context.close()
        self.pages.remove(page)

    def close(self) -> None:
        for page in list(self.pages):
            self.close_page(page)
        self._browser.close()
        self._playwright.stop()
