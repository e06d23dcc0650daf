"""Where OBS's Python finds the packages the filters import (numpy, websockets).

OBS embeds a Python of its own (3.11 in Debian 12's OBS 29, 3.13 in OBS 30, 3.14 in OBS 32)
that has none of them.  `privastream setup-obs`, run from the environment PrivaStream is
installed in, records that environment's site-packages, keyed by Python version, in
`environments_file()`; the OBS script puts the one for its own Python on sys.path.  Two places
serve without a record: the site-packages the script itself was installed into, and a source
checkout's `.venv`, when either was built for OBS's Python version (another version's numpy
cannot load).

Standard library only: this runs before anything else can be imported.
"""

from __future__ import annotations

import json
import os
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILE_NAME = "obs-environments.json"
DIST_GLOB = "privastream-*.dist-info"


class EnvironmentNotFound(Exception):
    """No environment for OBS's Python; the message says what was looked at and what to do."""


@dataclass(frozen=True)
class Environment:
    python: str
    """Its Python version, "3.11"."""
    site_packages: tuple[str, ...]
    origin: str
    """Where it was found, for OBS's log and the script's panel."""


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def environments_file() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "privastream" / FILE_NAME


def _read_records(path: Path) -> dict[str, dict[str, Any]]:
    """Recorded environments by Python version; raises EnvironmentNotFound for a file that is not ours."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise EnvironmentNotFound(f"cannot read {path} ({exc}); run `privastream setup-obs` again") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise EnvironmentNotFound(f"{path} is not a PrivaStream environments file; run `privastream setup-obs` again")
    return data


def record(path: Path | None = None) -> tuple[Path, Environment]:
    """Records the running interpreter's environment for an OBS with the same Python version."""
    path = path or environments_file()
    paths = sysconfig.get_paths()
    env = Environment(python_version(), tuple(dict.fromkeys((paths["purelib"], paths["platlib"]))), sys.prefix)
    try:
        records = _read_records(path)
    except EnvironmentNotFound:
        records = {}  # unreadable: this record replaces it
    records[env.python] = {"prefix": env.origin, "site_packages": list(env.site_packages)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(records, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path, env


def _venv_version(venv: Path) -> str | None:
    """major.minor of the Python a venv was built from (its pyvenv.cfg), or None when it is none."""
    try:
        lines = (venv / "pyvenv.cfg").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            return ".".join(value.strip().split(".")[:2])
    return None


def find(package_root: Path) -> Environment:
    """The environment for this Python: recorded, the one the script is installed in, or the
    checkout's .venv.  Raises EnvironmentNotFound saying what was found for other versions."""
    want = python_version()
    path = environments_file()
    records = _read_records(path)
    entry = records.get(want)
    if entry is not None:
        dirs = tuple(str(d) for d in entry.get("site_packages", []))
        missing = [d for d in dirs if not Path(d).is_dir()]
        if not dirs or missing:
            raise EnvironmentNotFound(f"the Python {want} environment recorded in {path} is gone "
                                      f"[missing:{','.join(missing) or 'site-packages'}]; run `privastream setup-obs` "
                                      "from where PrivaStream is installed now")
        return Environment(want, dirs, f"{entry.get('prefix', '?')} (recorded in {path})")
    if any(package_root.glob(DIST_GLOB)):
        return Environment(want, (str(package_root),), f"{package_root} (installed beside the script)")
    venv = package_root / ".venv"
    venv_version = _venv_version(venv)
    if venv_version == want:
        paths = sysconfig.get_paths(scheme="venv", vars={"base": str(venv), "platbase": str(venv)})
        return Environment(want, tuple(dict.fromkeys((paths["purelib"], paths["platlib"]))), str(venv))
    found = [f"Python {v} in {path}" for v in sorted(records)]
    if venv_version:
        found.append(f"Python {venv_version} in {venv}")
    raise EnvironmentNotFound(f"no PrivaStream environment for OBS's Python {want} (found: {'; '.join(found) or 'none'}); "
                              f"install PrivaStream with a Python {want} and run `privastream setup-obs` from there")


def activate(package_root: Path) -> Environment:
    """Puts the environment for this Python on sys.path, ahead of OBS's own packages but behind
    the script's package root, so that the obs_plugin OBS loaded is the one that runs."""
    env = find(package_root)
    for site in reversed(env.site_packages):
        if site not in sys.path:
            sys.path.insert(0, site)
    root = str(package_root)
    if root in sys.path:
        sys.path.remove(root)
    sys.path.insert(0, root)
    return env
