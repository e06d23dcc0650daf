"""The ctypes layer (obs_plugin/libobs.py) against each OBS major's own libobs headers.

Debian's libobs-dev for this machine's OBS 29 and inside the OBS 30 and 32 root filesystems
(scripts/run_obs.sh builds them).  scripts/check_obs_abi.py compiles the headers' view of every
struct field, function and constant the plugin uses and compares it with the ctypes tables: a
wrong value here is a crash or a raw frame in OBS, and nothing else would notice it.  Also the
policy for majors outside the verified ones.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from privastream_testkit.obs import REPO, obs_root
from obs_plugin.libobs import AbiError, version_note

CHECK = REPO / "scripts" / "check_obs_abi.py"


@pytest.mark.parametrize("major", [29, 30, 32])
def test_ctypes_layer_matches_libobs_headers(major):
    headers = obs_root(major) / "usr" / "include" / "obs"
    run = subprocess.run([sys.executable, str(CHECK), "--headers", str(headers)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"libobs headers {major}." in run.stdout and ", 0 mismatches" in run.stdout


def test_newer_majors_register_with_a_warning_and_older_ones_are_refused():
    assert version_note((29, 0, 2)) == version_note((32, 2, 2)) == ""
    note = version_note((33, 0, 1))
    assert note.startswith("OBS 33.0.1 is newer than the versions PrivaStream was checked on (29-32)")
    with pytest.raises(AbiError, match=r"OBS 28\.1\.2 is older than the oldest version PrivaStream supports \(29\)"):
        version_note((28, 1, 2))
