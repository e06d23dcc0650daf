"""How a filter reaches the inference server, and how it reports on that link.

The client class is `inference_server.client:LiveClient`.  `PRIVASTREAM_OBS_CLIENT=module:Class`
replaces it; the OBS tests use that to draw a fixed region list without a server (they say so).
When the client cannot be loaded or built, the filter runs without one, which means it fails
closed, and the status line says why.
"""

from __future__ import annotations

import importlib
import logging
import os
import statistics
import time

from inference_server.errors import PrivaStreamError
from inference_server.settings import Settings

log = logging.getLogger("privastream.obs.client")

DEFAULT_CLIENT = "inference_server.client:LiveClient"
SETTINGS_REFUSED = "settings refused"
"""The problem's prefix when the client refused the settings: the next settings change tries again."""


def _client_class():
    spec = os.environ.get("PRIVASTREAM_OBS_CLIENT", DEFAULT_CLIENT)
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def open_client(source_name: str, kind: str, settings: Settings, refused: str = ""):
    """-> (client or None, problem text).  Never raises: no client means fail closed.  `refused`: why the
    panel refused some of the settings (settings_from_data), which leaves the filter without a client."""
    if refused:
        log.error("open_client() | %s [source:%s, error:%s]", SETTINGS_REFUSED, source_name, refused)
        return None, f"{SETTINGS_REFUSED}: {refused}"
    try:
        cls = _client_class()
    except Exception as e:
        log.error("open_client() | client library unavailable [source:%s, error:%s]", source_name, e)
        return None, f"client library unavailable: {e}"
    try:
        client = cls(source=source_name, kind=kind, delay_s=settings.delay_s, settings=settings)
    except PrivaStreamError as e:  # the message names the field, never a custom word
        log.error("open_client() | %s [source:%s, error:%s]", SETTINGS_REFUSED, source_name, e)
        return None, f"{SETTINGS_REFUSED}: {e}"
    except Exception as e:
        log.error("open_client() | cannot start client [source:%s, error:%s]", source_name, e)
        return None, f"cannot start client: {e}"
    log.info("open_client() | client started [source:%s, kind:%s]", source_name, kind)
    return client, ""


def loggable(settings: Settings) -> dict:
    """The settings as OBS's log (a file on disk) may show them: the custom words are the streamer's own
    secrets (a real name, a street), so only their number is shown."""
    return {**settings.to_dict(), "custom_terms": f"<{len(settings.custom_terms)} words>"}


def close_client(client) -> None:
    if client is None:
        return
    try:
        client.close()
    except Exception as e:
        log.warning("close_client() | %s", e)


def status_text(client, problem: str, fails_open: bool) -> tuple[str, bool]:
    """-> (one status line for the properties panel, whether it is a warning)."""
    if client is None:
        return f"Not connected ({problem or 'no client'}): every frame is covered and audio muted.", True
    try:
        st = client.status
    except Exception as e:
        return f"Status unavailable ({e}): failing closed.", True
    detections = ", ".join(f"{k} {v}" for k, v in sorted((st.detections or {}).items())) or "none"
    line = (f"{st.state}: latency {st.latency_ms:.0f} ms, {st.fps:.1f} fps, last detections: {detections}"
            + (f" ({st.message})" if st.message else ""))
    if st.state != "connected":
        line += " - passing through (fail open)" if fails_open else " - covering everything"
    return line, st.state != "connected"


class CallTimer:
    """Python time spent per callback, logged as median/p99 once per period (scripts/bench_obs.py reads it).

    The period is $PRIVASTREAM_OBS_TIMING_S seconds (default 60; the benchmark uses a few).
    """

    def __init__(self, name: str, source_name: str):
        self.name, self.source_name = name, source_name
        self.period_s = float(os.environ.get("PRIVASTREAM_OBS_TIMING_S", "60"))
        self.samples: list[float] = []
        self._t0 = 0.0
        self._window_start = time.monotonic()

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        self.samples.append((time.perf_counter() - self._t0) * 1000)
        now = time.monotonic()
        if now - self._window_start >= self.period_s:
            s = sorted(self.samples)
            log.info("%s() | python time per call [source:%s, calls:%d, median_ms:%.3f, p99_ms:%.3f, max_ms:%.3f]",
                     self.name, self.source_name, len(s), statistics.median(s),
                     s[min(len(s) - 1, int(len(s) * 0.99))], s[-1])
            self.samples, self._window_start = [], now


class LinkedFilter:
    """What both filters share: their name, settings, client and its status line."""

    kind = ""

    def _link(self, obs, source: int, read: tuple[Settings, str]) -> None:
        """`read`: (settings, why the panel refused some of them or ""), as settings_from_data gives them."""
        self.obs, self.source = obs, source
        self.settings, refused = read
        self.name = (obs.obs_source_get_name(source) or b"?").decode("utf-8", "replace")
        self.client, self.problem = open_client(self.name, self.kind, self.settings, refused)
        self.status_shown = ("", False)

    def _apply_settings(self, read: tuple[Settings, str]) -> bool:
        """Adopt the settings `read` (see _link); a new delay restarts the client (its deadlines follow the
        delay), and so do settings after refused ones. -> delay changed."""
        old = self.settings
        new, refused = read
        self.settings = new
        delay_changed = new.delay_s != old.delay_s
        if refused or delay_changed or (self.client is None and self.problem.startswith(SETTINGS_REFUSED)):
            close_client(self.client)
            self.client, self.problem = open_client(self.name, self.kind, new, refused)
        elif self.client is not None:
            try:
                self.client.update_settings(new.to_dict())
            except PrivaStreamError as e:  # without a client the filter covers everything, and says why
                log.error("update() | %s [source:%s, error:%s]", SETTINGS_REFUSED, self.name, e)
                self._drop_client(f"{SETTINGS_REFUSED}: {e}")
        log.info("update() | applied [source:%s, kind:%s, settings:%s]", self.name, self.kind, loggable(new))
        if new.custom_terms != old.custom_terms:
            log.info("update() | custom words changed [source:%s, count:%d]", self.name, len(new.custom_terms))
        if new.fail_policy != old.fail_policy:
            self.obs.obs_source_update_properties(self.source)  # show or hide the fail-open warning
        return delay_changed

    def status(self) -> tuple[str, bool]:
        return status_text(self.client, self.problem, self.settings.fails_open)

    def _drop_client(self, why: str) -> None:
        close_client(self.client)
        self.client, self.problem = None, why

    def filter_remove(self, _parent: int) -> None:
        # Removed while streaming: stop talking to the server now; buffers go in destroy().
        self._drop_client("filter removed")
