"""The systemd user unit that starts the inference server with the session (scripts/privastream-server.service).

A unit that systemd refuses, or whose ExecStart names a command that does not run, leaves the
streamer's OBS failed closed at every start with nothing but a journal line to say why.  The unit
is rendered the way docs/obs.md installs it and checked by the real systemd-analyze; the
command it starts is run with --help (serving would load every model).
"""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "scripts" / "privastream-server.service"


def rendered(tmp_path: Path) -> Path:
    """The unit as the install line in its header writes it: @REPO@ replaced by the repository's path."""
    out = tmp_path / "privastream-server.service"
    out.write_text(UNIT.read_text().replace("@REPO@", str(ROOT)))
    return out


def service_section(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(path)
    return parser["Service"]


def test_systemd_accepts_the_rendered_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing: apt-get install systemd")
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    result = subprocess.run([analyze, "--user", "verify", str(rendered(tmp_path))],
                            env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_exec_start_is_the_serve_command_and_runs(tmp_path):
    service = service_section(rendered(tmp_path))
    argv = shlex.split(service["ExecStart"])
    assert argv[1:] == ["-m", "inference_server", "serve"]
    assert Path(service["WorkingDirectory"]) == ROOT
    result = subprocess.run([*argv, "--help"], cwd=service["WorkingDirectory"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--state-file" in result.stdout
