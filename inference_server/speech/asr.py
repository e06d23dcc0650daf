"""Whisper (faster-whisper / CTranslate2) with word timestamps, on 16 kHz mono windows.

The only module of the speech package that imports faster-whisper.  Models are
loaded once per (name, device, threads) and shared: a live service may run a
recogniser per audio source, and each copy of tiny.en costs ~100 MB.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from contextlib import contextmanager
from functools import lru_cache, partial

import numpy as np
from threadpoolctl import threadpool_limits

from ..errors import ModelLoadError
from ..models import model_path
from ..settings import MODEL_CHOICES
from .resample import TARGET_RATE

log = logging.getLogger("privastream.speech.asr")
# faster-whisper logs two INFO lines per decode; at two decodes a second that drowns our own log.
logging.getLogger("faster_whisper").setLevel(logging.WARNING)

# faster-whisper's own thresholds for a reading it would decode again at a higher temperature.
COMPRESSION_RATIO_MAX = 2.4
LOG_PROB_MIN = -1.0
NO_SPEECH_MIN = 0.6
"""An improbable reading this likely to be silence is not distrusted (Whisper's own exception)."""
HEAD_SEARCH_S = 1.5
QUIET_FRAME_S = 0.1


@dataclass(frozen=True)
class Word:
    start: float
    """Seconds on the caller's clock."""
    end: float
    text: str
    """As Whisper wrote it, with its leading space (no space = continues the previous word)."""
    probability: float = 1.0


@dataclass(frozen=True)
class AsrOptions:
    model: str = "whisper-tiny.en"
    threads: int = 0
    """CPU threads for CTranslate2; 0 = its own default (4 threads; see docs/benchmarks.md)."""
    device: str = "auto"
    """"cpu", "cuda" or "auto" (CUDA when CTranslate2 sees a GPU)."""
    vad_threshold: float = 0.35
    """Silero speech probability above which a frame is speech.  Lower than faster-whisper's
    0.5: a missed quiet word is a leak, an extra decode only costs time."""
    beam_size: int = 1
    hotwords: str = ""
    """Words to bias recognition towards (the streamer's custom terms: tiny.en hears
    "Grimsby" as "Princely" without them)."""
    encoder_s: int = 10
    """The longest window the encoder is given.  Whisper pads every input to 30 s; a window is
    encoded padded to whole seconds instead (encoder_frames), so its cost follows its length:
    for tiny.en on this CPU a 4 s window costs about half a 9 s one (the trick whisper.cpp
    exposes as --audio-ctx)."""


def _device(choice: str) -> tuple[str, str]:
    import ctranslate2

    if choice not in ("auto", "cpu", "cuda"):
        raise ModelLoadError(f"unknown speech device {choice!r} (choices: auto, cpu, cuda)")
    if choice == "cpu" or (choice == "auto" and ctranslate2.get_cuda_device_count() == 0):
        return "cpu", "int8"
    return "cuda", "int8_float16"


@lru_cache(maxsize=4)
def load_whisper(name: str, device: str = "auto", threads: int = 0):
    if name not in MODEL_CHOICES:
        raise ModelLoadError(f"unknown speech model {name!r} (choices: {', '.join(MODEL_CHOICES)})")
    # The one matrix product numpy does per decode (the mel filterbank, 80x201 by 201x~900) wakes
    # OpenBLAS's thread per core, and those threads then spin waiting for more: a quarter of each
    # decode's CPU and up to half its time on a machine busy with OBS (`scripts/bench_audio.py`
    # prints the CPU seconds per audio second).  One thread does that product as fast.
    # Process-wide, on purpose: no other numpy work in this service is large enough to gain
    # from BLAS threads either.
    threadpool_limits(1, user_api="blas")
    path = model_path(name)
    dev, compute = _device(device)
    from faster_whisper import WhisperModel

    try:
        model = WhisperModel(str(path), device=dev, compute_type=compute, cpu_threads=threads, local_files_only=True)
    except Exception as exc:  # CTranslate2 raises RuntimeError/ValueError with its own text
        raise ModelLoadError(f"cannot load speech model {name!r} from {path} on {dev}: {exc}") from exc
    log.info("load_whisper() | loaded [model:%s, device:%s, compute:%s, threads:%s]", name, dev, compute, threads)
    return model


# faster-whisper pads every mel segment to 3000 frames with transcribe.pad_or_trim and offers
# no option to change it; the length is swapped for the duration of one decode, under a lock
# that every decode in this process takes (decodes are CPU-bound, so they would queue anyway).
_DECODE_LOCK = threading.Lock()


@contextmanager
def _encoder_length(frames: int):
    import faster_whisper.transcribe as fw_transcribe
    from faster_whisper.audio import pad_or_trim

    fw_transcribe.pad_or_trim = partial(pad_or_trim, length=frames)
    try:
        yield
    finally:
        fw_transcribe.pad_or_trim = pad_or_trim


class Recognizer:
    """Transcribes one window at a time; thread-safe (one decode at a time per process)."""

    def __init__(self, options: AsrOptions | None = None):
        self.options = options or AsrOptions()
        self._model = load_whisper(self.options.model, self.options.device, self.options.threads)

    def transcribe(self, samples: np.ndarray, t0: float) -> list[Word]:
        """Words of ``samples`` (16 kHz mono float32) with times ``t0 + offset`` in seconds.

        Silero VAD runs first (inside faster-whisper) so silence is neither
        decoded nor hallucinated into words.  Decoding is greedy, without the previous text as
        prompt: each window is decoded on its own, and the commit policy in the redactor compares
        consecutive windows.  (With the committed words as prompt, scripts/eval_audio.py altered
        6.5 % of the plain speech instead of 5.1 %: tiny.en loops on a prompt it misheard.)

        A reading Whisper itself would distrust (a loop, improbable tokens) is decoded once more
        from the quietest tenth of a second near the window's head, instead of with Whisper's
        temperature fallback: such readings nearly always come from a word cut in two there
        ("..., 6, 7" looping as "1, 5, 5, 1, ..."), and five samples at temperature 0.4 made these
        the slowest decodes by far (0.75 s instead of 0.2 unloaded, up to 1.35 s on a busy
        machine, past the live deadline) for no better recall on our evaluation (docs/benchmarks.md).
        """
        if len(samples) < TARGET_RATE // 10:
            return []
        with _DECODE_LOCK, _encoder_length(encoder_frames(len(samples))):
            words, distrusted = self._decode(samples, t0)
            cut = quietest(samples) if distrusted else 0
            if cut:  # (a window that already starts at its quietest point would read the same)
                words, _ = self._decode(samples[cut:], t0 + cut / TARGET_RATE)
            return words

    def _decode(self, samples: np.ndarray, t0: float) -> tuple[list[Word], bool]:
        """One greedy decode: its words, and whether Whisper's own fallback test rejects it."""
        o = self.options
        # Whisper tiny loops on repetitive digits ("41, 41, 41, ..." to 448 tokens, seconds of
        # CPU); no real window holds more than ~8 tokens per second of audio.
        max_tokens = int(8 * len(samples) / TARGET_RATE) + 8
        segments, _ = self._model.transcribe(
            samples, language="en", beam_size=o.beam_size, temperature=0.0,
            word_timestamps=True, without_timestamps=False, condition_on_previous_text=False,
            vad_filter=True, max_new_tokens=max_tokens, hotwords=o.hotwords or None,
            vad_parameters={"threshold": o.vad_threshold, "min_silence_duration_ms": 300, "speech_pad_ms": 200},
        )
        segments = list(segments)  # a generator: decoding happens here, inside the lock and the patch
        distrusted = any((seg.compression_ratio > COMPRESSION_RATIO_MAX or seg.avg_logprob < LOG_PROB_MIN)
                         and not (seg.no_speech_prob > NO_SPEECH_MIN and seg.avg_logprob < LOG_PROB_MIN)
                         for seg in segments)
        return [Word(t0 + w.start, t0 + w.end, w.word, w.probability)
                for seg in segments for w in (seg.words or ())], distrusted


def encoder_frames(n_samples: int) -> int:
    """Mel frames (100 a second) a window of ``n_samples`` is encoded with: its length in whole seconds."""
    return max(1, int(np.ceil(n_samples / TARGET_RATE))) * 100


def quietest(samples: np.ndarray, search_s: float = HEAD_SEARCH_S) -> int:
    """Index of the quietest QUIET_FRAME_S in the first ``search_s`` of ``samples``: where a window
    can start without cutting a word in two."""
    frame = int(QUIET_FRAME_S * TARGET_RATE)
    head = samples[:int(search_s * TARGET_RATE)]
    frames = head[:head.size // frame * frame].reshape(-1, frame)
    return int(np.argmin((frames ** 2).mean(axis=1))) * frame if frames.size else 0
