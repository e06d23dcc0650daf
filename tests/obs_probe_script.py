"""An OBS script used only by tests/test_obs_properties.py: reads a filter's properties panel.

obs-websocket has no request for a filter's properties, so this script, loaded next to ours,
builds the panel of filter $PRIVASTREAM_PROBE_FILTER on source $PRIVASTREAM_PROBE_SOURCE once a
second, exactly as the UI does (obs_source_properties), and writes the controls it finds
and the status line to $PRIVASTREAM_PROBE_OUT as JSON.  Every reference is released in
finally blocks: a leaked source reference crashes OBS at exit.
"""

import json
import os

import obspython as obs

NAMES = ("status", "target_faces", "target_plates", "target_text", "target_speech", "mouth_blur", "style_face",
         "strength_face", "style_text", "strength_text", "style_plate", "strength_plate", "delay_s", "custom_terms",
         "fail_policy", "fail_open_warning", "bleep_mode", "mouth_audio_sources")


def probe():
    try:
        snapshot = {}
        src = obs.obs_get_source_by_name(os.environ["PRIVASTREAM_PROBE_SOURCE"])
        try:
            flt = obs.obs_source_get_filter_by_name(src, os.environ["PRIVASTREAM_PROBE_FILTER"]) if src else None
            try:
                props = obs.obs_source_properties(flt) if flt else None
                try:
                    for name in NAMES:
                        p = obs.obs_properties_get(props, name) if props else None
                        if p:
                            snapshot[name] = obs.obs_property_description(p)
                finally:
                    if props:
                        obs.obs_properties_destroy(props)
            finally:
                if flt:
                    obs.obs_source_release(flt)
        finally:
            if src:
                obs.obs_source_release(src)
        with open(os.environ["PRIVASTREAM_PROBE_OUT"] + ".tmp", "w") as f:
            json.dump(snapshot, f)
        os.replace(os.environ["PRIVASTREAM_PROBE_OUT"] + ".tmp", os.environ["PRIVASTREAM_PROBE_OUT"])
    except Exception as e:  # never raise into OBS
        print(f"probe failed: {e}")


def script_load(_settings):
    obs.timer_add(probe, 1000)


def script_unload():
    obs.timer_remove(probe)
