"""`redact IN -o OUT`: the vision engine applied to a recorded video file.

Frames stream through a bounded lookahead buffer: detection runs on a
cadence (faces often, text rarely), and a frame is written once the
coverage has settled it, i.e. detections before and after it are known.  A
scene cut closes the previous scene with a detection on its last frame, so
no frame is ever decided from the wrong scene.  Decoding and encoding run
in their own threads (PyAV releases the GIL) beside detection.

The audio track, when there is one, is redacted first (spoken PII bleeped
by the same streaming SpeechRedactor the live path uses), so that the video
pass knows when to cover mouths.  The output goes to a temporary file next
to OUT and is renamed only on success; the report never contains recognised
text or words.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import MediaError
from .masking import STYLES, MaskOptions, apply_masks
from .runtime import PROVIDER_CHOICES
from .vision import DETECTOR_OF_KIND, VisionEngine

log = logging.getLogger("privastream.redact")
TARGETS = ("faces", "text", "plates")


@dataclass
class RedactOptions:
    targets: tuple[str, ...] = TARGETS
    styles: dict[str, str] = field(default_factory=dict)
    strength: float = 1.0
    face_every: int = 4
    text_every: int = 30
    custom_terms: tuple[str, ...] = ()
    threads: int = 0
    provider: str = "auto"
    crf: int = 20
    speech: bool = True
    bleep_mode: str = "beep"
    speech_model: str = "whisper-tiny.en"
    mouth_blur: bool = True

    def settings(self) -> dict:
        return {"targets": {t: t in self.targets for t in TARGETS},
                **{f"style_{k}": v for k, v in self.styles.items()},
                "strength": self.strength, "custom_terms": list(self.custom_terms)}

    def cadence(self) -> dict[str, int]:
        """Frames between detections, per detector group."""
        return {"faces": self.face_every, "text": self.text_every}


@dataclass
class RedactResult:
    frames: int
    fps: float
    seconds: float
    regions: int


class LookaheadPipeline:
    """Decide frames in order through a bounded lookahead; emit (index, frame, decision)."""

    def __init__(self, engine: VisionEngine, cadence: dict[str, int]):
        self.engine, self.cadence = engine, cadence
        self.buffer: deque = deque()
        self.last_run: dict[str, int] = {}

    def _groups(self) -> set[str]:
        return {DETECTOR_OF_KIND[k] for k in self.engine.kinds}

    def _run(self, index: int, t: float, frame: np.ndarray, groups) -> None:
        kinds = [k for k in self.engine.kinds if DETECTOR_OF_KIND[k] in groups]
        if kinds:
            self.engine.detect(t, frame, kinds)
            for g in groups:
                self.last_run[g] = index

    def push(self, index: int, t: float, frame: np.ndarray):
        if self.engine.observe(t, frame) and self.buffer:
            self._close_scene()
            self.last_run.clear()
        due = {g for g in self._groups() if index - self.last_run.get(g, -10**9) >= self.cadence[g]}
        self._run(index, t, frame, due)
        self.buffer.append((index, t, frame))
        yield from self._flush()

    def _close_scene(self) -> None:
        index, t, frame = self.buffer[-1]
        self._run(index, t, frame, {g for g in self._groups() if self.last_run.get(g) != index})

    def finish(self):
        if self.buffer:
            self._close_scene()
        yield from self._flush()

    def _flush(self):
        while self.buffer:
            index, t, frame = self.buffer[0]
            decision = self.engine.decide(t, final=True)
            if decision is None:
                return
            self.buffer.popleft()
            self.engine.prune(t)
            yield index, t, frame, decision


def _open_input(path: Path):
    import av

    if not path.is_file():
        raise MediaError(f"input {path} does not exist or is not a file")
    try:
        container = av.open(str(path))
    except Exception as exc:  # PyAV raises many FFmpeg error types
        raise MediaError(f"cannot read {path}: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise MediaError(f"{path} has no video stream")
    return container


AUDIO_RATE = 48000


def _read_audio(src: Path) -> tuple[np.ndarray, str] | None:
    """The whole audio track as (channels, n) float32 at 48 kHz and its layout, or None."""
    import av

    with av.open(str(src)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        layout = stream.layout.name if stream.layout.nb_channels <= 2 else "stereo"
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=AUDIO_RATE)
        chunks = []
        try:
            for frame in container.decode(stream):
                chunks.extend(f.to_ndarray() for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray() for f in resampler.resample(None))
        except av.FFmpegError as exc:
            raise MediaError(f"{src}: the audio track is corrupt: {exc}") from exc
    if not chunks:
        return None
    return np.concatenate(chunks, axis=1).astype(np.float32), layout


def _audio_frames(planar: np.ndarray, layout: str):
    import av

    for i in range(0, planar.shape[1], 1024):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar[:, i:i + 1024]), format="fltp", layout=layout)
        frame.sample_rate, frame.pts = AUDIO_RATE, i
        yield frame


def redact_file(src: Path, dst: Path, options: RedactOptions, report: Path | None = None,
                progress: bool = True) -> RedactResult:
    import av
    from tqdm import tqdm

    src, dst = Path(src), Path(dst)
    inp = _open_input(src)
    vin = inp.streams.video[0]
    ain = inp.streams.audio[0] if inp.streams.audio else None
    mutes: list = []
    audio = None
    if ain is not None and options.speech:
        from .speech import mouth_regions, redact_audio

        track = _read_audio(src)
        if track is not None:
            planar, layout = track
            log.info("redact_file() | redacting speech [seconds:%.1f]", planar.shape[1] / AUDIO_RATE)
            mutes, redacted = redact_audio(planar, AUDIO_RATE, mode=options.bleep_mode, model=options.speech_model,
                                           custom_terms=options.custom_terms, threads=options.threads)
            audio = (redacted, layout)
    rate = vin.average_rate or vin.guessed_rate
    if not rate:
        inp.close()
        raise MediaError(f"{src}: cannot tell the video frame rate")
    fps = float(rate)
    total = vin.frames or None
    vin.thread_type = "AUTO"

    engine = VisionEngine(options.settings(), threads=options.threads, provider=options.provider)
    engine.load()
    mask_options = MaskOptions.from_settings(options.settings())
    pipeline = LookaheadPipeline(engine, options.cadence())

    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.stem}.", suffix=dst.suffix or ".mp4", dir=dst.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    report_fh = open(report, "w", encoding="utf-8") if report else None
    frames_out = regions_out = 0
    started = time.monotonic()
    try:
        out = av.open(str(tmp), "w", format=None if dst.suffix else "mp4")
        vout = out.add_stream("libx264", rate=rate)
        vout.width, vout.height = vin.codec_context.width, vin.codec_context.height
        vout.pix_fmt = "yuv420p"
        vout.options = {"crf": str(options.crf), "preset": "veryfast"}
        vout.thread_type = "AUTO"
        if audio is not None:
            aout = out.add_stream("aac", rate=AUDIO_RATE, layout=audio[1])
        else:
            aout = out.add_stream_from_template(ain) if ain is not None else None

        to_write: queue.Queue = queue.Queue(maxsize=8)
        errors: list[BaseException] = []

        def writer():
            try:
                while (item := to_write.get()) is not None:
                    if isinstance(item, av.Packet):
                        item.stream = aout
                        out.mux(item)
                        continue
                    frame, decision = item
                    apply_masks(frame, decision.regions, mask_options)
                    vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
                    if (vf.width, vf.height) != (vout.width, vout.height):  # a mid-stream size change
                        vf = vf.reformat(vout.width, vout.height)
                    for packet in vout.encode(vf):
                        out.mux(packet)
                for packet in vout.encode():
                    out.mux(packet)
            except BaseException as exc:  # surfaced in the main thread
                errors.append(exc)
                while to_write.get() is not None:
                    pass

        wthread = threading.Thread(target=writer, name="redact-writer", daemon=True)
        wthread.start()
        if audio is not None:
            for aframe in _audio_frames(*audio):
                for packet in aout.encode(aframe):
                    to_write.put(packet)
            for packet in aout.encode():
                to_write.put(packet)
        if report_fh:
            for iv in mutes:
                report_fh.write(json.dumps({"mute": iv.to_dict()}) + "\n")
        bar = tqdm(total=total, unit="frame", desc=f"redacting {src.name}", disable=not progress, dynamic_ncols=True)

        def emit(items):
            nonlocal frames_out, regions_out
            for index, t, frame, decision in items:
                if errors:
                    raise errors[0]
                if mutes and options.mouth_blur:
                    decision.regions.extend(mouth_regions(t, decision.regions, mutes))
                to_write.put((frame, decision))
                frames_out += 1
                regions_out += len(decision.regions)
                if report_fh:
                    report_fh.write(json.dumps({"frame": index, "t": round(t, 4),
                                                "regions": [r.to_dict() for r in decision.regions]}) + "\n")
                bar.update(1)

        index = 0
        try:
            streams = [vin] + ([ain] if ain is not None else [])
            for packet in inp.demux(*streams):
                if packet.stream.type == "audio":
                    if packet.dts is not None and audio is None:
                        to_write.put(packet)
                    continue
                for vframe in packet.decode():
                    frame = vframe.to_ndarray(format="rgb24")
                    emit(pipeline.push(index, index / fps, frame))
                    index += 1
        except av.FFmpegError as exc:
            raise MediaError(f"{src} is corrupt at frame {index}: {exc}") from exc
        emit(pipeline.finish())
        to_write.put(None)
        wthread.join()
        bar.close()
        if errors:
            raise errors[0]
        out.close()
        if frames_out == 0:
            raise MediaError(f"{src} contains no decodable video frame")
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        inp.close()
        if report_fh:
            report_fh.close()
    seconds = time.monotonic() - started
    log.info("redact_file() | done [frames:%d fps:%.1f regions:%d]", frames_out, frames_out / seconds, regions_out)
    return RedactResult(frames=frames_out, fps=fps, seconds=seconds, regions=regions_out)


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    """Detection cadence and runtime: shared by `redact` and the vision evaluation and benchmark."""
    p.add_argument("--face-every", type=int, default=RedactOptions.face_every, metavar="N",
                   help=f"detect faces every N frames; tracking and interpolation cover the rest "
                        f"(default: {RedactOptions.face_every}; 1 = every frame)")
    p.add_argument("--text-every", type=int, default=RedactOptions.text_every, metavar="N",
                   help=f"run OCR every N frames (default: {RedactOptions.text_every}; OCR is slow, "
                        "on-screen text moves little)")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads (default: 0 = one per core)")
    p.add_argument("--provider", choices=PROVIDER_CHOICES, default="auto", help="execution provider (default: auto)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", type=Path, metavar="IN", help="any video FFmpeg can read")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="redacted video (H.264; audio kept)")
    p.add_argument("--targets", default=",".join(TARGETS), metavar="LIST",
                   help=f"comma-separated subset of {','.join(TARGETS)} (default: all)")
    for kind, default in (("face", "pixelate"), ("text", "fill"), ("plate", "fill")):
        p.add_argument(f"--style-{kind}", choices=STYLES, default=default, help=f"how {kind}s are covered (default: {default})")
    p.add_argument("--strength", type=float, default=1.0, help="0..1, coarseness of pixelate/blur (default: 1)")
    p.add_argument("--custom-term", action="append", default=[], metavar="TERM",
                   help='always cover this word or phrase ("re:" prefix for a regex); repeatable')
    p.add_argument("--no-speech", action="store_true", help="keep the audio as it is (default: bleep spoken PII)")
    p.add_argument("--bleep", choices=("beep", "silence", "reverse"), default="beep",
                   help="how spoken PII is replaced (default: beep)")
    p.add_argument("--speech-model", choices=("whisper-tiny.en", "whisper-base"), default="whisper-tiny.en",
                   help="speech recogniser: tiny.en is fast, base more accurate (default: whisper-tiny.en)")
    p.add_argument("--no-mouth-blur", action="store_true", help="do not cover mouths while speech is bleeped")
    add_engine_arguments(p)
    p.add_argument("--report", type=Path, metavar="FILE.jsonl", help="per-frame record of what was covered (never the text)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    targets = tuple(t.strip() for t in args.targets.split(",") if t.strip())
    unknown = set(targets) - set(TARGETS)
    if unknown:
        raise MediaError(f"unknown target(s) {', '.join(sorted(unknown))} (choose from {', '.join(TARGETS)})")
    if args.face_every < 1 or args.text_every < 1:
        raise MediaError("--face-every and --text-every must be at least 1")
    options = RedactOptions(
        targets=targets, styles={"face": args.style_face, "text": args.style_text, "plate": args.style_plate},
        strength=args.strength, face_every=args.face_every, text_every=args.text_every,
        custom_terms=tuple(args.custom_term), threads=args.threads, provider=args.provider,
        speech=not args.no_speech, bleep_mode=args.bleep, speech_model=args.speech_model,
        mouth_blur=not args.no_mouth_blur)
    result = redact_file(args.input, args.output, options, report=args.report, progress=not args.no_progress)
    print(f"{args.output}: {result.frames} frames at {result.fps:g} fps redacted in {result.seconds:.1f} s "
          f"({result.frames / max(result.seconds, 1e-9):.1f} frames/s)")
    return 0
