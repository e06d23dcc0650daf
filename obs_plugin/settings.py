"""The filters' settings: defaults, reading them from OBS, and the delay both filters share.

Keys follow the live client contract (targets, style_*, strength, delay_s, mouth_blur,
mouth_audio_sources, custom_terms, bleep_mode, fail_policy); OBS stores them flat (`target_faces`, ...) and
`settings_from_data` turns them into the dict the client and server take.
"""

from __future__ import annotations

import re

from inference_server.speech.render import BLEEP_MODES  # numpy only: safe inside OBS

from .libobs import LibObs

TARGETS = ("faces", "plates", "text", "speech")
STYLES = ("pixelate", "blur", "fill")
STYLE_KINDS = ("face", "text", "plate")
FAIL_POLICIES = ("closed", "open")
DELAY_RANGE_S = (0.2, 3.0)
"""The GPU delay line holds delay*fps frames: 3 s of 1080p60 is already ~1.5 GB, so it stops there."""

DEFAULTS = {
    "target_faces": True, "target_plates": True, "target_text": True, "target_speech": True,
    "style_face": "pixelate", "style_text": "fill", "style_plate": "fill",
    "strength_face": 0.7, "strength_text": 0.7, "strength_plate": 0.7,
    "delay_s": 2.0, "mouth_blur": True, "mouth_audio_sources": "", "custom_terms": "", "bleep_mode": "beep",
    "fail_policy": "closed",
}


def set_defaults(obs: LibObs, data: int) -> None:
    """Every key gets its default here, in one place (get_defaults callback)."""
    for key, value in DEFAULTS.items():
        k = key.encode()
        if isinstance(value, bool):
            obs.obs_data_set_default_bool(data, k, value)
        elif isinstance(value, float):
            obs.obs_data_set_default_double(data, k, value)
        else:
            obs.obs_data_set_default_string(data, k, value.encode())


def _choice(value: str, allowed: tuple[str, ...], default: str) -> str:
    # A bad value (hand-edited scene file, websocket) falls back to the default, which is the safer one.
    return value if value in allowed else default


def parse_entries(text: str) -> list[str]:
    """One entry per line (commas also separate), blanks dropped, order kept, duplicates removed."""
    terms = [t.strip() for t in re.split(r"[\n,]", text or "")]
    return list(dict.fromkeys(t for t in terms if t))


def settings_from_values(values: dict) -> dict:
    """Flat OBS values (missing keys take defaults) -> the settings dict of the client contract."""
    v = {**DEFAULTS, **values}
    strength = {k: min(max(float(v[f"strength_{k}"]), 0.0), 1.0) for k in STYLE_KINDS}
    delay = min(max(float(v["delay_s"]), DELAY_RANGE_S[0]), DELAY_RANGE_S[1])
    return {
        "targets": {t: bool(v[f"target_{t}"]) for t in TARGETS},
        **{f"style_{k}": _choice(v[f"style_{k}"], STYLES, DEFAULTS[f"style_{k}"]) for k in STYLE_KINDS},
        **{f"strength_{k}": strength[k] for k in STYLE_KINDS},
        "strength": strength["face"],
        "delay_s": delay,
        "mouth_blur": bool(v["mouth_blur"]),
        "mouth_audio_sources": parse_entries(v["mouth_audio_sources"]),
        "custom_terms": parse_entries(v["custom_terms"]),
        "bleep_mode": _choice(v["bleep_mode"], BLEEP_MODES, "beep"),
        "fail_policy": _choice(v["fail_policy"], FAIL_POLICIES, "closed"),
    }


def settings_from_data(obs: LibObs, data: int) -> dict:
    """Read an obs_data_t (update/create callbacks) into the client-contract settings dict."""
    values = {}
    for key, default in DEFAULTS.items():
        k = key.encode()
        if isinstance(default, bool):
            values[key] = obs.obs_data_get_bool(data, k)
        elif isinstance(default, float):
            values[key] = obs.obs_data_get_double(data, k)
        else:
            values[key] = (obs.obs_data_get_string(data, k) or b"").decode("utf-8", "replace")
    return settings_from_values(values)


def delay_frames(delay_s: float, frame_time_s: float) -> int:
    """Frames in the video delay line.  The audio filter delays by exactly this many frame times,
    so both filters with the same delay setting stay in sync whatever the rounding."""
    return max(1, round(delay_s / frame_time_s))


def video_frame_time_s(obs: LibObs) -> float:
    video = obs.obs_get_video()
    ns = obs.video_output_get_frame_time(video) if video else 0
    return ns / 1e9 if ns else 1 / 30
