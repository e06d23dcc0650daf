""""PrivaStream Filter": a K-frame GPU delay line whose output frame is drawn with its final regions.

Per OBS frame (keyed on video_tick, because video_render also runs for preview, projectors and
screenshots):
  1. render the source into the next slot of a ring of K+1 texrenders (K = delay / frame time);
  2. map the stage surface filled on the previous tick (it is ready by now, so no GPU stall),
     hand it to the client, then stage the current frame into the other surface;
  3. draw the newest frame that is K frame times old with the regions the server decided for it.
A frame with no final decision at that point is covered entirely (fail closed), unless the
user chose fail open.  The ring is empty after a (re)start, so the first K frames are covered too.
"""

from __future__ import annotations

import ctypes
import logging
import math
import time
from pathlib import Path

import numpy as np

from inference_server import cover_spec  # standard library only: safe inside OBS
from inference_server.playout import due_index, frame_cover
from inference_server.settings import Settings

from .client_link import CallTimer, LinkedFilter
from .libobs import (GS_BLEND_INVSRCALPHA, GS_BLEND_ONE, GS_BLEND_SRCALPHA, GS_BLEND_ZERO, GS_CLEAR_COLOR, GS_DYNAMIC,
                     GS_RGBA, GS_RGBA32F, GS_ZS_NONE, OBS_EFFECT_DEFAULT, OBS_ALLOW_DIRECT_RENDERING, AlignedVec4, LibObs,
                     Vec2, graphics)
from .properties import video_properties
from .settings import delay_frames, settings_from_data, video_frame_time_s

log = logging.getLogger("privastream.obs.video")

EFFECT_PATH = Path(__file__).resolve().parent / "effects" / "privastream.effect"
MAX_REGIONS = 128
"""More regions than this in one frame cover the whole frame instead (never drop one)."""
STYLE_INDEX = {"pixelate": 0.0, "blur": 1.0, "fill": 2.0}
_CLEAR = AlignedVec4(0.0, 0.0, 0.0, 0.0)
_FILL = AlignedVec4(*(v / 255 for v in cover_spec.FILL_RGB), 1.0)
_TAPS = Vec2(cover_spec.PIXELATE_TAPS, cover_spec.BLUR_TAPS)

# gs_effect_create_from_file caches effects by path and gs_effect_destroy would free the copy
# other instances use, so the effect is loaded once per OBS process and left to OBS's cache.
_effect: dict[str, int] = {}


def _load_effect(obs: LibObs) -> int:
    if "ptr" not in _effect:
        err = ctypes.c_char_p()
        ptr = obs.gs_effect_create_from_file(str(EFFECT_PATH).encode(), ctypes.byref(err))
        if not ptr:
            msg = err.value.decode("utf-8", "replace") if err.value else "unknown error"
            if err:
                obs.bfree(err)
            raise RuntimeError(f"cannot compile {EFFECT_PATH.name}: {msg}")
        _effect["ptr"] = ptr
        _effect.update({name: obs.gs_effect_get_param_by_name(ptr, name.encode())
                        for name in ("image", "regions", "region_index", "frame_size", "fill_color", "taps")})
    return _effect["ptr"]


def region_plan(regions, settings: Settings, width: int, height: int) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """Everything the region passes need, computed before the frame is drawn at all:
    (the data texture, (index, x0, y0, x1, y1) of the pixels each region's cover touches on the frame,
    for those that lie on it).

    ValueError for a box with a non-finite number or an inverted one: drawn, it would leave its
    region uncovered (the protocol refuses such boxes; this guards whatever else feeds the filter).
    """
    regions = regions[:MAX_REGIONS]
    for r in regions:
        x0, y0, x1, y1 = r.box
        if not all(math.isfinite(v) for v in r.box) or x1 < x0 or y1 < y0:
            raise ValueError(f"a {r.kind} region has the box {r.box}")
    covers = [cover_spec.cover_box(r.box, r.kind) for r in regions]
    areas = [(i, *cover_spec.on_frame(box, width, height)) for i, box in enumerate(covers)]
    return region_texels(regions, covers, settings), [a for a in areas if a[3] > a[1] and a[4] > a[2]]


def region_texels(regions, covers, settings: Settings) -> np.ndarray:
    """Regions and their cover boxes -> the (1, 2*MAX_REGIONS, 4) float32 data texture the effect reads
    (see its header), every number from cover_spec."""
    texels = np.zeros((1, 2 * MAX_REGIONS, 4), np.float32)
    for i, (r, box) in enumerate(zip(regions[:MAX_REGIONS], covers)):
        kind = cover_spec.SETTING_KIND.get(r.kind, "face")
        strength = settings.strength(kind)
        texels[0, 2 * i] = box
        texels[0, 2 * i + 1] = (STYLE_INDEX[settings.style(kind)], float(cover_spec.is_ellipse(r.kind)),
                                cover_spec.cell_px(box, strength), cover_spec.blur_radius_px(box, strength))
    return texels


class VideoFilter(LinkedFilter):
    kind = "video"

    def __init__(self, obs: LibObs, source: int, settings_data: int):
        self._link(obs, source, settings_from_data(obs, settings_data))
        self.timer = CallTimer("video_render", self.name)
        self.tick = 0
        self.drawn_tick = -1
        self.size = (0, 0)
        self.tick_pts = 0.0
        self.tick_clock = 0.0
        """time.monotonic() at the tick: a frame is drawn D after it, so its deadline runs from it."""
        self.captures = 0
        self._set_delay()
        self.k = self.wanted_k
        self.ring: list[int] = []
        self.ring_ids: list[int] = []
        self.ring_pts: list[float] = []
        self.stage: list[int] = []
        self.staged: list[tuple[int, float, float] | None] = [None, None]
        """Per stage surface: (frame id, pts, time.monotonic() at capture) of the frame staged in it."""
        self.data_tex = 0
        self.gpu_problem = ""
        self.plan_failed = False
        self.cover_logged = False

    # --- settings and panel -------------------------------------------------------------
    def update(self, settings_data: int) -> None:
        if self._apply_settings(settings_from_data(self.obs, settings_data)):
            self._set_delay()

    def _set_delay(self) -> None:
        """update() runs on another thread than render: the render thread adopts `wanted_k` itself
        (and rebuilds the ring, covered until full) at the start of its next frame."""
        self.frame_time = video_frame_time_s(self.obs)
        self.wanted_k = delay_frames(self.settings.delay_s, self.frame_time)

    def properties(self) -> int:
        self.status_shown = self.status()
        return video_properties(self.obs, self.status_shown, self.settings.fails_open)

    # --- GPU resources (render thread: the graphics context is already entered) ----------
    def _destroy_gpu(self, ring: list[int], stage: list[int], data_tex: int) -> None:
        for tr in filter(None, ring):
            self.obs.gs_texrender_destroy(tr)
        for ss in filter(None, stage):
            self.obs.gs_stagesurface_destroy(ss)
        if data_tex:
            self.obs.gs_texture_destroy(data_tex)

    def _free_gpu(self) -> None:
        self._destroy_gpu(self.ring, self.stage, self.data_tex)
        self.ring, self.ring_ids, self.ring_pts, self.stage, self.staged = [], [], [], [], [None, None]
        self.data_tex = 0

    def _ensure_gpu(self, width: int, height: int) -> bool:
        """The delay line's GPU resources for this size, all of them or none (False).

        A set with one missing piece would still draw: a missing region texture reads as "no
        regions" and shows the frame uncovered.  So a failed allocation frees what it got, the
        caller covers the frame, and the next frame tries again.
        """
        if self.ring and self.size == (width, height) and len(self.ring) == self.k + 1:
            return True
        self._free_gpu()
        _load_effect(self.obs)
        obs = self.obs
        ring = [obs.gs_texrender_create(GS_RGBA, GS_ZS_NONE) for _ in range(self.k + 1)]
        stage = [obs.gs_stagesurface_create(width, height, GS_RGBA) for _ in range(2)]
        data_tex = obs.gs_texture_create(2 * MAX_REGIONS, 1, GS_RGBA32F, 1, None, GS_DYNAMIC)
        if not (all(ring) and all(stage) and data_tex):
            self._destroy_gpu(ring, stage, data_tex)
            problem = f"cannot allocate GPU buffers [size:{width}x{height}, frames:{self.k}]"
            if problem != self.gpu_problem:
                log.error("_ensure_gpu() | %s; covering the whole frame [source:%s]", problem, self.name)
            self.gpu_problem = problem
            return False
        self.size, self.ring, self.stage, self.data_tex, self.gpu_problem = (width, height), ring, stage, data_tex, ""
        self.ring_ids = [-1] * (self.k + 1)
        self.ring_pts = [0.0] * (self.k + 1)
        log.info("_ensure_gpu() | delay line ready [source:%s, size:%dx%d, frames:%d]", self.name, width, height, self.k)
        return True

    def destroy(self) -> None:
        self._drop_client("filter destroyed")
        with graphics(self.obs):
            self._free_gpu()

    # --- per frame ------------------------------------------------------------------------
    def video_tick(self, _seconds: float) -> None:
        self.tick += 1
        self.tick_pts = self.obs.obs_get_video_frame_time() / 1e9
        self.tick_clock = time.monotonic()

    def _capture(self, slot: int, width: int, height: int) -> bool:
        """Render the source into ring slot ``slot``; False when it could not be (the slot is then
        marked empty, so old pixels are never drawn or sent under this frame's id)."""
        obs, tr = self.obs, self.ring[slot]
        self.ring_ids[slot] = -1
        obs.gs_texrender_reset(tr)
        if not obs.gs_texrender_begin(tr, width, height):
            return False
        try:
            obs.gs_clear(GS_CLEAR_COLOR, _CLEAR.address, 0.0, 0)
            obs.gs_ortho(0.0, float(width), 0.0, float(height), -100.0, 100.0)
            obs.gs_blend_state_push()
            obs.gs_blend_function(GS_BLEND_ONE, GS_BLEND_ZERO)
            if obs.obs_source_process_filter_begin(self.source, GS_RGBA, OBS_ALLOW_DIRECT_RENDERING):
                obs.obs_source_process_filter_end(self.source, obs.obs_get_base_effect(OBS_EFFECT_DEFAULT), width, height)
            obs.gs_blend_state_pop()
        finally:
            obs.gs_texrender_end(tr)
        self.ring_ids[slot], self.ring_pts[slot] = self.tick, self.tick_pts
        return True

    def _send_previous(self, which: int, width: int, height: int) -> None:
        """Map the surface staged one tick ago and give it to the client (one copy, into shared memory)."""
        pending, client = self.staged[which], self.client  # one read: update() may swap the client
        self.staged[which] = None
        if pending is None or client is None:
            return
        ptr, linesize = ctypes.POINTER(ctypes.c_uint8)(), ctypes.c_uint32()
        if not self.obs.gs_stagesurface_map(self.stage[which], ctypes.byref(ptr), ctypes.byref(linesize)):
            return
        try:
            rows = np.ctypeslib.as_array(ptr, shape=(height, linesize.value))
            client.submit_frame(pending[0], pending[1], rows[:, : width * 4].reshape(height, width, 4),
                                captured=pending[2])
        finally:
            self.obs.gs_stagesurface_unmap(self.stage[which])

    def _new_frame(self, width: int, height: int) -> None:
        slot = self.captures % (self.k + 1)
        self.captures += 1
        captured = self._capture(slot, width, height)
        # Surfaces alternate by capture, not by tick: OBS skips ticks when it lags, and a tick
        # parity then staged two frames into one surface, so the first was never sent.
        which = self.captures % 2
        self._send_previous(1 - which, width, height)
        if captured:
            self.obs.gs_stage_texture(self.stage[which], self.obs.gs_texrender_get_texture(self.ring[slot]))
            self.staged[which] = (self.tick, self.tick_pts, self.tick_clock)
        self.drawn_tick = self.tick

    def _delayed_slot(self) -> int | None:
        """The slot holding the newest frame at least K frame times old.

        Chosen by timestamp, not by counting ticks: when OBS lags it renders fewer frames, and a
        tick count would then delay video more than the audio filter's fixed sample delay.
        """
        stamps = [pts if fid >= 0 else None for fid, pts in zip(self.ring_ids, self.ring_pts)]
        return due_index(stamps, self.tick_pts, self.k * self.frame_time, self.frame_time)

    def _decision_for(self, frame_id: int):
        """-> (regions, cover_all, reason)."""
        client = self.client
        decision = client.frame_decision(frame_id) if client is not None else None
        missing = "no final decision at the deadline" if client else f"no server ({self.problem})"
        return frame_cover(decision, self.settings.fails_open, MAX_REGIONS, missing)

    def video_render(self) -> None:
        self.timer.start()
        obs = self.obs
        target = obs.obs_filter_get_target(self.source)
        width = obs.obs_source_get_base_width(target) if target else 0
        height = obs.obs_source_get_base_height(target) if target else 0
        if not width or not height:
            obs.obs_source_skip_video_filter(self.source)
            return
        self.k = self.wanted_k
        if not self._ensure_gpu(width, height):
            self._log_cover_change(True, self.gpu_problem)
            self._draw(None, None, True, width, height)
            self.timer.stop()
            return
        if self.drawn_tick != self.tick:
            self._new_frame(width, height)
        slot = self._delayed_slot()
        if slot is None:
            regions, cover_all, reason = [], True, "delay line filling"
        else:
            regions, cover_all, reason = self._decision_for(self.ring_ids[slot])
        plan = None
        if regions and not cover_all:
            plan, reason = self._plan(regions, width, height)
            cover_all = plan is None
        self._log_cover_change(cover_all, reason)
        self._draw(self.ring[slot or 0], plan, cover_all, width, height)
        self.timer.stop()

    def _plan(self, regions, width: int, height: int):
        """-> (region_plan's result, "") or (None, why the frame must be covered whole)."""
        try:
            plan = region_plan(regions, self.settings, width, height)
        except Exception as exc:  # whatever went wrong, a frame is never shown without its regions
            if not self.plan_failed:
                log.error("video_render() | cannot draw the regions (%s); covering the whole frame [source:%s]",
                          exc, self.name)
            self.plan_failed = True
            return None, f"cannot draw the regions ({exc})"
        self.plan_failed = False
        return plan, ""

    def _log_cover_change(self, cover_all: bool, reason: str) -> None:
        if cover_all != self.cover_logged:
            self.cover_logged = cover_all
            if cover_all:
                log.warning("video_render() | covering the whole frame [source:%s, reason:%s]", self.name, reason)
            else:
                log.info("video_render() | drawing regions again [source:%s]", self.name)

    def _draw(self, texrender: int | None, plan, cover_all: bool, width: int, height: int) -> None:
        """The frame, then each region of ``plan`` (region_plan's) over it; or, with cover_all, the
        fill colour alone, which samples nothing and so needs no texture."""
        # Params are set right before each loop: gs_technique_end clears every param's value.
        obs, eff = self.obs, _effect
        tex = obs.gs_texrender_get_texture(texrender) if texrender else None
        if plan and not cover_all:
            texels = plan[0]
            obs.gs_texture_set_image(self.data_tex, texels.ctypes.data, texels.shape[1] * 16, False)
        obs.gs_effect_set_texture(eff["image"], tex)
        obs.gs_effect_set_vec4(eff["fill_color"], _FILL.address)
        while obs.gs_effect_loop(eff["ptr"], b"Cover" if cover_all else b"Draw"):
            obs.gs_draw_sprite(tex, 0, width, height)
        if cover_all or not plan:
            return
        # Colour from Mask where it returns alpha 1, the frame where it returns 0; the frame's own
        # alpha is kept.  Each region is drawn over its own box only (see the effect's header).
        obs.gs_blend_state_push()
        obs.gs_enable_blending(True)
        obs.gs_blend_function_separate(GS_BLEND_SRCALPHA, GS_BLEND_INVSRCALPHA, GS_BLEND_ZERO, GS_BLEND_ONE)
        frame_size = ctypes.byref(Vec2(width, height))
        try:
            for index, x0, y0, x1, y1 in plan[1]:
                obs.gs_effect_set_texture(eff["image"], tex)
                obs.gs_effect_set_texture(eff["regions"], self.data_tex)
                obs.gs_effect_set_int(eff["region_index"], index)
                obs.gs_effect_set_vec2(eff["frame_size"], frame_size)
                obs.gs_effect_set_vec4(eff["fill_color"], _FILL.address)
                obs.gs_effect_set_vec2(eff["taps"], ctypes.byref(_TAPS))
                obs.gs_matrix_push()
                try:
                    obs.gs_matrix_translate3f(float(x0), float(y0), 0.0)
                    while obs.gs_effect_loop(eff["ptr"], b"Mask"):
                        obs.gs_draw_sprite_subregion(tex, 0, x0, y0, x1 - x0, y1 - y0)
                finally:
                    obs.gs_matrix_pop()
        finally:
            obs.gs_blend_state_pop()
