"""The ctypes layer over libobs: structs, prototypes and where libobs lives on each OS.

Why ctypes: OBS's `obspython` module hides `obs_register_source` and cannot map a stage
surface or take an audio callback, so the filters are registered
with a hand-built `struct obs_source_info`.

This module must stay in `sys.modules` across script reloads: libobs keeps pointers to the
registered `obs_source_info`, its callback thunks and name buffers forever, and refuses to
register an id twice.  `register_filter()` therefore registers each id once and afterwards only
swaps the Python handler object the thunks forward to.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from ctypes import (CFUNCTYPE, POINTER, Structure, c_bool, c_char_p, c_double, c_float, c_int, c_longlong,
                    c_size_t, c_uint8, c_uint32, c_uint64, c_void_p)

# Where libobs lives.  This layer would load on Windows and macOS too, but the plugin does not run
# there: its transport (inference_server/shm.py) uses /dev/shm, which macOS lacks, and os.getuid,
# which Windows lacks.
LIBRARY_NAMES = {
    "linux": ("libobs.so.0", "libobs.so"),
    "win32": ("obs.dll",),
    "darwin": ("libobs.framework/libobs", "libobs.0.dylib"),
}
# Majors whose headers agree with every struct field, function and constant declared here
# (scripts/check_obs_abi.py; docs/obs.md says how each was checked).  A newer major still gets
# the filters, with a warning, because libobs only ever appends to `obs_source_info`; an older
# one, or any whose registration does not read back, gets none (and failsafe.py hides its sources).
VERIFIED_MAJORS = (29, 30, 31, 32)

# libobs enums and flags used here (values from libobs/obs-source.h, graphics/graphics.h, obs-properties.h).
OBS_SOURCE_TYPE_FILTER = 1
OBS_SOURCE_VIDEO = 1 << 0
OBS_SOURCE_AUDIO = 1 << 1
GS_RGBA = 3
GS_RGBA32F = 10
GS_ZS_NONE = 0
GS_DYNAMIC = 1 << 1
GS_CLEAR_COLOR = 1 << 0
GS_BLEND_ZERO = 0
GS_BLEND_ONE = 1
GS_BLEND_SRCALPHA = 4
GS_BLEND_INVSRCALPHA = 5
OBS_ALLOW_DIRECT_RENDERING = 1
OBS_EFFECT_DEFAULT = 0
OBS_TEXT_DEFAULT = 0
OBS_TEXT_INFO = 3
OBS_TEXT_INFO_NORMAL = 0
OBS_TEXT_INFO_WARNING = 1
OBS_TEXT_INFO_ERROR = 2
OBS_COMBO_TYPE_LIST = 2
OBS_COMBO_FORMAT_STRING = 3
OBS_GROUP_NORMAL = 1
OBS_EDITABLE_LIST_TYPE_STRINGS = 0
LOG_ERROR, LOG_WARNING, LOG_INFO = 100, 200, 300
MAX_AV_PLANES = 8

log = logging.getLogger("privastream.obs")


class AbiError(RuntimeError):
    """This OBS cannot take the filters: too old, lacking a function, or a registration that did not hold."""


def version_note(version: tuple[int, int, int]) -> str:
    """'' for a verified major, a warning for a newer one; AbiError for one older than all verified."""
    major = version[0]
    shown = ".".join(map(str, version))
    if major < VERIFIED_MAJORS[0]:
        raise AbiError(f"OBS {shown} is older than the oldest version PrivaStream supports ({VERIFIED_MAJORS[0]})")
    if major not in VERIFIED_MAJORS:
        return (f"OBS {shown} is newer than the versions PrivaStream was checked on ({VERIFIED_MAJORS[0]}-"
                f"{VERIFIED_MAJORS[-1]}): check the video is covered before you stream.")
    return ""

# Callback signatures of struct obs_source_info.
GET_NAME = CFUNCTYPE(c_void_p, c_void_p)
CREATE = CFUNCTYPE(c_void_p, c_void_p, c_void_p)
VOID_DATA = CFUNCTYPE(None, c_void_p)
GET_SIZE = CFUNCTYPE(c_uint32, c_void_p)
GET_DEFAULTS = CFUNCTYPE(None, c_void_p)
GET_PROPERTIES = CFUNCTYPE(c_void_p, c_void_p)
UPDATE = CFUNCTYPE(None, c_void_p, c_void_p)
VIDEO_TICK = CFUNCTYPE(None, c_void_p, c_float)
VIDEO_RENDER = CFUNCTYPE(None, c_void_p, c_void_p)
FILTER_AUDIO = CFUNCTYPE(c_void_p, c_void_p, c_void_p)
FILTER_REMOVE = CFUNCTYPE(None, c_void_p, c_void_p)
PROPERTY_MODIFIED = CFUNCTYPE(c_bool, c_void_p, c_void_p, c_void_p)


class ObsSourceInfo(Structure):
    """`struct obs_source_info` up to `free_type_data` (232 bytes on x86-64).

    libobs copies `size` bytes and zero-fills the rest, and only ever appends fields, so this
    prefix stays valid on later versions.
    """

    _fields_ = [
        ("id", c_char_p), ("type", c_int), ("output_flags", c_uint32),
        ("get_name", GET_NAME), ("create", CREATE), ("destroy", VOID_DATA),
        ("get_width", GET_SIZE), ("get_height", GET_SIZE), ("get_defaults", GET_DEFAULTS),
        ("get_properties", GET_PROPERTIES), ("update", UPDATE),
        ("activate", VOID_DATA), ("deactivate", VOID_DATA), ("show", VOID_DATA), ("hide", VOID_DATA),
        ("video_tick", VIDEO_TICK), ("video_render", VIDEO_RENDER), ("filter_video", c_void_p),
        ("filter_audio", FILTER_AUDIO), ("enum_active_sources", c_void_p), ("save", c_void_p),
        ("load", c_void_p), ("mouse_click", c_void_p), ("mouse_move", c_void_p), ("mouse_wheel", c_void_p),
        ("focus", c_void_p), ("key_click", c_void_p), ("filter_remove", FILTER_REMOVE),
        ("type_data", c_void_p), ("free_type_data", c_void_p),
    ]


class ObsAudioData(Structure):
    """`struct obs_audio_data`: planar float32 planes, frames per plane, timestamp in ns."""

    _fields_ = [("data", POINTER(c_uint8) * MAX_AV_PLANES), ("frames", c_uint32), ("timestamp", c_uint64)]


class AlignedVec4:
    """A `struct vec4` at a 16-byte aligned address: libobs copies vec4s with SSE moves that
    fault on the 4-byte alignment ctypes would give a plain Structure."""

    def __init__(self, x: float, y: float, z: float, w: float):
        self._buf = (c_float * 8)()
        offset = (-ctypes.addressof(self._buf)) % 16 // 4
        self.address = ctypes.addressof(self._buf) + offset * 4
        for i, v in enumerate((x, y, z, w)):
            self._buf[offset + i] = v


class Vec2(Structure):
    _fields_ = [("x", c_float), ("y", c_float)]


# name -> (restype, argtypes).  Everything the plugin calls, in one table, so a missing symbol
# on some OBS build is reported at load time instead of mid-stream.
_PROTOTYPES = {
    "obs_get_version": (c_uint32, []),
    "obs_get_version_string": (c_char_p, []),
    "obs_register_source_s": (None, [c_void_p, c_size_t]),
    "obs_source_get_display_name": (c_char_p, [c_char_p]),
    "obs_get_source_output_flags": (c_uint32, [c_char_p]),
    "blog": (None, [c_int, c_char_p, c_char_p]),
    "obs_enter_graphics": (None, []),
    "obs_leave_graphics": (None, []),
    "obs_get_video": (c_void_p, []),
    "obs_get_audio": (c_void_p, []),
    "video_output_get_frame_time": (c_uint64, [c_void_p]),
    "audio_output_get_channels": (c_size_t, [c_void_p]),
    "audio_output_get_sample_rate": (c_uint32, [c_void_p]),
    "obs_get_video_frame_time": (c_uint64, []),
    "obs_source_get_name": (c_char_p, [c_void_p]),
    "obs_source_update_properties": (None, [c_void_p]),
    "obs_filter_get_parent": (c_void_p, [c_void_p]),
    "obs_filter_get_target": (c_void_p, [c_void_p]),
    "obs_source_get_base_width": (c_uint32, [c_void_p]),
    "obs_source_get_base_height": (c_uint32, [c_void_p]),
    "obs_source_process_filter_begin": (c_bool, [c_void_p, c_int, c_int]),
    "obs_source_process_filter_end": (None, [c_void_p, c_void_p, c_uint32, c_uint32]),
    "obs_source_skip_video_filter": (None, [c_void_p]),
    "obs_get_base_effect": (c_void_p, [c_int]),
    "gs_texrender_create": (c_void_p, [c_int, c_int]),
    "gs_texrender_destroy": (None, [c_void_p]),
    "gs_texrender_reset": (None, [c_void_p]),
    "gs_texrender_begin": (c_bool, [c_void_p, c_uint32, c_uint32]),
    "gs_texrender_end": (None, [c_void_p]),
    "gs_texrender_get_texture": (c_void_p, [c_void_p]),
    "gs_stagesurface_create": (c_void_p, [c_uint32, c_uint32, c_int]),
    "gs_stagesurface_destroy": (None, [c_void_p]),
    "gs_stage_texture": (None, [c_void_p, c_void_p]),
    "gs_stagesurface_map": (c_bool, [c_void_p, POINTER(POINTER(c_uint8)), POINTER(c_uint32)]),
    "gs_stagesurface_unmap": (None, [c_void_p]),
    "gs_texture_create": (c_void_p, [c_uint32, c_uint32, c_int, c_uint32, c_void_p, c_uint32]),
    "gs_texture_destroy": (None, [c_void_p]),
    "gs_texture_set_image": (None, [c_void_p, c_void_p, c_uint32, c_bool]),
    "gs_clear": (None, [c_uint32, c_void_p, c_float, c_uint8]),
    "gs_ortho": (None, [c_float, c_float, c_float, c_float, c_float, c_float]),
    "gs_blend_state_push": (None, []),
    "gs_blend_state_pop": (None, []),
    "gs_blend_function": (None, [c_int, c_int]),
    "gs_blend_function_separate": (None, [c_int, c_int, c_int, c_int]),
    "gs_enable_blending": (None, [c_bool]),
    "gs_effect_create_from_file": (c_void_p, [c_char_p, POINTER(c_char_p)]),
    "gs_effect_destroy": (None, [c_void_p]),
    "gs_effect_get_param_by_name": (c_void_p, [c_void_p, c_char_p]),
    "gs_effect_set_texture": (None, [c_void_p, c_void_p]),
    "gs_effect_set_float": (None, [c_void_p, c_float]),
    "gs_effect_set_int": (None, [c_void_p, c_int]),
    "gs_effect_set_vec2": (None, [c_void_p, POINTER(Vec2)]),
    "gs_effect_set_vec4": (None, [c_void_p, c_void_p]),
    "gs_effect_loop": (c_bool, [c_void_p, c_char_p]),
    "gs_draw_sprite": (None, [c_void_p, c_uint32, c_uint32, c_uint32]),
    "gs_draw_sprite_subregion": (None, [c_void_p, c_uint32, c_uint32, c_uint32, c_uint32, c_uint32]),
    "gs_matrix_push": (None, []),
    "gs_matrix_pop": (None, []),
    "gs_matrix_translate3f": (None, [c_float, c_float, c_float]),
    "bfree": (None, [c_void_p]),
    "obs_data_get_bool": (c_bool, [c_void_p, c_char_p]),
    "obs_data_get_int": (c_longlong, [c_void_p, c_char_p]),
    "obs_data_get_double": (c_double, [c_void_p, c_char_p]),
    "obs_data_get_string": (c_char_p, [c_void_p, c_char_p]),
    "obs_data_get_array": (c_void_p, [c_void_p, c_char_p]),
    "obs_data_array_count": (c_size_t, [c_void_p]),
    "obs_data_array_item": (c_void_p, [c_void_p, c_size_t]),
    "obs_data_array_release": (None, [c_void_p]),
    "obs_data_release": (None, [c_void_p]),
    "obs_data_set_default_bool": (None, [c_void_p, c_char_p, c_bool]),
    "obs_data_set_default_int": (None, [c_void_p, c_char_p, c_longlong]),
    "obs_data_set_default_double": (None, [c_void_p, c_char_p, c_double]),
    "obs_data_set_default_string": (None, [c_void_p, c_char_p, c_char_p]),
    "obs_properties_create": (c_void_p, []),
    "obs_properties_get": (c_void_p, [c_void_p, c_char_p]),
    "obs_properties_add_bool": (c_void_p, [c_void_p, c_char_p, c_char_p]),
    "obs_properties_add_float_slider": (c_void_p, [c_void_p, c_char_p, c_char_p, c_double, c_double, c_double]),
    "obs_properties_add_text": (c_void_p, [c_void_p, c_char_p, c_char_p, c_int]),
    "obs_properties_add_list": (c_void_p, [c_void_p, c_char_p, c_char_p, c_int, c_int]),
    "obs_properties_add_group": (c_void_p, [c_void_p, c_char_p, c_char_p, c_int, c_void_p]),
    "obs_properties_add_editable_list": (c_void_p, [c_void_p, c_char_p, c_char_p, c_int, c_char_p, c_char_p]),
    "obs_property_list_add_string": (c_size_t, [c_void_p, c_char_p, c_char_p]),
    "obs_property_set_long_description": (None, [c_void_p, c_char_p]),
    "obs_property_set_visible": (None, [c_void_p, c_bool]),
    "obs_property_set_modified_callback": (None, [c_void_p, PROPERTY_MODIFIED]),
    "obs_property_text_set_info_type": (None, [c_void_p, c_int]),
    "obs_property_text_set_info_word_wrap": (None, [c_void_p, c_bool]),
}


class LibObs:
    """libobs with prototypes applied; attribute access returns the typed function."""

    def __init__(self, lib: ctypes.CDLL):
        self._lib = lib
        self.missing: list[str] = []
        for name, (restype, argtypes) in _PROTOTYPES.items():
            try:
                fn = getattr(lib, name)
            except AttributeError:
                self.missing.append(name)
                continue
            fn.restype, fn.argtypes = restype, argtypes
            setattr(self, name, fn)

    def version(self) -> tuple[int, int, int]:
        v = self.obs_get_version()
        return v >> 24, (v >> 16) & 0xFF, v & 0xFFFF


def load_libobs() -> LibObs:
    """Open the libobs the running OBS already loaded (CDLL on an open library just adds a reference)."""
    names = LIBRARY_NAMES.get(sys.platform) or LIBRARY_NAMES["linux"]
    errors = []
    for name in names:
        try:
            return LibObs(ctypes.CDLL(name))
        except OSError as e:
            errors.append(f"{name}: {e}")
    raise OSError("libobs not found [" + "; ".join(errors) + "]")


class ObsLogHandler(logging.Handler):
    """Sends `privastream.*` log records to OBS's own log (Help -> Log Files) through blog()."""

    LEVELS = ((logging.ERROR, LOG_ERROR), (logging.WARNING, LOG_WARNING))

    def __init__(self, obs: LibObs):
        super().__init__(logging.INFO)
        self._obs = obs

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = next((lv for py, lv in self.LEVELS if record.levelno >= py), LOG_INFO)
            msg = f"[PrivaStream] {record.name}: {self.format(record)}"
            self._obs.blog(level, b"%s", msg.encode("utf-8", "replace"))
        except Exception:  # a log line must never take OBS down
            pass


class graphics:
    """`with graphics(obs):` pairs obs_enter_graphics/obs_leave_graphics even on errors."""

    def __init__(self, obs: LibObs):
        self._obs = obs

    def __enter__(self):
        self._obs.obs_enter_graphics()
        return self

    def __exit__(self, *exc):
        self._obs.obs_leave_graphics()
        return False


class FilterType:
    """One registered filter type: the `obs_source_info`, its thunks and name buffers, kept forever.

    The thunks forward to `self.handler`, an object with methods create(settings, source) -> obj,
    defaults(settings), properties(obj) -> props pointer and the per-instance callbacks on obj.
    Swapping `handler` is how a script reload takes effect without registering again.
    Instances are kept in `self.instances` keyed by an integer that libobs holds as `void *data`.
    """

    def __init__(self, obs: LibObs, type_id: str, display_name: str, output_flags: int):
        self.obs = obs
        self.type_id = type_id
        self.handler = None
        self.instances: dict[int, object] = {}
        self._next_key = 1
        self._id_buf = ctypes.create_string_buffer(type_id.encode())
        self._name_buf = ctypes.create_string_buffer(display_name.encode())
        self._errors_seen: set[str] = set()
        info = ObsSourceInfo()
        info.id = ctypes.cast(self._id_buf, c_char_p)
        info.type = OBS_SOURCE_TYPE_FILTER
        info.output_flags = output_flags
        info.get_name = GET_NAME(lambda _type_data: ctypes.addressof(self._name_buf))
        info.create = CREATE(self._create)
        info.destroy = VOID_DATA(self._destroy)
        info.get_defaults = GET_DEFAULTS(lambda s: self._call_type("defaults", s))
        info.get_properties = GET_PROPERTIES(self._properties)
        info.update = UPDATE(lambda d, s: self._call(d, "update", s))
        info.filter_remove = FILTER_REMOVE(lambda d, parent: self._call(d, "filter_remove", parent))
        if output_flags & OBS_SOURCE_VIDEO:
            info.video_tick = VIDEO_TICK(lambda d, seconds: self._call(d, "video_tick", seconds))
            info.video_render = VIDEO_RENDER(self._video_render)
        if output_flags & OBS_SOURCE_AUDIO:
            info.filter_audio = FILTER_AUDIO(self._filter_audio)
        self.info = info

    def register(self) -> None:
        """Register, then read the type back through libobs: the name comes from our get_name
        callback and the flags from our struct, so a wrong layout, or another plugin that took
        this id first (libobs then ignores ours), fails here instead of leaving the source raw."""
        self.obs.obs_register_source_s(ctypes.byref(self.info), ctypes.sizeof(self.info))
        type_id = self._id_buf.value
        name = self.obs.obs_source_get_display_name(type_id)
        flags = self.obs.obs_get_source_output_flags(type_id)
        if name != self._name_buf.value or flags & self.info.output_flags != self.info.output_flags:
            raise AbiError(f"libobs does not hold the {self.type_id} type as registered (another plugin or "
                           f"script may have taken this id) [name:{name!r}, output_flags:{flags}]")

    def report_once(self, where: str, exc: BaseException) -> None:
        """Log each kind of error once per filter type: a failing render callback runs 30 times a second."""
        key = f"{where}:{type(exc).__name__}:{exc}"
        if key not in self._errors_seen:
            self._errors_seen.add(key)
            log.error("%s() | %s [type:%s]", where, exc or type(exc).__name__, self.type_id, exc_info=True)

    def _create(self, settings, source):
        key = self._next_key
        self._next_key += 1
        try:
            self.instances[key] = self.handler.create(settings, source)
        except Exception as e:
            # create must return non-NULL; an instance that failed to build fails closed in render.
            self.report_once("create", e)
            self.instances[key] = None
        return key

    def _destroy(self, data):
        inst = self.instances.pop(data or 0, None)
        if inst is not None:
            try:
                inst.destroy()
            except Exception as e:
                self.report_once("destroy", e)

    def _call_type(self, name, *args):
        try:
            getattr(self.handler, name)(*args)
        except Exception as e:
            self.report_once(name, e)

    def _properties(self, data):
        try:
            return self.handler.properties(self.instances.get(data or 0))
        except Exception as e:
            self.report_once("properties", e)
            return self.obs.obs_properties_create()

    def _call(self, data, name, *args):
        inst = self.instances.get(data or 0)
        if inst is None:
            return None
        try:
            return getattr(inst, name)(*args)
        except Exception as e:
            self.report_once(name, e)
            return None

    def _video_render(self, data, _effect):
        inst = self.instances.get(data or 0)
        try:
            inst.video_render()
        except Exception as e:
            self.report_once("video_render", e)
            # Fail closed: an instance that cannot render draws nothing rather than the raw frame.

    def _filter_audio(self, data, audio):
        inst = self.instances.get(data or 0)
        try:
            return inst.filter_audio(audio)
        except Exception as e:
            self.report_once("filter_audio", e)
            return None  # NULL drops the packet: silence, never unfiltered speech


# type_id -> FilterType, surviving script reloads because this module stays imported.
_REGISTERED: dict[str, FilterType] = {}


def register_filter(obs: LibObs, type_id: str, display_name: str, output_flags: int, handler) -> FilterType:
    """Register `type_id` once per OBS process; later calls only swap the handler."""
    ft = _REGISTERED.get(type_id)
    if ft is None:
        ft = FilterType(obs, type_id, display_name, output_flags)
        ft.handler = handler
        ft.register()
        _REGISTERED[type_id] = ft
        log.info("register_filter() | registered [id:%s]", type_id)
    else:
        ft.handler = handler
        log.info("register_filter() | handler swapped after reload [id:%s]", type_id)
    return ft


def registered_filters() -> dict[str, FilterType]:
    return _REGISTERED
