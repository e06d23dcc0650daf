"""Shared pieces of the SFU tests: a publisher on its own event loop, and Chromium viewers.

The tests run inside a network namespace (see scripts/sfu_netns.py): the test thread
enters it, and the threads and processes it starts (publisher loop, Playwright,
Chromium, the SFU) inherit it.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import whip_client  # noqa: E402
from sfu_netns import wait_until  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


class PublisherThread:
    """A WHIP publisher on an asyncio loop of its own, so the test thread stays synchronous."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.publisher: whip_client.WhipPublisher | None = None

    def _call(self, coro, timeout: float = 60.0):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def publish(self, url: str, token: str, *, obs_shaped: bool = True, size: tuple[int, int] = (640, 360),
                audio: bool = True) -> whip_client.WhipPublisher:
        async def start() -> whip_client.WhipPublisher:
            width, height = size
            if obs_shaped:
                # What OBS sends: x264 High profile, signalled as 42e01f.
                video = whip_client.X264PacketTrack(whip_client.moving_pattern(width, height), width, height,
                                                    fps=30, bitrate=800_000, profile="high")
            else:
                video = whip_client.SyntheticVideoTrack(width, height, fps=30)
            return await whip_client.publish(url, token, video, whip_client.ToneAudioTrack() if audio else None,
                                             obs_shaped=obs_shaped)

        self.publisher = self._call(start())
        return self.publisher

    def try_publish(self, url: str, token: str) -> int:
        """Publishes and returns 201, or the refusal status (e.g. 409)."""
        try:
            self.publish(url, token)
            return 201
        except whip_client.WhipError as error:
            return error.status

    def stop(self, delete: bool = True) -> None:
        if self.publisher:
            self._call(self.publisher.close(delete=delete))
            self.publisher = None

    def shutdown(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class Viewers:
    """Headless Chromium with one page per viewer, each playing /room/<room>."""

    def __init__(self, executable: str = CHROMIUM) -> None:
        from playwright.sync_api import sync_playwright

        # Playwright gives every launch a fresh temporary profile of its own.
        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(executable_path=executable, headless=True,
                                                         args=CHROMIUM_FLAGS)
        self.pages = []

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

    def close_page(self, page) -> None:
        page.context.close()
        self.pages.remove(page)

    def close(self) -> None:
        for page in list(self.pages):
            self.close_page(page)
        self._browser.close()
        self._playwright.stop()
