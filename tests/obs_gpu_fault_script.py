"""An OBS script used only by tests/test_obs_video.py: while $PRIVASTREAM_GPU_FAULT exists, the
filter's gs_texture_create returns NULL, as on a GPU out of memory.

A mock of one libobs call, because the real failure cannot be had on cue: llvmpipe under Xvfb
allocates whatever it is asked for.  It wraps the function on the LibObs object the PrivaStream
script registered its filters with, so it must be loaded after that script.
"""

import os

from obs_plugin import libobs


def script_description():
    return "PrivaStream test: fails gs_texture_create while a file exists"


def script_load(_settings):
    obs = libobs.registered_filters()["privastream_filter"].handler.obs
    allocate, fault = obs.gs_texture_create, os.environ["PRIVASTREAM_GPU_FAULT"]
    obs.gs_texture_create = lambda *args: None if os.path.exists(fault) else allocate(*args)
