"""PrivaStream for OBS Studio: Tools -> Scripts -> "+" -> this file.

Registers "PrivaStream Filter" (video, id privastream_filter) and "PrivaStream Audio Filter"
(audio, id privastream_audio_filter).  OBS runs its own Python (3.11 in Debian 12's OBS 29,
3.13 in Debian 13's OBS 30, 3.14 in OBS 32 from Debian unstable), so this script puts the
environment PrivaStream is installed in for that Python on sys.path (environment.py) before
importing numpy and the PrivaStream client; without one, that Python's own packages serve
(Debian's python3-numpy and python3-websockets), and the log and the script's description say
so.  Start the inference server separately (`privastream serve`); without it the filters fail
closed.

When the filters cannot be registered (a dependency missing for OBS's Python, an OBS older than
29 or lacking a function, another plugin holding our id), the script still loads and hides and
mutes every source that carries a PrivaStream filter (failsafe.py), and its panel under
Tools -> Scripts says why.
"""

import html
import importlib
import logging
import sys
import time
from pathlib import Path

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
if str(_PACKAGE_ROOT) not in sys.path:
    sys.path.insert(0, str(_PACKAGE_ROOT))

from obs_plugin import environment  # noqa: E402  (standard library only)

try:
    _environment: "environment.Environment | None" = environment.activate(_PACKAGE_ROOT)
    _environment_line = f"packages from {_environment.origin}"
except Exception as _e:  # the script must still load, so that the guard can hide the filtered sources
    _environment, _environment_line = None, str(_e) or type(_e).__name__

import obspython as obs_script  # noqa: E402  (needs OBS's script host)

from obs_plugin import libobs  # noqa: E402  (standard library only, like failsafe)
from obs_plugin.failsafe import SourceGuard  # noqa: E402

log = logging.getLogger("privastream.obs")
STATUS_REFRESH_MS = 1000
STATUS_MIN_INTERVAL_S = 2.0
"""Rebuilding the panel redraws it; do it at most this often so sliders stay usable."""
DEPENDENCIES = ("numpy", "websockets.asyncio.client")
"""What the filters import inside OBS's Python: a new OBS often brings a new Python without them."""

_obs = None
_guard: SourceGuard | None = None
_state = {"failure": "", "note": "", "version": ""}


class FilterHandler:
    """What a FilterType forwards to: builds instances of `cls`, and the panel when one failed."""

    def __init__(self, obs, cls):
        self.obs, self.cls = obs, cls

    def create(self, settings, source):
        return self.cls(self.obs, source, settings)

    def defaults(self, settings):
        from obs_plugin.settings import set_defaults
        set_defaults(self.obs, settings)

    def properties(self, inst):
        if inst is None:
            from obs_plugin.properties import Panel
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
    if _environment is None:
        where = f"<p><b>No PrivaStream environment found</b>: {html.escape(_environment_line)}</p>"
    else:
        where = f"<p>Python {_environment.python}, {html.escape(_environment_line)}.</p>"
    return ("<b>PrivaStream</b>: covers faces, licence plates and personal text, and bleeps spoken personal "
            "data. Add <i>PrivaStream Filter</i> to a video source and <i>PrivaStream Audio Filter</i> to the "
            "microphone. Needs the local inference server; without it everything is covered and muted." + where)


def script_properties():
    """The script's own panel (Tools -> Scripts): whether the filters run on this OBS, and if not, why."""
    props = obs_script.obs_properties_create()
    if _state["failure"]:
        hidden = ", ".join(_guard.hidden) if _guard and _guard.hidden else "none loaded yet"
        text, kind = (f"NOT RUNNING: {_state['failure']}. Every source with a PrivaStream filter is hidden and "
                      f"muted until this is fixed [hidden: {hidden}]."), obs_script.OBS_TEXT_INFO_ERROR
    elif _state["note"]:
        text, kind = "Filters registered. WARNING: " + _state["note"], obs_script.OBS_TEXT_INFO_WARNING
    else:
        text, kind = f"Filters registered (OBS {_state['version']}, a verified version).", obs_script.OBS_TEXT_INFO_NORMAL
    p = obs_script.obs_properties_add_text(props, "status", text, obs_script.OBS_TEXT_INFO)
    obs_script.obs_property_text_set_info_type(p, kind)
    return props


def _register(obs) -> None:
    """Registers both filters or raises (AbiError, ImportError, OSError) saying why they cannot run."""
    for module in DEPENDENCIES:
        try:
            importlib.import_module(module)
        except ImportError as e:
            where = f"; {_environment_line}" if _environment is None else f" (from {_environment.origin})"
            raise ImportError(f"{module} cannot be imported in OBS's Python {sys.version.split()[0]} ({e}){where}; "
                              "install PrivaStream for that Python (see docs/obs.md)") from e
    if obs.missing:
        raise libobs.AbiError("libobs lacks functions the filters call [missing:" + ",".join(obs.missing) + "]")
    version = obs.version()
    _state["version"] = "%d.%d.%d" % version
    _state["note"] = libobs.version_note(version)
    # Imported here, not at the top: numpy is needed from here on, and the script must load
    # without it so that the guard can still hide the filtered sources.
    from obs_plugin.audio_filter import AudioFilter
    from obs_plugin.video_filter import VideoFilter
    libobs.register_filter(obs, "privastream_filter", "PrivaStream Filter", libobs.OBS_SOURCE_VIDEO,
                           FilterHandler(obs, VideoFilter))
    libobs.register_filter(obs, "privastream_audio_filter", "PrivaStream Audio Filter", libobs.OBS_SOURCE_AUDIO,
                           FilterHandler(obs, AudioFilter))


def script_load(_settings):
    global _obs, _guard
    try:
        _obs = libobs.load_libobs()
        _setup_logging(_obs)
        if _environment is None:
            log.warning("script_load() | no PrivaStream environment, using OBS's own Python packages [reason:%s]",
                        _environment_line)
        else:
            log.info("script_load() | environment [python:%s, from:%s]", _environment.python, _environment.origin)
        _register(_obs)
        obs_script.timer_add(_refresh_status, STATUS_REFRESH_MS)
        if _state["note"]:
            log.warning("script_load() | WARNING: filters registered on an unverified OBS [%s]", _state["note"])
        log.info("script_load() | ready [obs:%s, python:%s]", _state["version"], sys.version.split()[0])
    except Exception as e:
        _state["failure"] = str(e) or type(e).__name__
        expected = isinstance(e, (libobs.AbiError, ImportError, OSError))  # said in full by the message
        logging.getLogger("privastream").error("script_load() | filters NOT registered, hiding filtered sources "
                                               "[reason:%s]", _state["failure"], exc_info=not expected)
        print(f"PrivaStream: filters not registered, every source with a PrivaStream filter is hidden and muted: "
              f"{_state['failure']}")
    try:
        _guard = SourceGuard(_state["failure"])
        _guard.start()
    except Exception as e:  # never raise into OBS; this line is then the only warning left
        logging.getLogger("privastream").error("script_load() | cannot watch the sources [error:%s]", e, exc_info=True)


def script_unload():
    # Filter instances live on in their sources (libobs cannot unregister a type); only the timer
    # and the guard's signal go.
    try:
        obs_script.timer_remove(_refresh_status)
    except Exception:
        pass
    if _guard is not None:
        _guard.stop()
