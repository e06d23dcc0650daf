"""The audio side of `redact`: any track PyAV decodes, as one 48 kHz timeline, streamed.

`redact` reads the track twice: once to find spoken PII (`find_mutes`), then again, beside the
video, to write the redacted copy (`RedactedAudio`).  Both passes turn decoded frames into
samples through the same `AudioTimeline`, so a mute interval found in the first pass falls on
exactly the samples it was found in.  Neither pass holds more than a chunk of audio: the speech
redactor keeps only its decode window, and each chunk is bleeped and encoded as it arrives.

Nothing of the input track reaches the output without being decoded and rendered here: there is
no packet copy, so a track that decodes to nothing cannot slip through as it was.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import MediaError
from .speech import MuteInterval, merge_intervals, render

AUDIO_RATE = 48000
# Container timestamps are rounded (Matroska: to the millisecond), so a frame may start a little
# before or after where the previous one ended; a larger difference is a real gap or jump.
JITTER_S = 0.02
GAP_CHUNK = AUDIO_RATE  # silence for a gap is emitted a second at a time


def output_layout(stream) -> str:
    """Mono stays mono; anything else is mixed to stereo (what the speech path and AAC take)."""
    return "mono" if stream.codec_context.channels == 1 else "stereo"


def start_of(stream) -> float | None:
    """Seconds on the container clock where ``stream`` starts, if the container says."""
    if stream.start_time is None or stream.time_base is None:
        return None
    return float(stream.start_time * stream.time_base)


class AudioTimeline:
    """Decoded audio frames -> contiguous (first sample, (channels, n) float32) chunks at 48 kHz.

    Sample k of the timeline plays at ``k / 48000`` seconds after ``origin`` on the container
    clock, which is where the video's timeline starts too: that is what keeps audio that starts
    later than the picture in sync.  A gap in the input becomes silence and audio that goes back
    in time is dropped, so the timeline only moves forward, as the output must.
    """

    def __init__(self, stream, origin: float, src: Path):
        import av

        if stream.codec_context is None:
            raise MediaError(f"{src}: its audio track cannot be decoded here (no decoder for its codec); "
                             "convert the audio first, e.g. to AAC or PCM")
        self.layout = output_layout(stream)
        self._origin = origin
        self._new_resampler = lambda: av.AudioResampler(format="fltp", layout=self.layout, rate=AUDIO_RATE)
        self._resampler = self._new_resampler()
        self._kind: tuple | None = None  # (sample format, layout, rate) of the previous input frame
        self._next_in: float | None = None  # where the next input frame should start (seconds)
        self._cursor: int | None = None  # timeline index of the resampler's next output sample
        self.end = 0  # timeline index just after the last sample emitted
        self.samples = 0  # samples emitted, silence for gaps excluded

    def feed(self, frame) -> Iterator[tuple[int, np.ndarray]]:
        import av

        if frame.pts is not None and frame.time is not None:
            t = float(frame.time) - self._origin
        else:  # a frame without a timestamp follows the one before
            t = self._next_in if self._next_in is not None else 0.0
        kind = (frame.format.name, frame.layout.name, frame.sample_rate)
        try:
            jump = self._next_in is not None and abs(t - self._next_in) > JITTER_S
            # A resampler takes one input format; joined recordings change it mid-track.
            if jump or (self._kind is not None and kind != self._kind):
                yield from self._drain()
                self._resampler = self._new_resampler()
                if jump:
                    self._cursor = None
            self._kind = kind
            if self._cursor is None:
                self._cursor = round(t * AUDIO_RATE)
            self._next_in = t + frame.samples / frame.sample_rate
            for out in self._resampler.resample(frame):
                yield from self._place(out.to_ndarray())
        except (av.FFmpegError, ValueError) as exc:
            raise MediaError(f"cannot convert the audio track ({frame.format.name}, {frame.layout.name}, "
                             f"{frame.sample_rate} Hz): {exc}") from exc

    def finish(self) -> Iterator[tuple[int, np.ndarray]]:
        yield from self._drain()

    def _drain(self) -> Iterator[tuple[int, np.ndarray]]:
        for out in self._resampler.resample(None):
            yield from self._place(out.to_ndarray())

    def _place(self, planar: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        start = self._cursor
        self._cursor += planar.shape[1]
        # Audio before timeline 0, or going back over what is already out, is dropped.
        skip = self.end - start
        if skip >= planar.shape[1]:
            return
        if skip > 0:
            planar, start = planar[:, skip:], start + skip
        if self.samples:
            while self.end < start:
                n = min(GAP_CHUNK, start - self.end)
                yield self.end, np.zeros((planar.shape[0], n), np.float32)
                self.end += n
        self.end = start + planar.shape[1]
        self.samples += planar.shape[1]
        yield start, np.ascontiguousarray(planar, dtype=np.float32)


def decoded_chunks(src: Path, origin: float) -> Iterator[tuple[int, np.ndarray]]:
    """The first audio track of ``src`` on the timeline, read on its own (the first pass)."""
    import av

    with av.open(str(src)) as container:
        timeline = AudioTimeline(container.streams.audio[0], origin, src)
        try:
            for frame in container.decode(audio=0):
                yield from timeline.feed(frame)
        except av.FFmpegError as exc:
            raise MediaError(f"{src}: the audio track is corrupt: {exc}") from exc
        yield from timeline.finish()
        if not timeline.samples:
            raise MediaError(f"{src}: its audio track decodes to no sound at all, so it cannot be checked "
                             "for speech")


def find_mutes(chunks: Iterable[tuple[int, np.ndarray]], **speech_options) -> list[MuteInterval]:
    """Spoken-PII mute intervals (seconds on the timeline) of a stream of timeline chunks.

    ``speech_options`` are SpeechRedactor's keyword arguments.  The redactor decodes inline, so
    the result does not depend on CPU speed, and keeps only its decode window."""
    from .speech import SpeechRedactor

    redactor = SpeechRedactor(background=False, **speech_options)
    intervals: list[MuteInterval] = []
    try:
        for start, planar in chunks:
            redactor.push(start / AUDIO_RATE, planar, AUDIO_RATE)
            intervals.extend(redactor.poll()[0])
        intervals.extend(redactor.flush()[0])
    finally:
        redactor.close()
    return merge_intervals(intervals, redactor.options.merge_gap_s)


class RedactedAudio:
    """The second pass: decoded frames in, bleeped AAC packets out, one chunk at a time."""

    def __init__(self, out, stream, origin: float, intervals: list[MuteInterval], mode: str, src: Path):
        self._src = src
        self._timeline = AudioTimeline(stream, origin, src)
        self._intervals = intervals
        self._mode = mode
        self._packets_in = 0
        self.stream = out.add_stream("aac", rate=AUDIO_RATE, layout=self._timeline.layout)

    def encode(self, packet) -> list:
        """Packets of the output stream for one input packet (often none: the encoder buffers)."""
        import av

        if packet.size:
            self._packets_in += 1
        try:
            frames = packet.decode()
        except av.FFmpegError as exc:
            raise MediaError(f"{self._src}: the audio track is corrupt: {exc}") from exc
        return [p for frame in frames for p in self._encode_chunks(self._timeline.feed(frame))]

    def finish(self) -> list:
        """The last packets; fails if the track had packets but not one decoded sample."""
        packets = self._encode_chunks(self._timeline.finish()) + list(self.stream.encode(None))
        if self._packets_in and not self._timeline.samples:
            raise MediaError(f"{self._src}: its audio track decodes to no sound at all; it is not copied as it is")
        return packets

    def _encode_chunks(self, chunks: Iterable[tuple[int, np.ndarray]]) -> list:
        import av

        packets = []
        for start, planar in chunks:
            t0, t1 = start / AUDIO_RATE, (start + planar.shape[1]) / AUDIO_RATE
            near = [iv for iv in self._intervals if iv.end > t0 - 0.1 and iv.start < t1 + 0.1]
            frame = av.AudioFrame.from_ndarray(render(planar, AUDIO_RATE, t0, near, self._mode),
                                               format="fltp", layout=self._timeline.layout)
            frame.sample_rate, frame.pts, frame.time_base = AUDIO_RATE, start, Fraction(1, AUDIO_RATE)
            packets.extend(self.stream.encode(frame))
        return packets
