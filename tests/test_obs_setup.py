"""`privastream setup-obs` against a real OBS of each major in OBS_MAJORS under Xvfb: adds both
filters, is idempotent, and fails with one clear line for an unreachable OBS, a wrong password, a
missing source, WHIP on an OBS older than 30, and WHIP on an OBS 30+ built without the WHIP output
(Debian's 30 and 32, the real obs-websocket's answer).  The settings setup_obs sends to an OBS
that has WHIP are checked against an obs-websocket stub (tests/obs_websocket_stub.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from privastream_testkit.media import make_flash_clip
from privastream_testkit.obs import OBS_MAJORS, REPO, ObsSession, free_port, media_source
from obs_websocket_stub import ObsWebsocketStub

needs_obs = pytest.mark.skipif(not (shutil.which("obs") and shutil.which("Xvfb")), reason="needs obs-studio and Xvfb")


CONFIG_HOME = tempfile.TemporaryDirectory(prefix="privastream-setup-obs-")
"""Where setup-obs records the environment here, instead of the user's own ~/.config."""


def setup_obs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inference_server", "setup-obs", *args], capture_output=True,
                          text=True, timeout=60, cwd=REPO, env={**os.environ, "XDG_CONFIG_HOME": CONFIG_HOME.name})


@pytest.fixture(scope="module", params=OBS_MAJORS, ids=lambda m: f"obs{m}")
def obs(tmp_path_factory, request):
    home = tmp_path_factory.mktemp("obs_setup")
    clip = make_flash_clip(home / "clip.mkv", seconds=2)
    with ObsSession(home, [media_source("Clip", clip)], major=request.param) as session:
        yield session
    assert session.exit_code == 0


@needs_obs
def test_adds_both_filters_once_and_updates_on_rerun(obs):
    auth = ["--port", str(obs.port), "--password", obs.password]
    first = setup_obs(*auth, "--source", "Clip", "--delay", "0.5")
    assert first.returncode == 0, first.stderr
    assert "added 'PrivaStream Filter' to 'Clip'" in first.stdout
    assert "added 'PrivaStream Audio Filter' to 'Clip'" in first.stdout
    second = setup_obs(*auth, "--source", "Clip", "--delay", "0.8")
    assert second.returncode == 0 and second.stdout.count("updated") == 2, second.stdout
    filters = obs.call("GetSourceFilterList", {"sourceName": "Clip"})["filters"]
    assert sorted(f["filterKind"] for f in filters) == ["privastream_audio_filter", "privastream_filter"]
    assert all(f["filterSettings"]["delay_s"] == 0.8 for f in filters)


@needs_obs
def test_clear_errors(obs):
    auth = ["--port", str(obs.port), "--password", obs.password]
    missing = setup_obs(*auth, "--source", "Nope")
    assert missing.returncode == 1 and "source 'Nope' does not exist in OBS (sources: Clip)" in missing.stderr
    wrong = setup_obs("--port", str(obs.port), "--password", "wrong", "--source", "Clip")
    assert wrong.returncode == 1 and "refused the password" in wrong.stderr
    away = setup_obs("--port", str(free_port()), "--password", "x", "--source", "Clip")
    assert away.returncode == 1 and "cannot reach obs-websocket" in away.stderr
    whip = setup_obs(*auth, "--source", "Clip", "--whip-url", "http://127.0.0.1:8080/whip/live", "--whip-token", "t")
    if obs.major < 30:
        assert whip.returncode == 1 and "WHIP output needs OBS 30 or later (this OBS is 29." in whip.stderr
    else:
        # The real obs-websocket of Debian's OBS 30 and 32, built without obs-webrtc: no "whip_custom"
        # service, and the stream output stays what it was.
        assert whip.returncode == 1 and f"this OBS {obs.major}." in whip.stderr, whip.stderr
        assert "has no WHIP output (its build lacks the obs-webrtc plugin" in whip.stderr
        assert obs.call("GetStreamServiceSettings")["streamServiceType"] == "rtmp_common"
    assert "Traceback" not in missing.stderr + wrong.stderr + away.stderr + whip.stderr


def test_whip_on_obs_30_sets_the_stream_service():
    """The branch a real OBS 29 never reaches: OBS's own WHIP service (obs-webrtc's "whip_custom",
    settings "server" and "bearer_token") with the SFU's URL and publish token."""
    url = "http://127.0.0.1:8080/whip/live"
    with ObsWebsocketStub("30.2.3", sources=("Camera",)) as stub:
        done = setup_obs("--port", str(stub.port), "--source", "Camera", "--whip-url", url, "--whip-token", "s3cret")
    assert done.returncode == 0, done.stderr
    assert f"stream output set to WHIP {url} with a publish token" in done.stdout
    assert ("SetStreamServiceSettings", {"streamServiceType": "whip_custom",
                                         "streamServiceSettings": {"server": url, "bearer_token": "s3cret"}}) in stub.requests
    created = [d for r, d in stub.requests if r == "CreateSourceFilter"]
    assert sorted(d["filterKind"] for d in created) == ["privastream_audio_filter", "privastream_filter"]
