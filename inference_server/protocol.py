"""The live wire protocol between the OBS filters (or any client) and the inference server.

This is the ONE module that defines it; docs/protocol.md is its manual.  It must
load inside OBS's embedded Python, so it imports only the standard library and numpy.

Two channels:
- **Shared-memory rings** carry the pixels and samples.  Each client creates its own ring
  (one segment per ring, mode 0600): a 64-byte ``RingHeader`` then ``slot_count`` slots of
  ``SLOT_HEADER_SIZE + slot_size`` bytes.  Each slot starts with a ``SlotHeader`` whose ``seq``
  is odd while the client writes it (a seqlock), so the server can tell a torn or overwritten
  slot from a good one without any lock shared between processes.
- **A websocket control channel** carries JSON messages, one per websocket message, each
  with ``"v"`` (``PROTOCOL_VERSION``) and ``"type"``: session set-up, ring announcements,
  one small notice per frame or audio packet, settings, results and heartbeats.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NoReturn, TypeVar

from .errors import ProtocolError, StateError
from .regions import KINDS, FrameDecision, Region
from .settings import Settings, check_delay

PROTOCOL_VERSION = 1
MAX_CONTROL_BYTES = 64 * 1024
"""Largest control message either side accepts; bigger ones get an error reply."""
CONTROL_PATH = "/control"
STATS_PATH = "/stats"
HEARTBEAT_INTERVAL_S = 0.05
"""The server sends a heartbeat this often, so a client sees a dead server within HEARTBEAT_TIMEOUT_S."""
HEARTBEAT_TIMEOUT_S = 0.15
LOGIN_TIMEOUT_S = 2.0
"""A connection that has not completed the login (hello, challenge, auth) by then is closed."""
MAX_LOGIN_BYTES = 16 * 1024
"""Largest message read before login (a hello with its settings); a bigger one closes the connection (1009)."""

KIND_VIDEO = "video"
KIND_AUDIO = "audio"
CLIENT_KINDS = (KIND_VIDEO, KIND_AUDIO)

# ---------------------------------------------------------------- discovery

def state_file_path() -> Path:
    """Where the server writes its port and token (user-only) and clients read them."""
    base = os.environ.get("XDG_RUNTIME_DIR") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "privastream" / "server.json"


def read_state_file(path: Path | None = None) -> tuple[int, str]:
    """(port, token) from the server's state file; StateError if there is no usable one."""
    path = path or state_file_path()
    try:
        st = path.stat()
        if st.st_mode & 0o077:
            raise StateError(f"{path} is readable by other users; refusing its token")
        d = json.loads(path.read_text())
        if d.get("warming"):
            raise StateError("the inference server is warming up (loading its models)")
        return int(d["port"]), str(d["token"])
    except FileNotFoundError:
        raise StateError(f"no inference server is running ({path} does not exist)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StateError(f"cannot read the server state file {path} ({exc})") from None


# ---------------------------------------------------------------- authentication

ROLE_CLIENT = "client"
ROLE_SERVER = "server"
NONCE_RE = re.compile(r"^[0-9a-f]{32}$")


def new_nonce() -> str:
    """128 random bits as 32 lowercase hex digits, fresh for every login."""
    return secrets.token_hex(16)


def check_nonce(nonce: str, whose: str) -> None:
    if not NONCE_RE.match(nonce):
        raise ProtocolError(f"the {whose} nonce must be 32 lowercase hex digits (got {nonce[:40]!r})")


def auth_proof(token: str, role: str, client_nonce: str, server_nonce: str) -> str:
    """HMAC-SHA256 under the token of the role and both nonces, as hex.

    Each side proves it knows the token without sending it: a process that took the server's
    port after a crash learns nothing it can use and cannot forge the server's proof.  The role
    keeps one side's proof from being replayed as the other's, and each side's fresh nonce keeps
    an old proof from being replayed at all.  The server proves itself first, so that the client
    sends its settings (the streamer's own words) only to the real server.
    """
    message = f"privastream {role}\n{client_nonce}\n{server_nonce}".encode()
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def proof_matches(proof: str, token: str, role: str, client_nonce: str, server_nonce: str) -> bool:
    return hmac.compare_digest(proof.encode(), auth_proof(token, role, client_nonce, server_nonce).encode())


def dashboard_key(token: str) -> str:
    """What the dashboard page and /stats.json readers present (Authorization: Bearer ...).

    Derived from the token, so only whoever can read the state file can compute it, and a
    key that leaks reads figures only: it opens no control session.
    """
    return hmac.new(token.encode(), b"privastream dashboard", hashlib.sha256).hexdigest()


def dashboard_url(host: str, port: int, token: str) -> str:
    """The dashboard's address with its key in the fragment, which the browser never sends to a server."""
    return f"http://{host}:{port}/#key={dashboard_key(token)}"


# ---------------------------------------------------------------- shared memory

RING_MAGIC = b"PSRING\x00\x00"
RING_HEADER_SIZE = 64
SLOT_HEADER_SIZE = 64
FORMAT_RGBA8 = 1
"""Video: H x W x 4 uint8, rows packed (stride = 4 * width)."""
FORMAT_F32_PLANAR = 2
"""Audio: channels x n_samples float32, one plane after the other."""
MAX_FRAME_SIDE = 8192
MAX_AUDIO_CHANNELS = 16
MAX_AUDIO_SAMPLES = 48000
SEGMENT_NAME_RE = re.compile(r"^/psv(\d+)_(\d+)_([0-9a-f]{8})$")
"""Segment names: /psv<uid>_<creator pid>_<random hex>.  The pid lets a later start reclaim
the segments of a killed process; the uid keeps users apart."""


def segment_name(uid: int, pid: int, token_hex: str) -> str:
    return f"/psv{uid}_{pid}_{token_hex}"


def parse_segment_name(name: str) -> tuple[int, int]:
    """(uid, pid) of a segment name, or ProtocolError if it is not one of ours."""
    m = SEGMENT_NAME_RE.match(name)
    if not m:
        raise ProtocolError(f"not a PrivaStream segment name: {name[:80]!r}")
    return int(m.group(1)), int(m.group(2))


@dataclass
class RingHeader:
    """The first 64 bytes of a ring segment."""

    _STRUCT: ClassVar[struct.Struct] = struct.Struct("<8sHHHHI")
    version: int
    kind: int
    """FORMAT_RGBA8 or FORMAT_F32_PLANAR."""
    slot_count: int
    slot_size: int
    """Payload bytes per slot (not counting its SlotHeader)."""

    @classmethod
    def parse(cls, data: bytes | memoryview) -> "RingHeader":
        if len(data) < RING_HEADER_SIZE:
            raise ProtocolError(f"ring header is truncated ({len(data)} of {RING_HEADER_SIZE} bytes)")
        magic, version, kind, slot_count, _pad, slot_size = cls._STRUCT.unpack_from(data)
        if magic != RING_MAGIC:
            raise ProtocolError("ring header has a bad magic (not a PrivaStream ring)")
        if version != PROTOCOL_VERSION:
            raise ProtocolError(f"ring protocol version {version} is not supported (this side speaks {PROTOCOL_VERSION})")
        if kind not in (FORMAT_RGBA8, FORMAT_F32_PLANAR):
            raise ProtocolError(f"ring has an unknown format {kind}")
        if not 1 <= slot_count <= 256 or slot_size <= 0:
            raise ProtocolError(f"ring geometry is invalid (slots:{slot_count} slot_size:{slot_size})")
        return cls(version, kind, slot_count, slot_size)

    def __bytes__(self) -> bytes:
        return self._STRUCT.pack(RING_MAGIC, self.version, self.kind, self.slot_count, 0, self.slot_size).ljust(
            RING_HEADER_SIZE, b"\x00")

    @property
    def segment_size(self) -> int:
        return ring_segment_size(self.slot_count, self.slot_size)

    def slot_offset(self, slot: int) -> int:
        return RING_HEADER_SIZE + slot * (SLOT_HEADER_SIZE + self.slot_size)


def ring_segment_size(slot_count: int, slot_size: int) -> int:
    return RING_HEADER_SIZE + slot_count * (SLOT_HEADER_SIZE + slot_size)


@dataclass
class SlotHeader:
    """The 64 bytes before each slot's payload.

    Video: width, height, channels=4, n_samples=0.  Audio: width=height=0, channels,
    sample_rate, n_samples per channel.  ``payload_bytes`` is what follows.
    """

    _STRUCT: ClassVar[struct.Struct] = struct.Struct("<QQddIIIIII")
    seq: int
    frame_id: int
    """Video: the client's frame id.  Audio: the packet counter."""
    pts: float
    """Seconds on the client's stream clock."""
    submitted: float
    """time.monotonic() of the client at submit (CLOCK_MONOTONIC is shared by all processes on a host)."""
    width: int = 0
    height: int = 0
    channels: int = 4
    sample_rate: int = 0
    n_samples: int = 0
    payload_bytes: int = 0

    SEQ_STRUCT: ClassVar[struct.Struct] = struct.Struct("<Q")

    @classmethod
    def parse(cls, data: bytes | memoryview) -> "SlotHeader":
        if len(data) < SLOT_HEADER_SIZE:
            raise ProtocolError(f"slot header is truncated ({len(data)} of {SLOT_HEADER_SIZE} bytes)")
        return cls(*cls._STRUCT.unpack_from(data))

    def __bytes__(self) -> bytes:
        return self._STRUCT.pack(self.seq, self.frame_id, self.pts, self.submitted, self.width, self.height,
                                 self.channels, self.sample_rate, self.n_samples,
                                 self.payload_bytes).ljust(SLOT_HEADER_SIZE, b"\x00")

    def validate(self, ring: RingHeader) -> None:
        """Raise ProtocolError unless this header describes a payload that fits its ring."""
        if self.payload_bytes > ring.slot_size:
            raise ProtocolError(f"slot payload of {self.payload_bytes} bytes exceeds the slot size {ring.slot_size}")
        if ring.kind == FORMAT_RGBA8:
            if not (0 < self.width <= MAX_FRAME_SIDE and 0 < self.height <= MAX_FRAME_SIDE and self.channels == 4):
                raise ProtocolError(f"bad video geometry {self.width}x{self.height}x{self.channels}")
            expected = self.width * self.height * 4
        else:
            if not (0 < self.channels <= MAX_AUDIO_CHANNELS and 0 < self.n_samples <= MAX_AUDIO_SAMPLES
                    and 8000 <= self.sample_rate <= 192000):
                raise ProtocolError(f"bad audio geometry channels:{self.channels} n:{self.n_samples} "
                                    f"rate:{self.sample_rate}")
            expected = self.channels * self.n_samples * 4
        if self.payload_bytes != expected:
            raise ProtocolError(f"slot payload is {self.payload_bytes} bytes, its geometry needs {expected}")


# ---------------------------------------------------------------- control messages

MESSAGE_TYPES: dict[str, type["Message"]] = {}
_JSON_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "dict": (dict,),
               "list": (list,), "dict[str, Any]": (dict,), "list[Any]": (list,), "list[dict[str, Any]]": (list,),
               "list[list[Any]]": (list,), "str | None": (str, type(None)), "Settings": (dict,)}
_M = TypeVar("_M", bound="Message")


def _register(cls: type[_M]) -> type[_M]:
    MESSAGE_TYPES[cls.type] = cls
    return cls


@dataclass
class Message:
    """Base of every control message: a dataclass whose fields are the JSON keys besides v and type."""

    type: ClassVar[str] = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Message":
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in d:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise ProtocolError(f"{cls.type} message lacks field {f.name!r}")
                continue
            value = d[f.name]
            allowed = _JSON_TYPES[str(f.type)]
            # bool is an int in Python; a JSON true must not pass as a frame id.
            if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
                raise ProtocolError(f"{cls.type} field {f.name!r} must be {f.type} (got {type(value).__name__})")
            if f.type == "float":
                value = _finite(value, f"{cls.type} field {f.name!r}")
            elif f.type == "Settings":
                value = Settings.from_dict(value)  # a malformed setting is refused here, at the edge
            kwargs[f.name] = value
        msg = cls(**kwargs)
        msg.check()
        return msg

    def check(self) -> None:
        """Refuse (ProtocolError) a message whose fields are each well-formed but out of range."""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update({f.name: v.to_dict() for f in dataclasses.fields(self) if isinstance(v := getattr(self, f.name), Settings)})
        return {"v": PROTOCOL_VERSION, "type": self.type, **d}

    def __bytes__(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()


def _reject_constant(name: str) -> NoReturn:
    # json accepts NaN and Infinity by default; a NaN pts or delay would poison every comparison.
    raise ValueError(f"{name} is not allowed")


def _finite(value: Any, what: str) -> float:
    """``value`` as a finite float, or ProtocolError: 1e999 parses as infinity, and a huge int overflows."""
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ProtocolError(f"{what} must be a finite number (got {str(value)[:40]})")
    return number


def parse_message(data: str | bytes) -> Message:
    """One control message, or ProtocolError saying exactly what is wrong with it."""
    if len(data) > MAX_CONTROL_BYTES:
        raise ProtocolError(f"control message of {len(data)} bytes exceeds {MAX_CONTROL_BYTES}")
    try:
        d = json.loads(data, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"control message is not JSON ({exc.__class__.__name__})") from None
    if not isinstance(d, dict):
        raise ProtocolError("control message must be a JSON object")
    if d.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {d.get('v')!r} is not supported (this side speaks {PROTOCOL_VERSION})")
    cls = MESSAGE_TYPES.get(d.get("type"))  # type: ignore[arg-type]
    if cls is None:
        raise ProtocolError(f"unknown message type {str(d.get('type'))[:40]!r}")
    return cls.from_dict(d)


# client -> server

@_register
@dataclass
class Hello(Message):
    """First message of a session: who the client is and its login nonce (never the token itself)."""

    type: ClassVar[str] = "hello"
    nonce: str
    """The client's fresh nonce (new_nonce())."""
    source: str
    kind: str
    """KIND_VIDEO or KIND_AUDIO."""
    delay_s: float = 1.0
    """D: the client shows frame t at t + D; results must arrive before then."""
    stream: str = "default"
    """Video and audio sessions with the same stream are linked (mouth blur while speech is bleeped)."""
    pid: int = 0
    """The client's process id, so the server can reclaim its segments if it dies."""

    def check(self) -> None:
        check_delay(self.delay_s)


@_register
@dataclass
class Auth(Message):
    """The client's answer to a challenge whose proof it checked: its own proof, and its settings.

    The settings travel here, not in hello, because they hold the streamer's own words (custom
    PII terms): they go only to a server that has proven that it knows the token.
    """

    type: ClassVar[str] = "auth"
    proof: str
    """auth_proof(token, ROLE_CLIENT, client nonce, server nonce)."""
    settings: Settings = field(default_factory=Settings)


@_register
@dataclass
class RingAnnounce(Message):
    """The client created (or replaced, on a size change) its ring; later notices refer to it."""

    type: ClassVar[str] = "ring"
    name: str
    generation: int


@_register
@dataclass
class FrameNotice(Message):
    """Video frame ``frame_id`` is in ``slot`` of ring ``generation`` with sequence ``seq``."""

    type: ClassVar[str] = "frame"
    frame_id: int
    generation: int
    slot: int
    seq: int


@_register
@dataclass
class AudioNotice(Message):
    """An audio packet is in ``slot`` of ring ``generation`` with sequence ``seq``."""

    type: ClassVar[str] = "audio"
    generation: int
    slot: int
    seq: int


@_register
@dataclass
class SettingsUpdate(Message):
    """The client's settings, whole: they replace the session's.  A malformed one is refused with an error
    reply, and the session keeps deciding with the settings it had."""

    type: ClassVar[str] = "settings"
    settings: Settings
    delay_s: float = -1.0
    """Negative: unchanged."""

    def check(self) -> None:
        if self.delay_s > 0:
            check_delay(self.delay_s)


@_register
@dataclass
class Bye(Message):
    type: ClassVar[str] = "bye"


# server -> client

@_register
@dataclass
class Challenge(Message):
    """The server's answer to hello: its fresh nonce and its proof, which the client checks first."""

    type: ClassVar[str] = "challenge"
    nonce: str
    proof: str
    """auth_proof(token, ROLE_SERVER, client nonce, server nonce)."""


@_register
@dataclass
class Welcome(Message):
    """The client's proof matched: the session is open."""

    type: ClassVar[str] = "welcome"
    session: int
    server_pid: int
    heartbeat_s: float = HEARTBEAT_INTERVAL_S


@_register
@dataclass
class Decision(Message):
    """The final regions for one frame (Region.to_dict() each), or fail_closed: cover it all."""

    type: ClassVar[str] = "decision"
    frame_id: int
    regions: list[dict[str, Any]] = field(default_factory=list)
    fail_closed: bool = False
    reason: str = ""


@_register
@dataclass
class MuteUpdate(Message):
    """Final mute intervals [start, end, kind] (seconds, stream clock); audio up to decided_until is final."""

    type: ClassVar[str] = "mute"
    intervals: list[list[Any]] = field(default_factory=list)
    decided_until: float = 0.0


@_register
@dataclass
class Heartbeat(Message):
    """Sent every HEARTBEAT_INTERVAL_S; ``stats`` are the session's figures for the client's status."""

    type: ClassVar[str] = "heartbeat"
    t: float
    stats: dict[str, Any] = field(default_factory=dict)


@_register
@dataclass
class ErrorReply(Message):
    """Something the peer sent was refused; ``fatal`` means the server closes the connection."""

    type: ClassVar[str] = "error"
    code: str
    message: str
    fatal: bool = False


ERROR_CODES = ("protocol", "auth", "state", "media", "model", "internal")


def decision_to_message(frame_id: int, decision: FrameDecision) -> Decision:
    return Decision(frame_id=frame_id, regions=[r.to_dict() for r in decision.regions],
                    fail_closed=decision.fail_closed, reason=decision.reason)


def decision_from_message(msg: Decision) -> FrameDecision:
    """The FrameDecision a Decision message carries; ProtocolError if a region is malformed.

    Boxes are checked here, at the edge, because a box the renderer cannot draw would show the
    frame it should cover: finite, not inverted, inside the largest frame (the server clips
    every region to its frame).  The client decides such a frame fail-closed.
    """
    regions = []
    for d in msg.regions:
        try:
            regions.append(_region_from_dict(d))
        except (KeyError, TypeError, ValueError, ProtocolError) as exc:
            raise ProtocolError(f"decision for frame {msg.frame_id} has a malformed region ({exc})") from None
    return FrameDecision(regions=regions, fail_closed=msg.fail_closed, reason=msg.reason)


def _region_from_dict(d: dict[str, Any]) -> Region:
    if d["kind"] not in KINDS:
        raise ValueError(f"kind {str(d['kind'])[:20]!r} is not one of {', '.join(KINDS)}")
    if not isinstance(d["box"], list) or len(d["box"]) != 4:
        raise ValueError("box needs 4 numbers")
    x0, y0, x1, y1 = (_finite(v, "box") for v in d["box"])
    if not (0 <= x0 <= x1 <= MAX_FRAME_SIDE and 0 <= y0 <= y1 <= MAX_FRAME_SIDE):
        raise ValueError(f"box {[x0, y0, x1, y1]} is inverted or outside 0..{MAX_FRAME_SIDE}")
    return Region(kind=d["kind"], box=(x0, y0, x1, y1), score=_finite(d.get("score", 1.0), "score"),
                  label=str(d.get("label", "")), origin=str(d.get("origin", "detected")),
                  track_id=int(d.get("track", -1)))
