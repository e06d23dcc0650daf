"""Real OBS Studio under Xvfb for the tests and the benchmark.

`ObsSession` starts its own Xvfb, writes a complete OBS config (profile, scene collection that
loads our script, websocket with a password) into a temporary HOME, starts
`obs --minimize-to-tray` of the OBS major asked for through `scripts/run_obs.sh` (29: this
machine's; 30 and 32: Debian's, from their cached root filesystems), talks obs-websocket through
simpleobsws, and stops it the way its close button does: StopRecord first, then WM_DELETE_WINDOW
to its main window, then Xvfb.

Not SIGINT: OBS 29.0's SIGINT handler calls QWidget::close() inside the signal handler, on top of
whatever the main thread was doing.  Under load that crashed OBS in QWidget::event now and then
(exit status -11 after a clean "Shutting down", reproduced with two busy cores and gdb attached).
Under Xvfb there is no system tray, so --minimize-to-tray still leaves the main window mapped.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import simpleobsws
from PIL import Image
from Xlib import X, display as xdisplay, protocol

from . import REPO

SCRIPT = REPO / "obs_plugin" / "privastream_filter.py"
RUN_OBS = REPO / "scripts" / "run_obs.sh"
OBS_MAJORS = tuple(int(m) for m in os.environ.get("PRIVASTREAM_OBS_MAJORS", "29,30,32").split(","))
"""The majors the per-major OBS tests run on (PRIVASTREAM_OBS_MAJORS=29,32 drops OBS 30)."""
OBS_NOT_READY = 207
"""obs-websocket's RequestStatus NotReady."""
PROFILE = "PrivaStream"
COLLECTION = "PrivaStreamTest"


def obs_root(major: int) -> Path:
    """The root filesystem OBS `major` runs in (/ for this machine's 29), built first if missing."""
    if major == 29:
        return Path("/")
    subprocess.run([str(RUN_OBS), "--build", str(major)], check=True, timeout=1800)
    cache = os.environ.get("PRIVASTREAM_CACHE") or str(Path(pwd.getpwuid(os.getuid()).pw_dir) / ".cache" / "privastream")
    return Path(cache) / f"obs-root-{major}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def media_source(name: str, path: Path, filters: list[dict] = (), looping: bool = True) -> dict:
    return {"id": "ffmpeg_source", "versioned_id": "ffmpeg_source", "name": name, "uuid": secrets.token_hex(8),
            "settings": {"local_file": str(path), "looping": looping, "restart_on_activate": True,
                         "close_when_inactive": False, "hw_decode": False},
            "filters": list(filters), "enabled": True, "volume": 1.0, "muted": False, "mixers": 255,
            "monitoring_type": 0, "sync": 0, "flags": 0}


def image_source(name: str, path: Path, filters: list[dict] = ()) -> dict:
    return {"id": "image_source", "versioned_id": "image_source", "name": name, "uuid": secrets.token_hex(8),
            "settings": {"file": str(path)}, "filters": list(filters), "enabled": True, "mixers": 0}


def filter_entry(kind: str, name: str, settings: dict | None = None) -> dict:
    return {"id": kind, "versioned_id": kind, "name": name, "uuid": secrets.token_hex(8),
            "settings": settings or {}, "enabled": True}


def _ini(sections: dict) -> str:
    return "".join(f"[{s}]\n" + "".join(f"{k}={v}\n" for k, v in kv.items()) + "\n" for s, kv in sections.items())


class ObsSession:
    """One OBS process.  `sources` are scene-collection source dicts; all go into one scene."""

    def __init__(self, home: Path, sources: list[dict], canvas=(640, 360), fps: int = 30, env: dict | None = None,
                 start_recording: bool = False, load_script: bool = True, extra_scripts: tuple[Path, ...] = (),
                 major: int = 29, script_first: bool = True):
        self.home, self.sources, self.canvas, self.fps, self.major = home, sources, canvas, fps, major
        self.extra_env, self.start_recording, self.load_script = env or {}, start_recording, load_script
        self.extra_scripts, self.script_first = extra_scripts, script_first
        self.password = secrets.token_hex(12)
        self.port = free_port()
        self.record_dir = home / "recordings"
        self.xvfb = self.obs = None
        self.display = ""
        self.exit_code = None
        self._loop = asyncio.new_event_loop()
        self._ws = None

    # --- config ---------------------------------------------------------------------------
    def _write_config(self) -> None:
        cfg = self.home / ".config" / "obs-studio"
        (cfg / "basic" / "profiles" / PROFILE).mkdir(parents=True, exist_ok=True)
        (cfg / "basic" / "scenes").mkdir(parents=True, exist_ok=True)
        self.record_dir.mkdir(parents=True, exist_ok=True)
        general = {"FirstRun": "true", "LastVersion": "486539266", "ConfirmOnExit": "false",
                   **{f"Pre{v}Defaults": "false" for v in ("19", "21", "23", "24.1")}}
        (cfg / "global.ini").write_text(_ini({
            "General": general,
            "Basic": {"Profile": PROFILE, "ProfileDir": PROFILE, "SceneCollection": COLLECTION,
                      "SceneCollectionFile": COLLECTION},
            # No preview: it doubles the llvmpipe render work, and on exit under load OBS 29 once
            # crashed in Qt's event loop (QWidget::event) with it on.
            "BasicWindow": {"PreviewEnabled": "false"},
            "OBSWebSocket": {"FirstLoad": "false", "ServerEnabled": "true", "ServerPort": self.port,
                             "AlertsEnabled": "false", "AuthRequired": "true", "ServerPassword": self.password},
        }))
        w, h = self.canvas
        (cfg / "basic" / "profiles" / PROFILE / "basic.ini").write_text(_ini({
            "General": {"Name": PROFILE},
            "Video": {"BaseCX": w, "BaseCY": h, "OutputCX": w, "OutputCY": h, "FPSType": 0, "FPSCommon": self.fps},
            "Audio": {"SampleRate": 48000, "ChannelSetup": "Stereo"},
            "Output": {"Mode": "Simple"},
            "SimpleOutput": {"FilePath": str(self.record_dir), "RecFormat": "mkv", "RecEncoder": "x264",
                             "RecQuality": "Stream", "Preset": "ultrafast", "VBitrate": 4000, "ABitrate": 160},
        }))
        items = [{"name": s["name"], "source_uuid": s["uuid"], "visible": True, "locked": False, "id": i + 1,
                  "pos": {"x": 0, "y": 0}, "rot": 0.0, "scale": {"x": 1, "y": 1}, "align": 5,
                  "bounds_type": 0, "bounds_align": 0, "bounds": {"x": 0, "y": 0},
                  "crop_left": 0, "crop_top": 0, "crop_right": 0, "crop_bottom": 0}
                 for i, s in enumerate(self.sources)]
        scene = {"id": "scene", "versioned_id": "scene", "name": "Scene", "uuid": secrets.token_hex(8),
                 "settings": {"items": items, "id_counter": len(items)}, "filters": [], "enabled": True, "mixers": 0}
        ours = [SCRIPT] if self.load_script else []
        # OBS loads scripts in this order, before any source.
        scripts = ours + list(self.extra_scripts) if self.script_first else list(self.extra_scripts) + ours
        modules = {"scripts-tool": [{"path": str(p), "settings": {}} for p in scripts]}
        (cfg / "basic" / "scenes" / f"{COLLECTION}.json").write_text(json.dumps({
            "name": COLLECTION, "current_scene": "Scene", "current_program_scene": "Scene",
            "scene_order": [{"name": "Scene"}], "sources": [scene, *self.sources], "modules": modules,
            "transitions": [], "current_transition": "Fade", "transition_duration": 300,
        }, indent=1))

    # --- processes ------------------------------------------------------------------------
    def _start_xvfb(self) -> str:
        for n in range(91, 200):
            if Path(f"/tmp/.X11-unix/X{n}").exists() or Path(f"/tmp/.X{n}-lock").exists():
                continue
            self.xvfb = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", "1280x720x24", "-nolisten", "tcp"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(100):
                if Path(f"/tmp/.X11-unix/X{n}").exists():
                    return f":{n}"
                if self.xvfb.poll() is not None:
                    break
                time.sleep(0.05)
        raise RuntimeError("no free X display for Xvfb")

    def __enter__(self) -> "ObsSession":
        self._write_config()
        self.display = self._start_xvfb()
        # PYTHONFAULTHANDLER: a crash inside OBS leaves every Python thread's stack in obs.stdout.
        env = {**os.environ, "HOME": str(self.home), "DISPLAY": self.display, "LIBGL_ALWAYS_SOFTWARE": "1",
               "XDG_CONFIG_HOME": str(self.home / ".config"), "PYTHONFAULTHANDLER": "1", **self.extra_env}
        # --multi: another OBS running (a test beside this one) otherwise holds this one at a modal warning.
        cmd = [str(RUN_OBS), str(self.major), "--minimize-to-tray", "--multi", "--disable-updater",
               "--disable-shutdown-check"]
        if self.start_recording:
            cmd.append("--startrecording")
        self.obs = subprocess.Popen(cmd, env=env, cwd=self.home, stdout=(self.home / "obs.stdout").open("wb"),
                                    stderr=subprocess.STDOUT)
        try:
            self._connect(timeout=60)
        except BaseException:
            self.close()
            raise
        return self

    def _connect(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.obs.poll() is not None:
                raise RuntimeError(f"OBS exited during start-up [code:{self.obs.returncode}]\n{self.log_text()[-3000:]}")
            try:
                ws = simpleobsws.WebSocketClient(url=f"ws://127.0.0.1:{self.port}", password=self.password)
                self._loop.run_until_complete(ws.connect())
                if self._loop.run_until_complete(ws.wait_until_identified(10)):
                    self._ws = ws
                    self._wait_until_ready(deadline)
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError("obs-websocket did not answer within %ss" % timeout)

    def _wait_until_ready(self, deadline: float) -> None:
        """obs-websocket 5.3+ (OBS 30 on) answers every request with code 207 "not ready" until OBS
        has finished loading the scene collection."""
        while True:
            resp = self._loop.run_until_complete(self._ws.call(simpleobsws.Request("GetVersion"), timeout=30))
            if resp.ok() or resp.requestStatus.code != OBS_NOT_READY:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("OBS did not finish loading in time")
            time.sleep(0.2)

    def call(self, request: str, data: dict | None = None) -> dict:
        resp = self._loop.run_until_complete(self._ws.call(simpleobsws.Request(request, data), timeout=30))
        if not resp.ok():
            raise RuntimeError(f"{request} failed: {resp.requestStatus.code} {resp.requestStatus.comment}")
        return resp.responseData or {}

    def screenshot(self, source: str) -> np.ndarray:
        """GetSourceScreenshot: lossless PNG of the source with its filters applied -> HxWx3 uint8."""
        w, h = self.canvas
        data = self.call("GetSourceScreenshot", {"sourceName": source, "imageFormat": "png",
                                                 "imageWidth": w, "imageHeight": h})["imageData"]
        png = base64.b64decode(data.split(",", 1)[1])
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))

    def stop_recording(self, timeout: float = 30.0) -> Path:
        """StopRecord, then wait until the output has really stopped: quitting OBS while the
        muxer is still closing the file hung OBS 29 on exit."""
        path = Path(self.call("StopRecord")["outputPath"])
        deadline = time.monotonic() + timeout
        while self.call("GetRecordStatus")["outputActive"] and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        return path

    def log_text(self) -> str:
        logs = sorted((self.home / ".config" / "obs-studio" / "logs").glob("*.txt"))
        return logs[-1].read_text(errors="replace") if logs else ""

    def _ask_to_quit(self) -> bool:
        """WM_DELETE_WINDOW to OBS's main window, handled in Qt's own event loop. -> sent."""
        try:
            d = xdisplay.Display(self.display)
        except Exception:
            return False
        try:
            pid_atom, protocols, delete = (d.intern_atom(n) for n in ("_NET_WM_PID", "WM_PROTOCOLS", "WM_DELETE_WINDOW"))
            sent = False
            for w in d.screen().root.query_tree().children:
                pid = w.get_full_property(pid_atom, X.AnyPropertyType)
                name = w.get_wm_name() or ""
                if pid is None or pid.value[0] != self.obs.pid or not str(name).startswith("OBS "):
                    continue
                w.send_event(protocol.event.ClientMessage(window=w, client_type=protocols,
                                                          data=(32, [delete, X.CurrentTime, 0, 0, 0])))
                sent = True
            d.flush()
            return sent
        finally:
            d.close()

    def close(self) -> int | None:
        """Stops OBS (close its main window, then wait) and Xvfb; returns OBS's exit status.  Idempotent."""
        if self._ws is not None:
            try:
                self._loop.run_until_complete(self._ws.disconnect())
            except Exception:
                pass
            self._ws = None
        if self.obs is not None and self.exit_code is None:
            if self.obs.poll() is None and not self._ask_to_quit():
                self.obs.send_signal(signal.SIGINT)  # no main window (start-up failed): the only way left
            try:
                self.exit_code = self.obs.wait(timeout=45)
            except subprocess.TimeoutExpired:
                self._dump_stacks()
                self.obs.kill()
                self.exit_code = self.obs.wait()
        if self.xvfb is not None and self.xvfb.poll() is None:
            self.xvfb.terminate()
            self.xvfb.wait(timeout=10)
        if not self._loop.is_closed():
            self._loop.close()
        return self.exit_code

    def _dump_stacks(self) -> None:
        """Every thread's stack of a hung OBS into obs_hang_stacks.txt beside its log, when gdb is here."""
        if shutil.which("gdb"):
            with (self.home / "obs_hang_stacks.txt").open("wb") as out:
                subprocess.run(["gdb", "-p", str(self.obs.pid), "-batch", "-ex", "thread apply all bt 30"],
                               stdout=out, stderr=subprocess.STDOUT, timeout=60, check=False)

    def __exit__(self, *exc) -> None:
        self.close()
