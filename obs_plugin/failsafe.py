"""When the filters cannot run, every source that carries a PrivaStream filter shows and plays nothing.

Why: OBS keeps a saved filter whose type nobody registered as a filter with only its id, and its
render and audio paths skip such a filter, so the source goes out raw (libobs/obs-source.c,
29 to 32: `obs_source_create_internal` "Source ID not found", `render_video` skips it).

A source is hidden with `obs_source_set_enabled(source, false)`: libobs then renders nothing for
it and counts its audio as muted (`render_video` and `source_muted` in obs-source.c), and the UI
has no switch for it, so a click on the eye or the mixer cannot undo it by mistake.  OBS saves
that flag with the source, so each source hidden here is also marked in its private settings,
and a later load that registers the filters enables exactly those again.

Only the standard library and OBS's own `obspython` are used here: this has to work when numpy,
websockets or our ctypes layer do not.
"""

from __future__ import annotations

import json
import logging

import obspython as obs

FILTER_IDS = ("privastream_filter", "privastream_audio_filter")
HIDDEN_MARK = "privastream_hidden_by_failsafe"

log = logging.getLogger("privastream.obs")


def _released(sources) -> list:
    """Names and handles of a source list, released in the same call (OBS's list helpers add references)."""
    try:
        return list(sources or [])
    finally:
        obs.source_list_release(sources or [])


def carries_privastream(source) -> bool:
    data = obs.obs_save_source(source)
    try:
        saved = json.loads(obs.obs_data_get_json(data) or "{}")
    finally:
        obs.obs_data_release(data)
    return any(f.get("id") in FILTER_IDS for f in saved.get("filters", []))


class SourceGuard:
    """Watches every source OBS loads.  With a `failure` it hides those that carry a PrivaStream
    filter; without one it shows again those it hid before."""

    def __init__(self, failure: str = ""):
        self.failure = failure
        self.hidden: list[str] = []

        # A plain function: OBS's signal_handler_connect silently ignores anything else (a bound
        # method included; PyFunction_Check in obs-scripting-python.c).
        def on_load(calldata) -> None:
            try:
                self._check(obs.calldata_source(calldata, "source"))
            except Exception as e:  # a signal callback must never raise into OBS
                log.error("on_load() | %s", e, exc_info=True)

        self._on_load = on_load

    def start(self) -> None:
        """Sources load after scripts at start-up: each is checked as it loads, before OBS draws it."""
        obs.signal_handler_connect(obs.obs_get_signal_handler(), "source_load", self._on_load)
        for source in _released(obs.obs_enum_sources()) + _released(obs.obs_frontend_get_scenes()):
            self._check(source)

    def stop(self) -> None:
        obs.signal_handler_disconnect(obs.obs_get_signal_handler(), "source_load", self._on_load)

    def _check(self, source) -> None:
        private = obs.obs_source_get_private_settings(source)
        try:
            marked = obs.obs_data_get_bool(private, HIDDEN_MARK)
            if self.failure and carries_privastream(source):
                obs.obs_source_set_enabled(source, False)
                obs.obs_data_set_bool(private, HIDDEN_MARK, True)
                name = obs.obs_source_get_name(source)
                self.hidden.append(name)
                log.error("SourceGuard() | source hidden and muted: its PrivaStream filter cannot run "
                          "[source:%s, reason:%s]", name, self.failure)
            elif marked and not self.failure:
                obs.obs_source_set_enabled(source, True)
                obs.obs_data_erase(private, HIDDEN_MARK)
                log.info("SourceGuard() | source shown again: the filters run [source:%s]",
                         obs.obs_source_get_name(source))
        finally:
            obs.obs_data_release(private)
