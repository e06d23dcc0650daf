"""How OBS's script finds the packages it imports (obs_plugin/environment.py): the environment
`privastream setup-obs` records, a checkout's .venv built for the same Python, and clear words
when there is none.  Real venvs and real records; only OBS's Python version differs where a
record or a venv names another one.

The description test loads the OBS script in a plain Python with a stand-in `obspython` module
(a mock: the real one exists only inside OBS) to read what OBS shows under Tools -> Scripts; the
last test runs the real OBS 29 with a record whose environment is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from PIL import Image

from privastream_testkit.obs import ObsSession, filter_entry, image_source
from obs_plugin import environment

REPO = Path(__file__).resolve().parent.parent
THIS = environment.python_version()


@pytest.fixture
def config(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config" / "privastream" / environment.FILE_NAME


def test_setup_obs_records_this_environment_and_the_script_finds_it(config, tmp_path):
    path, recorded = environment.record()
    assert path == config and recorded.python == THIS
    found = environment.find(tmp_path)  # no .venv there: only the record can answer
    assert found.site_packages == recorded.site_packages
    assert any(Path(p, "numpy").is_dir() for p in found.site_packages)
    assert str(config) in found.origin


def test_a_checkout_venv_for_this_python_serves_without_a_record(config, tmp_path):
    venv.create(tmp_path / ".venv", with_pip=False)
    found = environment.find(tmp_path)
    assert found.origin == str(tmp_path / ".venv")
    assert [Path(p).is_dir() for p in found.site_packages] == [True] * len(found.site_packages)
    assert all(Path(p).is_relative_to(tmp_path / ".venv") for p in found.site_packages)


def test_an_environment_for_another_python_is_named_and_refused(config, tmp_path):
    """What OBS 30 (Python 3.13) meets in a checkout set up for OBS 29 (3.11)."""
    venv.create(tmp_path / ".venv", with_pip=False)
    cfg = tmp_path / ".venv" / "pyvenv.cfg"
    cfg.write_text(cfg.read_text().replace(f"version = {THIS}", "version = 3.99"))
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"3.98": {"prefix": "/opt/ps", "site_packages": [str(tmp_path)]}}))
    with pytest.raises(environment.EnvironmentNotFound) as err:
        environment.find(tmp_path)
    assert str(err.value) == (f"no PrivaStream environment for OBS's Python {THIS} (found: Python 3.98 in {config}; "
                              f"Python 3.99 in {tmp_path / '.venv'}); install PrivaStream with a Python {THIS} and "
                              "run `privastream setup-obs` from there")


def test_a_recorded_environment_that_is_gone_says_so(config, tmp_path):
    config.parent.mkdir(parents=True)
    gone = tmp_path / "deleted" / "site-packages"
    config.write_text(json.dumps({THIS: {"prefix": "/opt/ps", "site_packages": [str(gone)]}}))
    with pytest.raises(environment.EnvironmentNotFound, match=f"environment recorded in .* is gone .missing:{gone}"):
        environment.find(REPO)  # even with the checkout's .venv beside it: the record is what the user chose


def test_a_damaged_record_says_so_and_setup_obs_replaces_it(config, tmp_path):
    config.parent.mkdir(parents=True)
    config.write_text("{not json")
    with pytest.raises(environment.EnvironmentNotFound, match="cannot read .*; run `privastream setup-obs` again"):
        environment.find(tmp_path)
    environment.record()
    assert environment.find(tmp_path).python == THIS


def test_activate_puts_the_environment_behind_the_script_package(config, tmp_path, monkeypatch):
    venv.create(tmp_path / ".venv", with_pip=False)
    monkeypatch.setattr(sys, "path", ["/usr/lib/obs-python"])
    found = environment.activate(tmp_path)
    assert sys.path == [str(tmp_path), *found.site_packages, "/usr/lib/obs-python"]


OBSPYTHON_STANDIN = "OBS_TEXT_INFO = 0\n"


@pytest.mark.parametrize("found", [True, False], ids=["found", "missing"])
def test_the_script_description_says_where_its_packages_come_from(tmp_path, found):
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "obspython.py").write_text(OBSPYTHON_STANDIN)
    config = tmp_path / "config"
    if not found:
        (config / "privastream").mkdir(parents=True)
        (config / "privastream" / environment.FILE_NAME).write_text(
            json.dumps({THIS: {"prefix": "/opt/ps", "site_packages": [str(tmp_path / "gone")]}}))
    code = ("import runpy; ns = runpy.run_path('obs_plugin/privastream_filter.py'); "
            "print(ns['script_description']())")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "XDG_CONFIG_HOME": str(config), "PYTHONPATH": str(stub)})
    assert out.returncode == 0, out.stderr
    if found:
        assert f"Python {THIS}, packages from {REPO / '.venv'}." in out.stdout
    else:
        assert "<b>No PrivaStream environment found</b>: the Python" in out.stdout
        assert "run `privastream setup-obs` from where PrivaStream is installed now" in out.stdout


@pytest.mark.skipif(not (shutil.which("obs") and shutil.which("Xvfb")), reason="needs obs-studio and Xvfb")
def test_obs_says_why_when_the_recorded_environment_is_gone(tmp_path):
    """OBS 29's own Python 3.11 lacks websockets: with the recorded environment gone (an uninstalled
    venv), the filters cannot register, the filtered source is hidden, and the log names the record."""
    record = tmp_path / ".config" / "privastream" / environment.FILE_NAME
    record.parent.mkdir(parents=True)
    gone = tmp_path / "uninstalled" / "site-packages"
    record.write_text(json.dumps({"3.11": {"prefix": str(gone.parent), "site_packages": [str(gone)]}}))
    png = tmp_path / "white.png"
    Image.new("RGB", (64, 64), "white").save(png)
    src = image_source("Camera", png, [filter_entry("privastream_filter", "PrivaStream")])
    with ObsSession(tmp_path, [src], major=29) as obs:
        shot = obs.screenshot("Camera")
        log = obs.log_text()
    assert obs.exit_code == 0
    assert shot.max() == 0, "a source whose filter cannot run was drawn"
    assert (f"no PrivaStream environment, using OBS's own Python packages [reason:the Python 3.11 environment "
            f"recorded in {record} is gone [missing:{gone}]") in log
    assert "websockets.asyncio.client cannot be imported in OBS's Python 3.11" in log
    assert "Traceback" not in log


def test_setup_obs_that_cannot_write_its_record_says_so_without_a_traceback(tmp_path):
    (tmp_path / "privastream").write_text("a file where the folder belongs")
    done = subprocess.run([sys.executable, "-m", "inference_server", "setup-obs"], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)})
    assert done.returncode == 1
    assert done.stderr.startswith(f"setup-obs: cannot record this environment in {tmp_path / 'privastream'}")
    assert "Traceback" not in done.stderr
