"""The filters' settings in OBS: its flat keys and their defaults, and reading them back.

OBS stores the settings flat (`target_faces`, ..., one text per list); `settings_from_values`
turns them into a `inference_server.settings.Settings`, which defines every key, its default and
the values it allows.  A value that a hand-edited scene file or a websocket call put out of range
is brought back in range or to its default (the safer one) here: the filter keeps running.  A
custom word that is no valid pattern has no safer stand-in than the streamer's own word, so it is
refused instead: the filter then runs without a client, covering everything, and its status line
names the entry by number.
"""

from __future__ import annotations

import dataclasses

from inference_server.errors import ProtocolError
from inference_server.settings import (BLEEP_MODES, DELAY_RANGE_S, FAIL_POLICIES, STYLE_KINDS, STYLES, TARGETS,
                                       Settings, Targets)

from .libobs import LibObs

_DEFAULT = Settings()
LIST_KEYS = ("mouth_audio_sources", "custom_terms")
"""Lists, typed one entry per line in a multi-line text box."""
DEFAULTS: dict[str, bool | float | str] = {
    **{f"target_{t}": _DEFAULT.targeted(t) for t in TARGETS},
    **{f.name: "\n".join(getattr(_DEFAULT, f.name)) if f.name in LIST_KEYS else getattr(_DEFAULT, f.name)
       for f in dataclasses.fields(Settings) if f.name != "targets"},
}
"""Every OBS key with its default, derived from Settings."""


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
    return value if value in allowed else default


def _within(value: float, low: float, high: float) -> float:
    return min(max(float(value), low), high)


def parse_entries(text: str) -> tuple[str, ...]:
    """One entry per line, blanks dropped, order kept, duplicates removed.  Lines only: a comma may be
    part of an entry ("Springfield, IL", a "re:" pattern such as "re:\\d{2,4}")."""
    entries = (line.strip() for line in (text or "").splitlines())
    return tuple(dict.fromkeys(e for e in entries if e))


def settings_from_values(values: dict) -> Settings:
    """Flat OBS values (missing keys take defaults) -> Settings.  ProtocolError, naming the entry by its
    number, for a custom word that is no valid pattern; every other value is brought into range."""
    v = {**DEFAULTS, **values}
    return Settings(
        targets=Targets(**{t: bool(v[f"target_{t}"]) for t in TARGETS}),
        **{f"style_{k}": _choice(v[f"style_{k}"], STYLES, _DEFAULT.style(k)) for k in STYLE_KINDS},
        **{f"strength_{k}": _within(v[f"strength_{k}"], 0.0, 1.0) for k in STYLE_KINDS},
        delay_s=_within(v["delay_s"], *DELAY_RANGE_S),
        mouth_blur=bool(v["mouth_blur"]),
        **{key: parse_entries(v[key]) for key in LIST_KEYS},
        bleep_mode=_choice(v["bleep_mode"], BLEEP_MODES, _DEFAULT.bleep_mode),
        fail_policy=_choice(v["fail_policy"], FAIL_POLICIES, _DEFAULT.fail_policy),
    )


def filter_settings(values: dict) -> tuple[Settings, str]:
    """Flat OBS values -> (the settings a filter runs with, why its lists were refused or "").
    Refused lists leave the rest of the settings in force (the delay keeps audio and video in step, the
    fail policy says what is shown) with the lists empty: the filter must then run without a client."""
    try:
        return settings_from_values(values), ""
    except ProtocolError as e:  # the message names the entry's number, never the word
        return settings_from_values({**values, **dict.fromkeys(LIST_KEYS, "")}), str(e)


def settings_from_data(obs: LibObs, data: int) -> tuple[Settings, str]:
    """Read an obs_data_t (update/create callbacks): filter_settings of its values."""
    values: dict[str, bool | float | str] = {}
    for key, default in DEFAULTS.items():
        k = key.encode()
        if isinstance(default, bool):
            values[key] = obs.obs_data_get_bool(data, k)
        elif isinstance(default, float):
            values[key] = obs.obs_data_get_double(data, k)
        else:
            values[key] = (obs.obs_data_get_string(data, k) or b"").decode("utf-8", "replace")
    return filter_settings(values)


def delay_frames(delay_s: float, frame_time_s: float) -> int:
    """Frames in the video delay line.  The audio filter delays by exactly this many frame times,
    so both filters with the same delay setting stay in sync whatever the rounding."""
    return max(1, round(delay_s / frame_time_s))


def video_frame_time_s(obs: LibObs) -> float:
    video = obs.obs_get_video()
    ns = obs.video_output_get_frame_time(video) if video else 0
    return ns / 1e9 if ns else 1 / 30
