"""The settings contract (inference_server/settings.py) and where it is enforced: the protocol edge,
the live server's sessions, the client and the OBS panel's reading of its flat keys."""

import asyncio
import dataclasses
import json
import time

import numpy as np
import pytest
from websockets.asyncio.client import connect

from inference_server.client import LiveClient
from inference_server.errors import ProtocolError
from inference_server.protocol import CONTROL_PATH, Auth, SettingsUpdate, parse_message
from inference_server.settings import DELAY_RANGE_S, Settings, Targets, check_delay
from obs_plugin.settings import DEFAULTS, filter_settings, settings_from_values
from privastream_testkit.processes import wait_until
from privastream_testkit.server import TARGETS_OFF, ServerProcess, login

CUSTOM = Settings(targets=Targets(plates=False), style_face="blur", strength_text=0.25, delay_s=1.5, mouth_blur=False,
                  mouth_audio_sources=("Mic/Aux",), custom_terms=("Springfield, IL", r"re:\d{2,4}"),
                  bleep_mode="silence", fail_policy="open")


def test_round_trip_through_the_wire_dict_and_json():
    for settings in (Settings(), CUSTOM):
        assert Settings.from_dict(settings.to_dict()) == settings
        assert Settings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    assert Settings.from_dict({}) == Settings()
    assert CUSTOM.to_dict()["custom_terms"] == ["Springfield, IL", r"re:\d{2,4}"]


def test_missing_keys_take_defaults_and_updated_replaces_only_what_it_names():
    s = Settings.from_dict({"targets": {"faces": False}, "bleep_mode": "silence"})
    assert s.targets == Targets(faces=False) and s.bleep_mode == "silence" and s.style_text == "fill"
    changed = s.updated({"custom_terms": ["Jane Doe"]})
    assert changed.custom_terms == ("Jane Doe",) and changed.targets == s.targets and changed.bleep_mode == "silence"


@pytest.mark.parametrize("wire, message", [
    ({"style_face": "sparkles"}, r"settings field 'style_face' must be one of pixelate, blur, fill \(got 'sparkles'\)"),
    ({"style_text": 3}, r"settings field 'style_text' must be one of"),
    ({"strength_plate": 1.5}, r"settings field 'strength_plate' must be between 0 and 1 \(got 1.5\)"),
    ({"strength_face": True}, r"settings field 'strength_face' must be a number \(got bool\)"),
    ({"strength_text": "0.5"}, r"settings field 'strength_text' must be a number \(got str\)"),
    ({"delay_s": 10 ** 400}, r"settings field 'delay_s' must be a finite number"),
    ({"mouth_blur": 1}, r"settings field 'mouth_blur' must be true or false \(got int\)"),
    ({"targets": ["faces"]}, r"settings field 'targets' must be an object of faces, plates, text, speech"),
    ({"targets": {"cats": True}}, r"settings field 'targets' has an unknown target 'cats'"),
    ({"targets": {"faces": "yes"}}, r"settings field 'targets.faces' must be true or false \(got str\)"),
    ({"custom_terms": "Jane Doe"}, r"settings field 'custom_terms' must be a list of strings, one entry each \(got str\)"),
    ({"custom_terms": ["Jane", 7]}, r"settings field 'custom_terms' entry #2 must be a non-empty string"),
    ({"custom_terms": ["re:(unclosed"]}, r"settings field 'custom_terms' entry #1 is not a valid regular expression"),
    ({"custom_terms": ["Jane", "  re:[a-"]}, r"settings field 'custom_terms' entry #2 is not a valid regular expression"),
    ({"mouth_audio_sources": "Mic"}, r"settings field 'mouth_audio_sources' must be a list of strings"),
    ({"bleep_mode": "reverse"}, r"settings field 'bleep_mode' must be one of beep, silence \(got 'reverse'\)"),
    ({"fail_policy": "sometimes"}, r"settings field 'fail_policy' must be one of closed, open"),
    ({"strength": 0.5}, r"settings field 'strength' is not a setting \(known: bleep_mode, "),
])
def test_each_bad_field_is_named(wire, message):
    with pytest.raises(ProtocolError, match="^" + message):
        Settings.from_dict(wire)


def test_a_custom_terms_string_is_refused_not_split_into_characters():
    """A string is not guessed at: one term or several lines?  Taken as a sequence it was one term per
    character, and every "a" on screen was covered while the name itself was not."""
    with pytest.raises(ProtocolError, match="custom_terms"):
        Settings.from_dict({"custom_terms": "Jane"})
    with pytest.raises(ProtocolError, match="custom_terms"):
        Settings(custom_terms="Jane")  # type: ignore[arg-type]
    # The regex error names the entry's number, never the term: the term may be the private thing.
    with pytest.raises(ProtocolError) as refused:
        Settings.from_dict({"custom_terms": ["re:Jane(Doe"]})
    assert "Jane" not in str(refused.value)


def test_a_comma_belongs_to_its_term_in_the_obs_panel():
    settings = settings_from_values({"custom_terms": "Springfield, IL\n re:\\d{2,4} \n\nJane Doe\nSpringfield, IL"})
    assert settings.custom_terms == ("Springfield, IL", r"re:\d{2,4}", "Jane Doe")
    assert Settings.from_dict(settings.to_dict()) == settings


def test_one_delay_range_everywhere():
    low, high = DELAY_RANGE_S
    assert (low, high) == (0.2, 3.0)
    assert check_delay(low) == low and check_delay(high) == high
    for bad in (low - 0.01, high + 0.01, 30.0):
        with pytest.raises(ProtocolError, match=r"settings field 'delay_s' must be between 0.2 and 3"):
            check_delay(bad)
        with pytest.raises(ProtocolError, match="delay_s"):
            Settings.from_dict({"delay_s": bad})
    # The protocol edge: hello's D and a settings message's (negative: unchanged).
    for message in ({"type": "hello", "nonce": "0" * 32, "source": "cam", "kind": "video", "delay_s": 30.0},
                    {"type": "settings", "settings": {}, "delay_s": 3.5}):
        with pytest.raises(ProtocolError, match=r"^settings field 'delay_s' must be between 0.2 and 3"):
            parse_message(json.dumps({"v": 1, **message}))
    assert parse_message(json.dumps({"v": 1, "type": "settings", "settings": {}, "delay_s": -1})).delay_s == -1
    # The OBS panel brings a hand-edited value into the same range instead of refusing it.
    assert settings_from_values({"delay_s": 60.0}).delay_s == high
    assert settings_from_values({"delay_s": 0.0}).delay_s == low


def test_the_obs_keys_and_defaults_derive_from_settings():
    defaults = Settings()
    assert settings_from_values({}) == defaults
    assert set(DEFAULTS) == ({f"target_{t}" for t in ("faces", "plates", "text", "speech")}
                             | {f.name for f in dataclasses.fields(Settings)} - {"targets"})
    assert DEFAULTS["delay_s"] == defaults.delay_s and DEFAULTS["custom_terms"] == ""


def test_the_protocol_edge_parses_settings():
    auth = parse_message(json.dumps({"v": 1, "type": "auth", "proof": "x", "settings": CUSTOM.to_dict()}))
    assert isinstance(auth, Auth) and auth.settings == CUSTOM
    update = parse_message(bytes(SettingsUpdate(settings=CUSTOM, delay_s=1.5)))
    assert isinstance(update, SettingsUpdate) and update.settings == CUSTOM
    with pytest.raises(ProtocolError, match=r"^settings field 'style_plate' must be one of"):
        parse_message(json.dumps({"v": 1, "type": "settings", "settings": {"style_plate": "none"}}))
    with pytest.raises(ProtocolError, match=r"^settings field 'custom_terms' must be a list"):
        parse_message(json.dumps({"v": 1, "type": "auth", "proof": "x", "settings": {"custom_terms": "Jane"}}))


def test_the_client_refuses_bad_settings_once_and_keeps_its_own(tmp_path):
    """No server needed: the client checks its settings before it dials, and an update that would
    break them raises and changes nothing."""
    with pytest.raises(ProtocolError, match=r"^settings field 'custom_terms' must be a list"):
        LiveClient(source="cam", settings={"custom_terms": "Jane"}, state_file=tmp_path / "none.json")
    with pytest.raises(ProtocolError, match=r"^settings field 'delay_s' must be between 0.2 and 3"):
        LiveClient(source="cam", delay_s=4.0, state_file=tmp_path / "none.json")
    client = LiveClient(source="cam", settings=TARGETS_OFF, state_file=tmp_path / "none.json")
    try:
        with pytest.raises(ProtocolError, match=r"^settings field 'fail_policy'"):
            client.update_settings({"fail_policy": "sometimes", "bleep_mode": "silence"})
        assert client._connection.settings == Settings.from_dict(TARGETS_OFF)  # nor did the bleep mode
    finally:
        client.close()


@pytest.fixture
def server(tmp_path):
    proc = ServerProcess(tmp_path / "server.json", "--no-preload").start()
    yield proc
    proc.stop()


def test_bad_settings_in_the_login_get_one_fatal_error_naming_the_field(server):
    async def attempt():
        async with connect(f"ws://127.0.0.1:{server.port}{CONTROL_PATH}") as ws:
            return await login(ws, server.token, settings={"custom_terms": "Jane"})

    reply = asyncio.run(attempt())
    assert reply["type"] == "error" and reply["code"] == "protocol" and reply["fatal"]
    assert reply["message"].startswith("settings field 'custom_terms' must be a list of strings")


def test_a_bad_settings_update_gets_an_error_reply_and_the_session_keeps_deciding(server):
    """The malformed update is posted on the client's connection by hand (the client itself never
    builds one): the server refuses it at the edge, and the session decides the next frames with the
    settings and delay it had."""
    frame = np.full((360, 640, 4), 128, np.uint8)
    client = LiveClient(source="cam", delay_s=1.0, settings=TARGETS_OFF, state_file=server.state_file)
    try:
        wait_until(lambda: client.status.state == "connected", 5.0)
        for i in range(5):
            assert client.submit_frame(i, i / 30, frame)
        wait_until(lambda: client.frame_decision(4) is not None, 2.0)
        # "targets" as a list stopped the session's decision thread for good before it was parsed at the edge.
        client._connection.post(SettingsUpdate(settings={"targets": ["faces"]}, delay_s=0.5))  # type: ignore[arg-type]
        wait_until(lambda: client.status.message.startswith("server: settings field 'targets'"), 2.0)
        for i in range(5, 40):
            assert client.submit_frame(i, i / 30, frame)
            time.sleep(1 / 30)
        wait_until(lambda: client.frame_decision(39) is not None, 2.0)
        decisions = [client.frame_decision(i) for i in range(40)]
        assert all(not d.fail_closed and d.regions == [] for d in decisions), [d.reason for d in decisions]
        session, = server.stats()["sessions"]
        assert session["delay_s"] == 1.0 and session["error"] is None and client.status.state == "connected"
    finally:
        client.close()


def test_an_obs_filter_with_a_broken_pattern_covers_everything_and_names_the_entry():
    """No stand-in for a custom word that is no valid pattern is safer than the word itself, so the panel
    refuses it and keeps the rest of its settings; the filter then opens no client (every frame covered,
    audio muted) and its status line names the entry by number, never by its text."""
    from obs_plugin.client_link import open_client, status_text

    values = {"custom_terms": "Jane Doe\nre:Elm (Street", "delay_s": 1.5, "style_face": "blur"}
    with pytest.raises(ProtocolError, match="custom_terms"):
        settings_from_values(values)
    settings, refused = filter_settings(values)
    assert settings == Settings(delay_s=1.5, style_face="blur")
    assert refused.startswith("settings field 'custom_terms' entry #2 is not a valid regular expression"), refused
    client, problem = open_client("Webcam", "video", settings, refused)
    assert client is None and problem == f"settings refused: {refused}"
    line, warning = status_text(client, problem, settings.fails_open)
    assert warning and "every frame is covered" in line and "Elm" not in line and "Jane" not in line
    assert filter_settings({"custom_terms": "Jane Doe"}) == (Settings(custom_terms=("Jane Doe",)), "")


def test_an_obs_filter_drops_its_client_on_a_broken_pattern_and_takes_a_new_one_when_it_is_fixed(tmp_path,
                                                                                                 monkeypatch):
    from obs_plugin.client_link import LinkedFilter, close_client, open_client

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    link = LinkedFilter()
    link.kind, link.name, link.settings = "video", "Webcam", settings_from_values({})
    link.client, link.problem = open_client(link.name, link.kind, link.settings)
    try:
        assert link.client is not None
        link._apply_settings(filter_settings({"custom_terms": "re:(unclosed"}))
        assert link.client is None and link.problem.startswith("settings refused: settings field 'custom_terms'")
        link._apply_settings(filter_settings({"custom_terms": "re:\\d{4}"}))
        assert link.client is not None and link.problem == ""
        client = link.client  # a change that keeps the delay reaches the same client as its wire dict
        link._apply_settings(filter_settings({"custom_terms": "re:\\d{4}", "style_face": "fill"}))
        assert link.client is client and client._connection.settings == link.settings
        assert link.settings.style("face") == "fill"
    finally:
        close_client(link.client)


def test_redact_takes_its_choices_and_settings_from_the_contract():
    import argparse

    from inference_server.redact import RedactOptions, add_arguments
    from inference_server.settings import BLEEP_MODES, MODEL_CHOICES, STYLES

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    actions = {a.dest: a for a in parser._actions}
    assert actions["style_face"].choices == actions["style_text"].choices == STYLES
    assert (actions["style_face"].default, actions["style_text"].default) == (Settings().style_face, Settings().style_text)
    assert actions["bleep"].choices == BLEEP_MODES and actions["speech_model"].choices == MODEL_CHOICES
    assert RedactOptions(targets=("faces",), strength=0.4).settings() == Settings(
        targets=Targets(plates=False, text=False), strength_face=0.4, strength_text=0.4, strength_plate=0.4)
