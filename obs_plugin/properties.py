"""The properties panels of both filters, built with libobs' obs_properties_* calls.

The server status is the description of a read-only info line, so it is rebuilt (not stored in
the settings) each time OBS asks for the panel; the script's timer calls
obs_source_update_properties when the line changes, which keeps it live.
"""

from __future__ import annotations

from .libobs import (OBS_COMBO_FORMAT_STRING, OBS_COMBO_TYPE_LIST, OBS_GROUP_NORMAL, OBS_TEXT_DEFAULT, OBS_TEXT_INFO,
                     OBS_TEXT_INFO_WARNING, LibObs, version_note)
from inference_server.settings import BLEEP_MODES, DELAY_RANGE_S, FAIL_POLICIES, STYLE_KINDS, STYLES


def _labelled(values: tuple[str, ...], labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    # Every allowed value, in the contract's order; a value added there without a label fails here, at import.
    return tuple((v, labels[v]) for v in values)


STYLE_LABELS = _labelled(STYLES, {"pixelate": "Pixelate", "blur": "Blur", "fill": "Solid fill"})
BLEEP_LABELS = _labelled(BLEEP_MODES, {"beep": "Beep", "silence": "Silence"})
FAIL_LABELS = _labelled(FAIL_POLICIES, {
    "closed": "Fail closed: cover everything when unsure (recommended)",
    "open": "Fail open: show the raw stream when the server is away (NOT private)"})
KIND_LABELS = {"face": "Faces", "text": "Text", "plate": "Plates"}
FAIL_OPEN_WARNING = ("WARNING: fail open is on. When the inference server is late or down, faces, text and "
                     "speech go out UNFILTERED.")


class Panel:
    """Small builder so each panel reads as a list of controls."""

    def __init__(self, obs: LibObs, props: int | None = None):
        self.obs = obs
        self.props = props or obs.obs_properties_create()

    def info(self, name: str, text: str, warning: bool = False) -> None:
        p = self.obs.obs_properties_add_text(self.props, name.encode(), text.encode(), OBS_TEXT_INFO)
        if warning:
            self.obs.obs_property_text_set_info_type(p, OBS_TEXT_INFO_WARNING)

    def check(self, name: str, label: str) -> None:
        self.obs.obs_properties_add_bool(self.props, name.encode(), label.encode())

    def slider(self, name: str, label: str, lo: float, hi: float, step: float) -> None:
        self.obs.obs_properties_add_float_slider(self.props, name.encode(), label.encode(), lo, hi, step)

    def choice(self, name: str, label: str, options) -> None:
        p = self.obs.obs_properties_add_list(self.props, name.encode(), label.encode(), OBS_COMBO_TYPE_LIST,
                                             OBS_COMBO_FORMAT_STRING)
        for value, text in options:
            self.obs.obs_property_list_add_string(p, text.encode(), value.encode())

    def text(self, name: str, label: str, multiline: bool, hint: str) -> None:
        p = self.obs.obs_properties_add_text(self.props, name.encode(), label.encode(), 2 if multiline else OBS_TEXT_DEFAULT)
        self.obs.obs_property_set_long_description(p, hint.encode())

    def group(self, name: str, label: str) -> "Panel":
        sub = Panel(self.obs)
        self.obs.obs_properties_add_group(self.props, name.encode(), label.encode(), OBS_GROUP_NORMAL, sub.props)
        return sub


def _common_tail(panel: Panel, fails_open: bool) -> None:
    panel.slider("delay_s", "Delay (s): time the server has to decide", *DELAY_RANGE_S, 0.1)
    panel.text("custom_terms", "Custom words", True,
               "Words, phrases or patterns to hide, one per line: a comma is part of the entry "
               '("Springfield, IL").  A line starting with "re:" is a regular expression.')
    panel.choice("fail_policy", "When unsure", FAIL_LABELS)
    if fails_open:
        panel.info("fail_open_warning", FAIL_OPEN_WARNING, warning=True)


def _status_line(panel: Panel, status: tuple[str, bool]) -> None:
    """The server's status, after a warning when this OBS is newer than the verified ones."""
    note = version_note(panel.obs.version())
    panel.info("status", (note + " " if note else "") + "Server: " + status[0], warning=bool(note) or status[1])


def video_properties(obs: LibObs, status: tuple[str, bool], fails_open: bool) -> int:
    panel = Panel(obs)
    _status_line(panel, status)
    targets = panel.group("targets", "Cover")
    targets.check("target_faces", "Faces")
    targets.check("target_plates", "Licence plates")
    targets.check("target_text", "On-screen personal text")
    targets.check("target_speech", "Spoken personal data (needs the audio filter)")
    targets.check("mouth_blur", "Blur mouths while speech is bleeped")
    targets.text("mouth_audio_sources", "Mouth blur follows audio from", True,
                 "Audio sources (their names in OBS, one per line) whose bleeps cover mouths here; empty: every "
                 "source with the PrivaStream Audio Filter.  A frame waits until all of them are decided.")
    for kind in STYLE_KINDS:
        style = panel.group(f"style_{kind}_group", f"{KIND_LABELS[kind]}: style")
        style.choice(f"style_{kind}", "Style", STYLE_LABELS)
        style.slider(f"strength_{kind}", "Strength", 0.0, 1.0, 0.05)
    _common_tail(panel, fails_open)
    return panel.props


def audio_properties(obs: LibObs, status: tuple[str, bool], fails_open: bool) -> int:
    panel = Panel(obs)
    _status_line(panel, status)
    panel.check("target_speech", "Bleep spoken personal data")
    panel.choice("bleep_mode", "Bleep sound", BLEEP_LABELS)
    _common_tail(panel, fails_open)
    panel.info("sync_hint", "Use the same delay as the PrivaStream Filter on the video source to keep sync.")
    return panel.props
