"""The installable package: pyproject.toml's pins, the wheel pip builds from this tree, and a
fresh virtual environment that installs it.

The wheel test builds the real wheel (pip, setuptools from PyPI) and reads its contents and
entry point: cheap enough for every run.  The full install into a fresh venv downloads the
dependencies (about 90 s with pip's cache warm, minutes without), so it is marked slow.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
COMMANDS = ("serve", "redact", "fetch-models", "setup-obs")
PACKAGES = ("inference_server", "obs_plugin", "privastream_testkit")
PACKAGE_DATA = ("inference_server/model_manifest.json", "inference_server/dashboard/index.html",
                "inference_server/dashboard/dashboard.js", "inference_server/dashboard/dashboard.css",
                "obs_plugin/effects/privastream.effect", "obs_plugin/privastream_filter.py")


def test_requirements_install_this_package_so_the_pins_live_in_one_place():
    lines = [ln.strip() for ln in (REPO / "requirements.txt").read_text().splitlines()]
    assert [ln for ln in lines if ln and not ln.startswith("#")] == ["-e .[sfu,test]"]
    project = PYPROJECT["project"]
    assert {"gpu", "sfu", "test"} <= set(project["optional-dependencies"])
    every = project["dependencies"] + [d for ds in project["optional-dependencies"].values() for d in ds]
    unpinned = [d for d in every if not re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][0-9A-Za-z.]*", d)]
    assert unpinned == [], "every dependency is pinned to one version"
    assert PYPROJECT["build-system"]["requires"] == ["setuptools==80.9.0"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel pip builds from a copy of what the package needs (a build in the tree would write
    build/ and *.egg-info beside other runs)."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for package in PACKAGES:
        shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q",
                           "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (built,) = out.glob("privastream-*.whl")
    return built


def test_wheel_holds_the_packages_their_data_and_the_console_script(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = zf.read(entry_points).decode()
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        requires = [ln.split(": ", 1)[1] for ln in zf.read(metadata).decode().splitlines()
                    if ln.startswith("Requires-Dist: ")]
    assert set(PACKAGE_DATA) <= names
    assert {n.split("/")[0] for n in names if not n.startswith("privastream-")} == set(PACKAGES)
    assert "privastream = inference_server.__main__:main" in scripts
    assert [r for r in requires if ";" not in r] == PYPROJECT["project"]["dependencies"]


def _help(cmd: list[str]) -> str:
    done = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_privastream_and_python_m_inference_server_are_the_same_command():
    privastream = Path(sys.executable).with_name("privastream")
    assert privastream.is_file(), "scripts/setup.sh installs this package into .venv (requirements.txt)"
    console, module = _help([str(privastream)]), _help([sys.executable, "-m", "inference_server"])
    assert console.startswith("usage: privastream ") and module.startswith("usage: python -m inference_server ")
    assert console.split("\n", 1)[1] == module.split("\n", 1)[1]
    assert all(f"\n    {c}" in console for c in COMMANDS)


@pytest.mark.slow
def test_a_fresh_venv_installs_the_wheel_and_gets_privastream_on_its_path(wheel, tmp_path):
    """pip install into a new venv: the command is on the venv's PATH, finds its manifest, verifies
    the models in a given cache, and records itself for OBS's script."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    pip = subprocess.run([str(env_dir / "bin" / "pip"), "install", "--disable-pip-version-check", "-q", str(wheel)],
                         capture_output=True, text=True, timeout=1200)
    assert pip.returncode == 0, pip.stderr[-3000:]
    env = {**os.environ, "PATH": f"{env_dir / 'bin'}:{os.environ['PATH']}", "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
           "PRIVASTREAM_MODEL_CACHE": str(REPO / "models" / "cache")}
    assert shutil.which("privastream", path=env["PATH"]) == str(env_dir / "bin" / "privastream")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["privastream", *args], capture_output=True, text=True, timeout=300, env=env,
                              cwd=tmp_path)

    assert all(f"\n    {c}" in run("--help").stdout for c in COMMANDS)
    fetched = run("fetch-models", "--no-progress")
    assert fetched.returncode == 0 and f"models verified in {REPO / 'models' / 'cache'}" in fetched.stdout, fetched.stderr
    setup = run("setup-obs")
    site = next((env_dir / "lib").glob("python3.*/site-packages"))
    assert setup.returncode == 0, setup.stderr
    assert "OBS script (Tools -> Scripts -> +, for an OBS whose Python is 3." in setup.stdout
    assert str(site / "obs_plugin" / "privastream_filter.py") in setup.stdout
    assert str(site) in (tmp_path / "cfg" / "privastream" / "obs-environments.json").read_text()
