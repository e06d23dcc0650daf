"""Media for the OBS tests: a generated flash+tone clip, and reading a recording back with ffmpeg.

The clip is black with a white flash and a 440 Hz tone starting on the same frame once per
second, so the recording shows both the A/V offset (flash vs. tone onset) and whether the
audio filter replaced the tone by its 1 kHz beep.
"""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np

from .speech import RATE

TONE_HZ = 440.0
EVENT_PERIOD_S = 1.0
EVENT_S = 0.2
TONE_MIN_S = 0.05


def make_flash_clip(path: Path, size=(640, 360), fps: int = 30, seconds: int = 6) -> Path:
    w, h = size
    n_frames = fps * seconds
    t = np.arange(seconds * RATE) / RATE
    tone = 0.5 * np.sin(2 * np.pi * TONE_HZ * t) * ((t % EVENT_PERIOD_S) < EVENT_S)
    wav = path.with_suffix(".wav")
    with wave.open(str(wav), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(RATE)
        f.writeframes((tone * 32767).astype("<i2").tobytes())
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{w}x{h}", "-r", str(fps),
           "-i", "-", "-i", str(wav), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "30",
           "-c:a", "aac", "-b:a", "128k", "-shortest", str(path)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    black, white = np.zeros((h, w), np.uint8).tobytes(), np.full((h, w), 255, np.uint8).tobytes()
    for i in range(n_frames):
        proc.stdin.write(white if (i / fps) % EVENT_PERIOD_S < EVENT_S else black)
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg could not build {path}")
    wav.unlink()
    return path


def read_video_brightness(path: Path, fps: int = 30) -> np.ndarray:
    """Mean luma per frame (0..255), at the recording's constant frame rate."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-an", "-vf", f"fps={fps},scale=64:36",
                          "-pix_fmt", "gray", "-f", "rawvideo", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, 36 * 64).mean(axis=1)


def iter_video_frames(path: Path, size=(640, 360)):
    """The recording's frames one at a time (a minute of 720p is 5 GB as one array)."""
    w, h = size
    with subprocess.Popen(["ffmpeg", "-v", "error", "-i", str(path), "-an", "-pix_fmt", "rgb24", "-f", "rawvideo", "-"],
                          stdout=subprocess.PIPE) as proc:
        while len(raw := proc.stdout.read(w * h * 3)) == w * h * 3:
            yield np.frombuffer(raw, np.uint8).reshape(h, w, 3)
        proc.stdout.close()
    if proc.returncode:
        raise RuntimeError(f"ffmpeg could not read {path}")


def read_video_frames(path: Path, size=(640, 360)) -> np.ndarray:
    w, h = size
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-an", "-pix_fmt", "rgb24", "-f", "rawvideo", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


def read_audio(path: Path) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-vn", "-ac", "1", "-ar", str(RATE),
                          "-f", "f32le", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.float32)


def rms_envelope(audio: np.ndarray, window_s: float = 0.005) -> np.ndarray:
    n = int(RATE * window_s)
    frames = audio[: len(audio) // n * n].reshape(-1, n).astype(np.float64)
    return np.sqrt((frames ** 2).mean(axis=1))


def onsets(signal: np.ndarray, threshold: float, step_s: float, min_s: float = 0.0) -> list[float]:
    """Times (s) where `signal` rises above `threshold` and stays there at least `min_s`
    (the AAC encoder's start-up click is a 10 ms blip, not a tone)."""
    above = signal > threshold
    rising = np.flatnonzero(above[1:] & ~above[:-1]) + 1
    hold = max(1, int(round(min_s / step_s)))
    return [float(i * step_s) for i in rising if above[i:i + hold].all() and i + hold <= len(above)]


def av_offsets(path: Path, fps: int = 30) -> list[float]:
    """Audio onset minus flash onset (s) for every flash with a tone within half a period."""
    flashes = onsets(read_video_brightness(path, fps), 128, 1 / fps)
    tones = onsets(rms_envelope(read_audio(path)), 0.05, 0.005, TONE_MIN_S)
    out = []
    for f in flashes:
        near = [a - f for a in tones if abs(a - f) < EVENT_PERIOD_S / 2]
        if near:
            out.append(min(near, key=abs))
    return out


def dominant_hz(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / RATE)[int(np.argmax(spectrum))])
