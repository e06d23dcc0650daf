"""A WHIP (RFC 9725) publisher on aiortc: the tests', the benchmark's and the demo's.

API (asyncio):

    publisher = await publish(url, token, video_track, audio_track, obs_shaped=True)
    ...                                   # media flows while the event loop runs
    await publisher.close()               # DELETE the WHIP resource, close the peer connection

`url` is the WHIP endpoint (http://host:port/whip/<room>), `token` the SFU's publish
token (sent as `Authorization: Bearer`). Tracks are aiortc MediaStreamTracks; either
may be None. `publish()` retries a connection that does not reach "connected"
(about 1 in 12 aiortc connections stall in ICE here) and raises `WhipError` with the
server's status and message when the SFU refuses the offer.

`obs_shaped=True` rewrites the offer the way OBS 30+ sends it (libdatachannel):
one H.264 codec, packetization-mode=1, profile-level-id=42e01f, on payload type 96,
and Opus on 111, no RTX. With False, aiortc's own offer goes out (VP8 first).
`obs_offer=` an offer OBS sends (tests/fixtures/obs_whip): that very text goes out,
with only this peer connection's ICE credentials, fingerprint and SSRCs put in.

Synchronous code (the demo, the tests) can use `BackgroundPublisher`, which runs
the same on an event loop thread of its own:

    bg = BackgroundPublisher()
    bg.publish(url, token, video_track, audio_track)     # blocks until connected
    bg.stop(delete=True); bg.shutdown()

Tracks:
    SyntheticVideoTrack(width, height, fps)         raw frames: aiortc encodes them
    X264PacketTrack(frames, width, height, fps, bitrate, profile="high")
        pre-encoded H.264 like OBS's x264 (High profile, no B-frames, 1 s keyframes);
        `frames` is a callable(index) -> HxWx3 uint8 RGB numpy array
    ToneAudioTrack(frequency)                       a 48 kHz sine as Opus

Command line: python scripts/whip_client.py http://host:8080/whip/demo --token T --seconds 20
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import re
import threading
import time
from typing import Callable

import urllib.error
import urllib.parse
import urllib.request

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AUDIO_PTIME, VIDEO_CLOCK_RATE, VIDEO_TIME_BASE

logger = logging.getLogger("privastream.whip")

OBS_VIDEO_PT = 96
OBS_AUDIO_PT = 111


class WhipError(RuntimeError):
    """The WHIP server refused the offer, or the connection never came up."""

    def __init__(self, status: int, message: str):
        super().__init__(f"WHIP server answered {status}: {message}")
        self.status = status


def _http(method: str, url: str, token: str, body: bytes | None = None) -> tuple[int, dict[str, str], str]:
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/sdp"
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def shape_offer_like_obs(sdp: str) -> str:
    """Keeps one H.264 (packetization-mode=1, 42e01f) on PT 96 and Opus on PT 111, as OBS does."""
    sections = re.split(r"(?m)^(?=m=)", sdp)
    shaped = [sections[0]]
    for section in sections[1:]:
        kind = section.split(" ", 1)[0][2:]
        rtpmaps = dict(re.findall(r"(?m)^a=rtpmap:(\d+) (\S+)", section))
        fmtps = dict(re.findall(r"(?m)^a=fmtp:(\d+) (.*)$", section))
        if kind == "video":
            keep = next((pt for pt, name in rtpmaps.items() if name.upper().startswith("H264/")
                         and "packetization-mode=1" in fmtps.get(pt, "")
                         and "profile-level-id=42e01f" in fmtps.get(pt, "")), None)
            new_pt, fmtp = OBS_VIDEO_PT, "profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1"
        else:
            keep = next((pt for pt, name in rtpmaps.items() if name.lower().startswith("opus/")), None)
            new_pt, fmtp = OBS_AUDIO_PT, "minptime=10;maxaveragebitrate=96000;stereo=1;sprop-stereo=1;useinbandfec=1"
        if keep is None:
            raise ValueError(f"aiortc's offer has no codec to shape for m={kind}")
        lines = []
        for line in section.splitlines():
            if line.startswith("m="):
                parts = line.split(" ")
                line = " ".join(parts[:3] + [str(new_pt)])
            elif (m := re.match(r"a=(rtpmap|fmtp|rtcp-fb):(\d+)", line)):
                if m.group(2) != keep:
                    continue
                if m.group(1) == "fmtp":
                    line = f"a=fmtp:{new_pt} {fmtp}"
                else:
                    line = line.replace(f":{keep} ", f":{new_pt} ", 1)
            elif line.startswith("a=ssrc-group:FID"):
                continue
            lines.append(line)
        # RTX is gone with its fmtp, so its SSRC lines go too: keep the first SSRC only.
        ssrcs = list(dict.fromkeys(re.findall(r"(?m)^a=ssrc:(\d+) ", "\n".join(lines))))
        lines = [ln for ln in lines if not ln.startswith("a=ssrc:") or ln.startswith(f"a=ssrc:{ssrcs[0]} ")]
        shaped.append("\r\n".join(lines) + "\r\n")
    return "".join(shaped)


def offer_from_obs_template(offer: str, template: str) -> str:
    """`template` (an offer as OBS sends it) carrying `offer`'s ICE credentials, DTLS fingerprint
    and SSRCs, so that the SFU answers OBS's own offer while aiortc connects and sends.

    Audio then video in both, as OBS's mids 0 and 1 and aiortc's transceivers are ordered.
    """
    def first(pattern: str, text: str) -> str:
        match = re.search(pattern, text, re.M)
        if match is None:
            raise ValueError(f"no line matches {pattern!r}")
        return match.group(1)

    for key, pattern in (("ice-ufrag", r"^a=ice-ufrag:(\S+)"), ("ice-pwd", r"^a=ice-pwd:(\S+)"),
                         ("fingerprint", r"^a=fingerprint:(sha-256 \S+)")):
        template = re.sub(rf"(?m)^a={key}:.*$", f"a={key}:{first(pattern, offer)}", template)
    ours = re.split(r"(?m)^(?=m=)", offer)[1:]
    theirs = re.split(r"(?m)^(?=m=)", template)
    for index, section in enumerate(theirs[1:], start=1):
        # The first a=ssrc of a section is the media SSRC (aiortc lists RTX after it).
        old, new = first(r"^a=ssrc:(\d+) ", section), first(r"^a=ssrc:(\d+) ", ours[index - 1])
        theirs[index] = section.replace(f"a=ssrc:{old} ", f"a=ssrc:{new} ")
    return "".join(theirs)


class WhipPublisher:
    """One published session: its peer connection and WHIP resource URL."""

    def __init__(self, pc: RTCPeerConnection, resource_url: str, token: str):
        self.pc = pc
        self.resource_url = resource_url
        self._token = token
        self._closed = False

    async def vanish(self) -> None:
        """Stops sending media with no DELETE and no DTLS close: OBS losing its network or crashing.

        The peer connection stays open (ICE keeps answering) until `close()`.
        """
        for sender in self.pc.getSenders():
            sender.replaceTrack(None)

    async def close(self, delete: bool = True) -> None:
        """Ends the session; `delete=False` simulates a publisher that vanishes without DELETE."""
        if self._closed:
            return
        self._closed = True
        if delete:
            await asyncio.to_thread(_http, "DELETE", self.resource_url, self._token)
        await self.pc.close()


async def _publish_once(url: str, token: str, tracks: list[MediaStreamTrack], obs_shaped: bool,
                        obs_offer: str | None, connect_timeout: float) -> WhipPublisher:
    pc = RTCPeerConnection()
    for track in tracks:
        pc.addTransceiver(track, direction="sendonly")
    connected = asyncio.Event()

    @pc.on("connectionstatechange")
    def _on_state() -> None:
        if pc.connectionState == "connected":
            connected.set()

    # aiortc gathers every candidate inside setLocalDescription: WHIP needs no trickle.
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp
    if obs_offer:
        offer = offer_from_obs_template(offer, obs_offer)
    elif obs_shaped:
        offer = shape_offer_like_obs(offer)
    status, headers, body = await asyncio.to_thread(_http, "POST", url, token, offer.encode())
    if status != 201:
        await pc.close()
        raise WhipError(status, body.strip())
    location = headers.get("Location") or headers.get("location")
    if not location:
        await pc.close()
        raise WhipError(status, "201 without a Location header")
    resource = urllib.parse.urljoin(url, location)
    publisher = WhipPublisher(pc, resource, token)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    try:
        await asyncio.wait_for(connected.wait(), connect_timeout)
    except asyncio.TimeoutError:
        await publisher.close()
        raise WhipError(0, f"not connected after {connect_timeout:.0f} s (state {pc.connectionState})")
    return publisher


async def publish(url: str, token: str, video_track: MediaStreamTrack | None = None,
                  audio_track: MediaStreamTrack | None = None, *, obs_shaped: bool = True,
                  obs_offer: str | None = None, attempts: int = 4, connect_timeout: float = 8.0) -> WhipPublisher:
    """Publishes the tracks to a WHIP endpoint; see the module docstring."""
    tracks = [t for t in (audio_track, video_track) if t is not None]
    if not tracks:
        raise ValueError("publish() needs a video_track, an audio_track or both")
    for attempt in range(1, attempts + 1):
        try:
            return await _publish_once(url, token, tracks, obs_shaped, obs_offer, connect_timeout)
        except WhipError as error:
            # Only a stalled connection is retried; a refused offer is final.
            if error.status != 0 or attempt == attempts:
                raise
            logger.warning("publish() | connection stalled, retrying [attempt:%s]", attempt)
    raise AssertionError("unreachable")


class BackgroundPublisher:
    """`publish()` on an asyncio loop thread of its own, for synchronous callers.

    The loop thread is created by the constructor: in a network namespace entered
    by the calling thread (see sfu.Netns), its sockets live in that namespace.
    Tracks must be created on the loop (aiortc tracks bind to it): pass factories.
    """

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="whip-publisher")
        self._thread.start()
        self.publisher: WhipPublisher | None = None
        self._vanished: list[WhipPublisher] = []

    def _call(self, coro, timeout: float = 60.0):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def publish(self, url: str, token: str, make_video: Callable[[], MediaStreamTrack] | None,
                make_audio: Callable[[], MediaStreamTrack] | None, *, obs_shaped: bool = True,
                obs_offer: str | None = None) -> WhipPublisher:
        async def start() -> WhipPublisher:
            return await publish(url, token, make_video() if make_video else None,
                                 make_audio() if make_audio else None, obs_shaped=obs_shaped, obs_offer=obs_offer)

        self.publisher = self._call(start())
        return self.publisher

    def stop(self, delete: bool = True) -> None:
        if self.publisher:
            self._call(self.publisher.close(delete=delete))
            self.publisher = None

    def vanish(self) -> None:
        """See `WhipPublisher.vanish()`; the session is closed by `shutdown()`."""
        if self.publisher:
            self._call(self.publisher.vanish())
            self._vanished.append(self.publisher)
            self.publisher = None

    def shutdown(self) -> None:
        self.stop()
        for publisher in self._vanished:
            self._call(publisher.close(delete=False))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def moving_pattern(width: int, height: int) -> Callable[[int], np.ndarray]:
    """A test picture with motion and detail everywhere, so an encoder has to spend its bitrate."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = ((xx // 16 + yy // 16) % 2 * 60).astype(np.uint8)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 40, (height, width), dtype=np.uint8)

    def frame(index: int) -> np.ndarray:
        shift = (index * 8) % width
        luma = np.roll(base + noise, shift, axis=1)
        rgb = np.stack([luma, np.roll(luma, index % height, axis=0), 255 - luma], axis=-1)
        x0 = (index * 12) % max(1, width - 100)
        rgb[height // 3:height // 3 + 100, x0:x0 + 100] = (255, 200, 0)
        return rgb

    return frame


class SyntheticVideoTrack(MediaStreamTrack):
    """Raw RGB frames of the moving pattern at `fps`; aiortc encodes them (VP8 or H.264 baseline)."""

    kind = "video"

    def __init__(self, width: int = 640, height: int = 360, fps: int = 30):
        super().__init__()
        self._frames = moving_pattern(width, height)
        self._fps = fps
        self._index = 0
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        self._start = self._start or time.monotonic()
        await asyncio.sleep(max(0.0, self._start + self._index / self._fps - time.monotonic()))
        frame = av.VideoFrame.from_ndarray(self._frames(self._index), format="rgb24")
        frame.pts = int(self._index * VIDEO_CLOCK_RATE / self._fps)
        frame.time_base = VIDEO_TIME_BASE
        self._index += 1
        return frame


class X264PacketTrack(MediaStreamTrack):
    """H.264 encoded here with libx264 the way OBS encodes it, handed to aiortc as packets.

    aiortc only packetizes av.Packet objects (RTCRtpSender -> H264Encoder.pack), so the
    profile is ours: High by default, which is what OBS's x264 sends while it signals
    42e01f. No B-frames (they break WebRTC playback; OBS users must turn them off too).
    """

    kind = "video"

    def __init__(self, frames: Callable[[int], np.ndarray], width: int = 1280, height: int = 720,
                 fps: int = 30, bitrate: int = 2_500_000, profile: str = "high", loop_frames: int = 0):
        """`loop_frames` > 0: encode that many frames up front (a multiple of `fps`, so
        the loop starts on a keyframe) and replay them, so that a benchmark's
        publisher costs almost no CPU."""
        super().__init__()
        self._frames = frames
        self._fps = fps
        self._index = 0
        self._start: float | None = None
        self._pending: list[av.Packet] = []
        self._codec = av.CodecContext.create("libx264", "w")
        self._codec.width, self._codec.height = width, height
        self._codec.pix_fmt = "yuv420p"
        self._codec.bit_rate = bitrate
        self._codec.framerate = fractions.Fraction(fps, 1)
        self._codec.time_base = fractions.Fraction(1, fps)
        self._codec.profile = profile
        self._codec.options = {"preset": "ultrafast", "tune": "zerolatency", "bf": "0",
                               "g": str(fps), "keyint_min": str(fps),
                               "maxrate": str(bitrate), "bufsize": str(bitrate // 2)}
        self._loop: list[av.Packet] = []
        for index in range(loop_frames):
            self._loop.extend(self._encode(index))
        self._sent = 0

    def _encode(self, index: int) -> list[av.Packet]:
        frame = av.VideoFrame.from_ndarray(self._frames(index), format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        frame.time_base = fractions.Fraction(1, self._fps)
        return list(self._codec.encode(frame))

    async def recv(self) -> av.Packet:
        if self._loop:
            # One packet per frame (no B-frames, zerolatency): pace by packet count.
            self._start = self._start or time.monotonic()
            await asyncio.sleep(max(0.0, self._start + self._sent / self._fps - time.monotonic()))
            packet = self._loop[self._sent % len(self._loop)]
            packet.pts = self._sent
            packet.time_base = fractions.Fraction(1, self._fps)
            self._sent += 1
            return packet
        while not self._pending:
            self._start = self._start or time.monotonic()
            await asyncio.sleep(max(0.0, self._start + self._index / self._fps - time.monotonic()))
            self._pending.extend(self._encode(self._index))
            self._index += 1
        packet = self._pending.pop(0)
        packet.time_base = fractions.Fraction(1, self._fps)
        return packet


class ToneAudioTrack(MediaStreamTrack):
    """A 48 kHz stereo sine, 20 ms per frame, paced in real time."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0, sample_rate: int = 48000):
        super().__init__()
        self._frequency = frequency
        self._rate = sample_rate
        self._samples = int(AUDIO_PTIME * sample_rate)
        self._sent = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        self._start = self._start or time.monotonic()
        await asyncio.sleep(max(0.0, self._start + self._sent / self._rate - time.monotonic()))
        t = (np.arange(self._samples) + self._sent) / self._rate
        tone = (0.3 * 32767 * np.sin(2 * np.pi * self._frequency * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(tone, 2).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = self._rate
        frame.pts = self._sent
        frame.time_base = fractions.Fraction(1, self._rate)
        self._sent += self._samples
        return frame
