"""An OBS script used only by tests/test_obs_video.py: reloads the PrivaStream script the way
Tools -> Scripts -> "Reload Scripts" does.

obs-websocket cannot reload a script, so when $PRIVASTREAM_RELOAD_TRIGGER appears this script
asks libobs-scripting itself: obs_script_create() on privastream_filter.py (a second script
object on the module OBS already imported, which runs its script_load again) and then
obs_script_reload(), the call behind the UI's button (script_unload, importlib-style module
reload, script_load).  It runs on a thread of its own, as the UI's button does on the UI
thread: from a timer callback the unload would wait on the tick that is running it.  The
outcome goes to $PRIVASTREAM_RELOAD_OUT; the script object is destroyed at unload (OBS exit).
"""

import ctypes
import os
import threading
import time

_script = None
_done = threading.Event()


SCRIPTING_LIBRARIES = ("libobs-scripting.so.1", "libobs-scripting.so.0")
"""Debian's OBS 29 names it .so.1, its OBS 30 and 32 .so.0."""


def _scripting():
    for name in SCRIPTING_LIBRARIES:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    else:
        raise OSError("libobs-scripting not found [tried:" + ",".join(SCRIPTING_LIBRARIES) + "]")
    lib.obs_script_create.restype = ctypes.c_void_p
    lib.obs_script_create.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    lib.obs_script_reload.restype = ctypes.c_bool
    lib.obs_script_reload.argtypes = [ctypes.c_void_p]
    lib.obs_script_destroy.argtypes = [ctypes.c_void_p]
    return lib


def _watch():
    global _script
    trigger, out = os.environ["PRIVASTREAM_RELOAD_TRIGGER"], os.environ["PRIVASTREAM_RELOAD_OUT"]
    while not _done.is_set() and not os.path.exists(trigger):
        time.sleep(0.1)
    if _done.is_set():
        return
    try:
        lib = _scripting()
        _script = lib.obs_script_create(os.environ["PRIVASTREAM_RELOAD_SCRIPT"].encode(), None)
        result = "reloaded" if _script and lib.obs_script_reload(_script) else "reload failed"
    except Exception as e:  # never raise into OBS
        result = f"reload failed: {e}"
    with open(out, "w") as f:
        f.write(result)


def script_load(_settings):
    threading.Thread(target=_watch, daemon=True, name="privastream-test-reload").start()


def script_unload():
    _done.set()
    if _script:
        _scripting().obs_script_destroy(_script)
