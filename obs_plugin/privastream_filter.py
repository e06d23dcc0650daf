"""PrivaStream for OBS Studio: Tools -> Scripts -> "+" -> this file.

Registers "PrivaStream Filter" (video, id privastream_filter) and "PrivaStream Audio Filter"
(audio, id privastream_audio_filter).  OBS runs its own system Python 3.11, so this script puts
the repository root and the repository's .venv site-packages on sys.path before importing
numpy and the PrivaStream client.  Start the inference server separately
(`.venv/bin/python -m inference_server serve`); without it the filters fail closed.
"""

import logging
import sys
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
for _p in (_REPO / ".venv" / "lib" / "python3.11" / "site-packages", _REPO):
    if _p.is_dir() and str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import obspython as obs_script  # noqa: E402  (needs OBS's script host; only timers and the description use it)

from obs_plugin import libobs  # noqa: E402
from obs_plugin.audio_filter import AudioFilter  # noqa: E402
from obs_plugin.properties import Panel  # noqa: E402
from obs_plugin.settings import set_defaults  # noqa: E402
from obs_plugin.video_filter import VideoFilter  # noqa: E402

log = logging.getLogger("privastream.obs")
STATUS_REFRESH_MS = 1000
STATUS_MIN_INTERVAL_S = 2.0
"""Rebuilding the panel redraws it; do it at most this often so sliders stay usable."""

_obs = None


class FilterHandler:
    """What a FilterType forwards to: builds instances of `cls`, and the panel when one failed."""

    def __init__(self, obs, cls):
        self.obs, self.cls = obs, cls

    def create(self, settings, source):
        return self.cls(self.obs, source, settings)

    def defaults(self, settings):
        set_defaults(self.obs, settings)

    def properties(self, inst):
        if inst is None:
            panel = Panel(self.obs)
            panel.info("status", "This filter failed to start (see Help -> Log Files); it covers everything.", True)
            return panel.props
        return inst.properties()


def _setup_logging(obs) -> None:
    root = logging.getLogger("privastream")
    root.setLevel(logging.INFO)
    if not any(isinstance(h, libobs.ObsLogHandler) for h in root.handlers):
        root.addHandler(libobs.ObsLogHandler(obs))


def _refresh_status() -> None:
    """Timer: when an open panel's status line is stale, ask OBS to rebuild that panel."""
    try:
        now = time.monotonic()
        for ft in libobs.registered_filters().values():
            for inst in list(ft.instances.values()):
                if inst is None or not inst.status_shown[0]:
                    continue
                if now - getattr(inst, "status_refreshed", 0.0) >= STATUS_MIN_INTERVAL_S and inst.status() != inst.status_shown:
                    inst.status_refreshed = now
                    _obs.obs_source_update_properties(inst.source)
    except Exception as e:  # a timer must never raise into OBS
        log.error("_refresh_status() | %s", e)


def script_description():
    return ("<b>PrivaStream</b>: covers faces, licence plates and personal text, and bleeps spoken personal "
            "data. Add <i>PrivaStream Filter</i> to a video source and <i>PrivaStream Audio Filter</i> to the "
            "microphone. Needs the local inference server; without it everything is covered and muted.")


def script_load(_settings):
    global _obs
    try:
        _obs = libobs.load_libobs()
        _setup_logging(_obs)
        if _obs.missing:
            log.error("script_load() | libobs lacks functions, filters not registered [missing:%s]", ",".join(_obs.missing))
            return
        major, minor, patch = _obs.version()
        if major not in libobs.KNOWN_MAJORS:
            log.error("script_load() | unknown OBS version, filters not registered [version:%d.%d.%d, known:%s]",
                      major, minor, patch, libobs.KNOWN_MAJORS)
            return
        libobs.register_filter(_obs, "privastream_filter", "PrivaStream Filter", libobs.OBS_SOURCE_VIDEO,
                               FilterHandler(_obs, VideoFilter))
        libobs.register_filter(_obs, "privastream_audio_filter", "PrivaStream Audio Filter", libobs.OBS_SOURCE_AUDIO,
                               FilterHandler(_obs, AudioFilter))
        obs_script.timer_add(_refresh_status, STATUS_REFRESH_MS)
        log.info("script_load() | ready [obs:%d.%d.%d, python:%s]", major, minor, patch, sys.version.split()[0])
    except Exception as e:
        logging.getLogger("privastream.obs").error("script_load() | %s", e, exc_info=True)
        print(f"PrivaStream: cannot load: {e}")


def script_unload():
    # Filter instances live on in their sources (libobs cannot unregister a type); only the timer goes.
    try:
        obs_script.timer_remove(_refresh_status)
    except Exception:
        pass
