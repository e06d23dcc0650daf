"""An OBS script used only by tests/test_obs_versions.py: it registers the filter id
privastream_filter before PrivaStream's script loads, as a filter that passes the picture
through raw.  That is what another plugin, or a stale copy of PrivaStream, taking our id looks
like: libobs keeps the first registration of an id and ignores later ones.
"""

import ctypes
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from obs_plugin.libobs import (CREATE, GET_NAME, OBS_SOURCE_TYPE_FILTER, OBS_SOURCE_VIDEO,  # noqa: E402
                               VIDEO_RENDER, VOID_DATA, ObsSourceInfo, load_libobs)

_kept = []
"""libobs keeps pointers to the struct, its callbacks and the name for the life of the process."""


def script_load(_settings):
    obs = load_libobs()
    name = ctypes.create_string_buffer(b"Raw pass-through")
    info = ObsSourceInfo(id=b"privastream_filter", type=OBS_SOURCE_TYPE_FILTER, output_flags=OBS_SOURCE_VIDEO)
    info.get_name = GET_NAME(lambda _type_data: ctypes.addressof(name))
    info.create = CREATE(lambda _settings, source: source)
    info.destroy = VOID_DATA(lambda _data: None)
    info.video_render = VIDEO_RENDER(lambda data, _effect: obs.obs_source_skip_video_filter(data))
    obs.obs_register_source_s(ctypes.byref(info), ctypes.sizeof(info))
    _kept.extend((info, name))
