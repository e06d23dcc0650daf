"""`redact IN -o OUT`: the vision engine applied to a recorded video file.

Frames stream through a bounded lookahead buffer: detection runs on a
cadence (faces often, text rarely), and a frame is written once the
coverage has settled it, i.e. detections before and after it are known.  A
scene cut closes the previous scene with a detection on its last frame, so
no frame is ever decided from the wrong scene.  Decoding and encoding run
in their own threads (PyAV releases the GIL) beside detection.

The audio track, when there is one, is read twice (see audio_track.py):
first through the same streaming SpeechRedactor the live path uses, so that
the video pass knows when to cover mouths, then beside the video, bleeped
and encoded chunk by chunk.  Video and audio share one clock, so audio that
starts before or after the picture keeps its place, and frames are turned
upright by their rotation tag before anything is detected.  The output and
the report go to temporary files next to them and are renamed only on
success; the report never contains recognised text or words.
"""

from __future__ import annotations

import argparse
import contextlib
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
from .masking import MaskOptions, apply_masks
from .runtime import PROVIDER_CHOICES
from .settings import BLEEP_MODES, MODEL_CHOICES, STYLE_KINDS, STYLES, Settings, Targets
from .vision import DETECTOR_OF_KIND, TARGET_OF_KIND, VisionEngine

log = logging.getLogger("privastream.redact")
TARGETS = tuple(TARGET_OF_KIND.values())
"""What a video is searched for; speech has its own switch (--no-speech)."""


@dataclass
class RedactOptions:
    targets: tuple[str, ...] = TARGETS
    styles: dict[str, str] = field(default_factory=dict)
    strength: float = 1.0
    face_every: int = 10
    """Faces are followed frame by frame between runs (tracking.py), and a settled answer is the
    interpolation between runs widened by what was followed, so runs a third of a second apart keep
    every face covered (scripts/bench_redact.py)."""
    text_every: int = 45
    custom_terms: tuple[str, ...] = ()
    threads: int = 0
    provider: str = "auto"
    crf: int = 20
    speech: bool = True
    bleep_mode: str = BLEEP_MODES[0]
    speech_model: str = MODEL_CHOICES[0]
    mouth_blur: bool = True

    def settings(self) -> Settings:
        """The live settings these options amount to (one strength for every kind)."""
        return Settings(targets=Targets(**{t: t in self.targets for t in TARGETS}, speech=self.speech),
                        **{f"style_{k}": v for k, v in self.styles.items()},
                        **{f"strength_{k}": self.strength for k in STYLE_KINDS},
                        custom_terms=self.custom_terms, bleep_mode=self.bleep_mode, mouth_blur=self.mouth_blur)

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


def _first_frame(path: Path) -> tuple[int, float]:
    """Rotation (degrees counter-clockwise) and time (seconds) of the first video frame.

    A phone stores video as the sensor saw it and a display matrix saying how to turn it; the
    frames are turned upright before detection (faces lying on their side are missed) and written
    upright, so the output needs no matrix of its own."""
    import av

    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                return frame.rotation, float(frame.time or 0.0)
    except av.FFmpegError as exc:
        raise MediaError(f"{path} is corrupt at frame 0: {exc}") from exc
    raise MediaError(f"{path} contains no decodable video frame")


def _upright(vframe) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(vframe.to_ndarray(format="rgb24"), round(vframe.rotation / 90) % 4))


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return False


def _check_paths(src: Path, dst: Path, report: Path | None) -> None:
    """Refuse, before anything is opened for writing, an output that would replace the input."""
    if _same_file(dst, src):
        raise MediaError(f"-o {dst} is the input file: the redacted copy would replace the original; "
                         "choose another OUT")
    if report is not None and _same_file(report, src):
        raise MediaError(f"--report {report} is the input file: it would be overwritten; choose another file")
    if report is not None and _same_file(report, dst):
        raise MediaError(f"--report {report} and -o {dst} are the same file; choose two different files")


def _temp_beside(path: Path, suffix: str) -> Path:
    """An empty file next to ``path``, renamed over it on success, so a failed run leaves nothing."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise MediaError(f"cannot write next to {path}: {exc.strerror}") from exc
    os.close(fd)
    return Path(name)


@dataclass
class _Timeline:
    """One clock for video and audio: 0 is the first video frame, or a whole number of frames
    before it when the audio starts earlier, so frame i shows at exactly (first_pts + i) / fps
    and the audio keeps its place against it (within half a frame, well inside what viewers
    notice as lip-sync error)."""

    origin: float
    """Container time of timeline 0, in seconds."""
    first_pts: int
    fps: float

    @classmethod
    def of(cls, first_video: float, fps: float, ain) -> "_Timeline":
        from .audio_track import start_of

        audio = start_of(ain) if ain is not None else None
        first_pts = max(0, round((first_video - audio) * fps)) if audio is not None else 0
        return cls(first_video - first_pts / fps, first_pts, fps)

    def t(self, index: int) -> float:
        return (self.first_pts + index) / self.fps


def _video_stream(out, vin, rate, rotation: int, crf: int):
    """The H.264 output stream, sized for the upright picture."""
    vout = out.add_stream("libx264", rate=rate)
    width, height = vin.codec_context.width, vin.codec_context.height
    vout.width, vout.height = (height, width) if round(rotation / 90) % 2 else (width, height)
    vout.pix_fmt = "yuv420p"
    vout.options = {"crf": str(crf), "preset": "veryfast"}
    vout.thread_type = "AUTO"
    return vout


class _Writer:
    """Masks, encodes and muxes on its own thread (PyAV releases the GIL) beside detection.

    ``put`` takes an output packet, or (pts, frame, decision) for a video frame; an error in the
    thread surfaces at the next ``put`` or at ``finish``."""

    def __init__(self, out, vout, mask_options: MaskOptions):
        self._out, self._vout, self._mask_options = out, vout, mask_options
        self._queue: queue.Queue = queue.Queue(maxsize=8)
        self._errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name="redact-writer", daemon=True)
        self._thread.start()

    def put(self, item) -> None:
        self._raise()
        self._queue.put(item)

    def finish(self) -> None:
        """Flush the encoder and wait for the thread."""
        self.stop()
        self._raise()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _raise(self) -> None:
        if self._errors:
            raise self._errors[0]

    def _run(self) -> None:
        import av

        try:
            while (item := self._queue.get()) is not None:
                if isinstance(item, av.Packet):
                    self._out.mux(item)
                    continue
                pts, frame, decision = item
                apply_masks(frame, decision.regions, self._mask_options)
                vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
                if (vf.width, vf.height) != (self._vout.width, self._vout.height):  # a mid-stream size change
                    vf = vf.reformat(self._vout.width, self._vout.height)
                vf.pts = pts
                self._out.mux(self._vout.encode(vf))
            self._out.mux(self._vout.encode())
        except BaseException as exc:  # surfaced in the main thread
            self._errors.append(exc)
            while self._queue.get() is not None:
                pass


def _find_mutes(src: Path, timeline: _Timeline, options: RedactOptions) -> list:
    from .audio_track import decoded_chunks, find_mutes

    log.info("redact_file() | redacting speech")
    return find_mutes(decoded_chunks(src, timeline.origin), model=options.speech_model,
                      custom_terms=options.custom_terms, threads=options.threads)


def redact_file(src: Path, dst: Path, options: RedactOptions, report: Path | None = None,
                progress: bool = True) -> RedactResult:
    src, dst = Path(src), Path(dst)
    report = Path(report) if report is not None else None
    _check_paths(src, dst, report)
    inp = _open_input(src)
    try:
        return _redact(inp, src, dst, options, report, progress)
    finally:
        inp.close()


def _redact(inp, src: Path, dst: Path, options: RedactOptions, report: Path | None, progress: bool) -> RedactResult:
    import av
    from tqdm import tqdm

    from .audio_track import RedactedAudio
    from .speech import mouth_regions

    vin = inp.streams.video[0]
    ain = inp.streams.audio[0] if inp.streams.audio else None
    rate = vin.average_rate or vin.guessed_rate
    if not rate:
        raise MediaError(f"{src}: cannot tell the video frame rate")
    fps = float(rate)
    rotation, first_video = _first_frame(src)
    timeline = _Timeline.of(first_video, fps, ain)
    mutes = _find_mutes(src, timeline, options) if ain is not None and options.speech else []
    total = vin.frames or None
    vin.thread_type = "AUTO"

    engine = VisionEngine(options.settings(), threads=options.threads, provider=options.provider, follow=True)
    engine.detectors.load()
    mask_options = MaskOptions.from_settings(options.settings())
    pipeline = LookaheadPipeline(engine, options.cadence())

    tmp = _temp_beside(dst, dst.suffix or ".mp4")
    report_tmp = _temp_beside(report, ".jsonl") if report else None
    report_fh = open(report_tmp, "w", encoding="utf-8") if report_tmp else None
    frames_out = regions_out = 0
    started = time.monotonic()
    out = writer = None
    try:
        out = av.open(str(tmp), "w", format=None if dst.suffix else "mp4")
        vout = _video_stream(out, vin, rate, rotation, options.crf)
        audio = RedactedAudio(out, ain, timeline.origin, mutes, options.bleep_mode, src) if ain is not None else None
        writer = _Writer(out, vout, mask_options)
        if report_fh:
            for iv in mutes:
                report_fh.write(json.dumps({"mute": iv.to_dict()}) + "\n")
        bar = tqdm(total=total, unit="frame", desc=f"redacting {src.name}", disable=not progress, dynamic_ncols=True)

        def emit(items):
            nonlocal frames_out, regions_out
            for index, t, frame, decision in items:
                if mutes and options.mouth_blur:
                    decision.regions.extend(mouth_regions(t, decision.regions, mutes))
                writer.put((timeline.first_pts + index, frame, decision))
                frames_out += 1
                regions_out += len(decision.regions)
                if report_fh:
                    report_fh.write(json.dumps({"frame": index, "t": round(t, 4),
                                                "regions": [r.to_dict() for r in decision.regions]}) + "\n")
                bar.update(1)

        index = 0
        try:
            for packet in inp.demux(*([vin] + ([ain] if ain is not None else []))):
                if packet.stream.type == "audio":
                    for apacket in audio.encode(packet):
                        writer.put(apacket)
                    continue
                for vframe in packet.decode():
                    emit(pipeline.push(index, timeline.t(index), _upright(vframe)))
                    index += 1
        except av.FFmpegError as exc:
            raise MediaError(f"{src} is corrupt at frame {index}: {exc}") from exc
        emit(pipeline.finish())
        for apacket in audio.finish() if audio is not None else ():
            writer.put(apacket)
        writer.finish()
        bar.close()
        out.close()
        if frames_out == 0:
            raise MediaError(f"{src} contains no decodable video frame")
        if report_fh:
            report_fh.close()
            os.replace(report_tmp, report)
        os.replace(tmp, dst)
    except BaseException:
        if writer is not None:
            writer.stop()
        if out is not None:
            with contextlib.suppress(Exception):  # the file is deleted; the first error is the one to report
                out.close()
        tmp.unlink(missing_ok=True)
        if report_tmp:
            report_fh.close()
            report_tmp.unlink(missing_ok=True)
        raise
    seconds = time.monotonic() - started
    log.info("redact_file() | done [frames:%d fps:%.1f regions:%d]", frames_out, frames_out / seconds, regions_out)
    return RedactResult(frames=frames_out, fps=fps, seconds=seconds, regions=regions_out)


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    """Detection cadence and runtime: shared by `redact` and the vision evaluation and benchmark."""
    p.add_argument("--face-every", type=int, default=RedactOptions.face_every, metavar="N",
                   help=f"detect faces every N frames; following and interpolation cover the rest "
                        f"(default: {RedactOptions.face_every}; 1 = every frame)")
    p.add_argument("--text-every", type=int, default=RedactOptions.text_every, metavar="N",
                   help=f"run OCR every N frames (default: {RedactOptions.text_every}; OCR is slow, "
                        "on-screen text moves little)")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads (default: 0 = one per core)")
    p.add_argument("--provider", choices=PROVIDER_CHOICES, default="auto", help="execution provider (default: auto)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", type=Path, metavar="IN", help="any video FFmpeg can read")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="redacted video (H.264; audio re-encoded as AAC)")
    p.add_argument("--targets", default=",".join(TARGETS), metavar="LIST",
                   help=f"comma-separated subset of {','.join(TARGETS)} (default: all)")
    for kind in STYLE_KINDS:
        default = Settings().style(kind)
        p.add_argument(f"--style-{kind}", choices=STYLES, default=default, help=f"how {kind}s are covered (default: {default})")
    p.add_argument("--strength", type=float, default=1.0, help="0..1, coarseness of pixelate/blur (default: 1)")
    p.add_argument("--custom-term", action="append", default=[], metavar="TERM",
                   help='always cover this word or phrase ("re:" prefix for a regex); repeatable')
    p.add_argument("--no-speech", action="store_true", help="keep what is said as it is (default: bleep spoken PII)")
    p.add_argument("--bleep", choices=BLEEP_MODES, default=RedactOptions.bleep_mode,
                   help=f"how spoken PII is replaced (default: {RedactOptions.bleep_mode})")
    p.add_argument("--speech-model", choices=MODEL_CHOICES, default=RedactOptions.speech_model,
                   help=f"speech recogniser: tiny.en is fast, base more accurate (default: {RedactOptions.speech_model})")
    p.add_argument("--no-mouth-blur", action="store_true", help="do not cover mouths while speech is bleeped")
    add_engine_arguments(p)
    p.add_argument("--report", type=Path, metavar="FILE.jsonl", help="per-frame record of what was covered (never the text)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    targets = tuple(t.strip() for t in args.targets.split(",") if t.strip())
    if not targets:
        raise MediaError(f"--targets is empty: name at least one of {','.join(TARGETS)} "
                         "(a copy with nothing covered is not a redaction)")
    unknown = set(targets) - set(TARGETS)
    if unknown:
        raise MediaError(f"unknown target(s) {', '.join(sorted(unknown))} (choose from {', '.join(TARGETS)})")
    if args.face_every < 1 or args.text_every < 1:
        raise MediaError("--face-every and --text-every must be at least 1")
    if not 0.0 <= args.strength <= 1.0:
        raise MediaError(f"--strength must be between 0 and 1 (got {args.strength:g})")
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
