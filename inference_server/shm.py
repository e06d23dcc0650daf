"""Shared-memory rings for frames and audio packets (layout: inference_server/protocol.py).

We do not use multiprocessing.shared_memory: on Python 3.11 every SharedMemory, even an
attached one, registers with multiprocessing's resource tracker, which spawns a helper
process (forbidden inside OBS) and unlinks segments it did not create
(https://github.com/python/cpython/issues/82300).
Plain shm_open + mmap gives the same segments without either.

The client creates and owns its rings (it knows the frame size, and a size change only
needs a new ring); the server attaches read-only-by-convention and copies each frame out once.
Segments are user-only (0600, checked on attach), and a segment whose creator died is
reclaimed by ``reclaim_stale_segments`` at the next start of either side.
"""

from __future__ import annotations

import errno
import logging
import mmap
import os
import secrets
from concurrent.futures import ThreadPoolExecutor

import _posixshmem  # CPython's own shm_open/shm_unlink (what multiprocessing.shared_memory uses)
import numpy as np

from .errors import ProtocolError, StateError
from .protocol import (FORMAT_RGBA8, PROTOCOL_VERSION, RING_HEADER_SIZE, SLOT_HEADER_SIZE,
                       RingHeader, SlotHeader, parse_segment_name, ring_segment_size, segment_name)

log = logging.getLogger("privastream.shm")
SHM_DIR = "/dev/shm"


def _free_shm() -> str:
    try:
        st = os.statvfs(SHM_DIR)
    except OSError:
        return "unknown"
    return f"{st.f_bavail * st.f_frsize / 2**20:.1f} MiB"


class SlotOverwritten(ProtocolError):
    """The slot a notice named was rewritten before it was read: that frame is lost."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def reclaim_stale_segments() -> list[str]:
    """Unlink this user's PrivaStream segments whose creating process is gone; returns their names."""
    if not os.path.isdir(SHM_DIR):
        return []
    reclaimed = []
    for entry in os.listdir(SHM_DIR):
        try:
            uid, pid = parse_segment_name("/" + entry)
        except ProtocolError:
            continue
        if uid == os.getuid() and not _pid_alive(pid):
            try:
                _posixshmem.shm_unlink("/" + entry)
                reclaimed.append("/" + entry)
            except OSError:
                pass
    if reclaimed:
        log.info("reclaim_stale_segments() | unlinked segments of dead processes [count:%d]", len(reclaimed))
    return reclaimed


class Segment:
    """One POSIX shared-memory segment mapped into this process."""

    def __init__(self, name: str, fd: int, size: int, owner: bool):
        self.name = name
        self.size = size
        self.owner = owner
        self.mm = mmap.mmap(fd, size)
        os.close(fd)

    @classmethod
    def create(cls, name: str, size: int) -> "Segment":
        """A new user-only segment whose memory is reserved now; StateError if SHM_DIR has no room.

        ftruncate alone makes a sparse segment: writing a page that the full tmpfs cannot supply
        then kills the writer with SIGBUS, and the writer is OBS.  posix_fallocate reserves every
        page up front, so a full /dev/shm (Docker gives 64 MB) is an error here instead.
        """
        fd = _posixshmem.shm_open(name, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=0o600)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask did, user-only
            os.ftruncate(fd, size)
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            os.close(fd)
            _posixshmem.shm_unlink(name)
            if exc.errno == errno.ENOSPC:
                raise StateError(f"{SHM_DIR} has no room for a {size / 2**20:.1f} MiB ring ({_free_shm()} free); "
                                 f"enlarge it (Docker: --shm-size=512m) or close other users of it") from None
            raise
        return cls(name, fd, size, owner=True)

    @classmethod
    def attach(cls, name: str) -> "Segment":
        """Map an existing segment after checking it is ours and user-only."""
        uid, _ = parse_segment_name(name)
        if uid != os.getuid():
            raise ProtocolError(f"segment {name} belongs to another user")
        try:
            fd = _posixshmem.shm_open(name, os.O_RDWR, mode=0o600)
        except OSError as exc:
            raise ProtocolError(f"cannot open segment {name} ({exc.strerror})") from None
        st = os.fstat(fd)
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            os.close(fd)
            raise ProtocolError(f"segment {name} is not user-only (mode {oct(st.st_mode & 0o777)})")
        if st.st_size < RING_HEADER_SIZE:
            os.close(fd)
            raise ProtocolError(f"segment {name} is too small for a ring ({st.st_size} bytes)")
        return cls(name, fd, st.st_size, owner=False)

    def close(self) -> None:
        try:
            self.mm.close()
        except BufferError:  # a numpy view still alive; the mapping goes with the last one
            pass
        if self.owner:
            self.owner = False
            try:
                _posixshmem.shm_unlink(self.name)
            except FileNotFoundError:
                pass


SPLIT_COPY_BYTES = 1 << 20
"""Frames at least this big are copied in two halves at once: memory bandwidth allows it (a
1080p RGBA copy took 0.69 ms in one thread, 0.42 ms in two, on this 2-core machine), and the
copy is the transport's main cost (the budget: <= 1 ms per 1080p frame)."""
_copier: ThreadPoolExecutor | None = None


def _copy(dst: np.ndarray, src: np.ndarray) -> None:
    """np.copyto, split over the calling thread and one helper for big arrays (numpy drops the GIL)."""
    global _copier
    if src.nbytes < SPLIT_COPY_BYTES or len(src) < 2:
        np.copyto(dst, src)
        return
    if _copier is None:
        _copier = ThreadPoolExecutor(1, thread_name_prefix="privastream-copy")
    half = len(src) // 2
    other = _copier.submit(np.copyto, dst[half:], src[half:])
    np.copyto(dst[:half], src[:half])
    other.result()


class RingWriter:
    """The client's side: writes each frame or packet into the next slot with one copy."""

    def __init__(self, fmt: int, slot_count: int, slot_size: int):
        self.header = RingHeader(PROTOCOL_VERSION, fmt, slot_count, slot_size)
        name = segment_name(os.getuid(), os.getpid(), secrets.token_hex(4))
        self.segment = Segment.create(name, ring_segment_size(slot_count, slot_size))
        self.segment.mm[:RING_HEADER_SIZE] = bytes(self.header)
        self._next_slot = 0
        self._seq = 0

    @property
    def name(self) -> str:
        return self.segment.name

    def write(self, array: np.ndarray, frame_id: int, pts: float, submitted: float,
              sample_rate: int = 0) -> tuple[int, int]:
        """Copy ``array`` (HxWx4 uint8 or CxN float32) into the next slot; returns (slot, seq)."""
        if self.segment.mm.closed:
            raise StateError("ring is closed")
        if self.header.kind == FORMAT_RGBA8:
            h, w = array.shape[:2]
            header = SlotHeader(0, frame_id, pts, submitted, width=w, height=h, channels=4,
                                payload_bytes=h * w * 4)
        else:
            c, n = array.shape
            header = SlotHeader(0, frame_id, pts, submitted, channels=c, sample_rate=sample_rate, n_samples=n,
                                payload_bytes=c * n * 4)
        if header.payload_bytes > self.header.slot_size:
            raise StateError(f"payload of {header.payload_bytes} bytes does not fit the slot size "
                             f"{self.header.slot_size}")
        slot = self._next_slot
        self._next_slot = (slot + 1) % self.header.slot_count
        off = self.header.slot_offset(slot)
        mm = self.segment.mm
        self._seq += 2
        # Seqlock: odd while writing, so a reader that sees odd or a changed seq drops the slot.
        SlotHeader.SEQ_STRUCT.pack_into(mm, off, self._seq - 1)
        dst = np.ndarray(array.shape, dtype=array.dtype, buffer=mm, offset=off + SLOT_HEADER_SIZE)
        _copy(dst, array)
        del dst
        header.seq = self._seq
        mm[off + 8:off + SLOT_HEADER_SIZE] = bytes(header)[8:]
        SlotHeader.SEQ_STRUCT.pack_into(mm, off, self._seq)
        return slot, self._seq

    def close(self) -> None:
        self.segment.close()


class RingReader:
    """The server's side: attaches a client's ring and copies a slot out once."""

    def __init__(self, name: str):
        self.segment = Segment.attach(name)
        try:
            self.header = RingHeader.parse(self.segment.mm[:RING_HEADER_SIZE])
            if self.header.segment_size > self.segment.size:
                raise ProtocolError(f"segment {name} has {self.segment.size} bytes, its ring header needs "
                                    f"{self.header.segment_size}")
        except ProtocolError:
            self.segment.close()
            raise

    def read(self, slot: int, seq: int) -> tuple[SlotHeader, np.ndarray]:
        """The slot's header and a private copy of its payload (HxWx4 uint8 or CxN float32)."""
        return self.read_view(slot, seq, lambda view: view.copy())

    def thumbnail(self, slot: int, seq: int, min_width: int = 256, min_height: int = 144) -> tuple[SlotHeader, np.ndarray]:
        """The header and the RGB of every n-th pixel, at least ``min_width`` x ``min_height``, read in place.

        The live server's one read of a frame: 1080p at n = 7 is ~130 KB instead of 8 MB, enough
        for the scene-cut check, while the detection worker reads whole frames from the same
        slot (the transport's budget: <= 1 ms per 1080p frame).
        """
        def take(view: np.ndarray) -> np.ndarray:
            step = max(1, min(view.shape[0] // min_height, view.shape[1] // min_width))
            return view[::step, ::step, :3].copy()
        return self.read_view(slot, seq, take)

    def read_view(self, slot: int, seq: int, take):
        """``take(view of the payload)`` under the seqlock: SlotOverwritten if the slot changed meanwhile."""
        if not 0 <= slot < self.header.slot_count:
            raise ProtocolError(f"slot {slot} is outside the ring (0..{self.header.slot_count - 1})")
        off = self.header.slot_offset(slot)
        mm = self.segment.mm
        header = SlotHeader.parse(mm[off:off + SLOT_HEADER_SIZE])
        if header.seq != seq:
            raise SlotOverwritten(f"slot {slot} holds seq {header.seq}, not {seq} (overwritten or still being written)")
        header.validate(self.header)
        if self.header.kind == FORMAT_RGBA8:
            shape, dtype = (header.height, header.width, 4), np.uint8
        else:
            shape, dtype = (header.channels, header.n_samples), np.float32
        data = take(np.ndarray(shape, dtype=dtype, buffer=mm, offset=off + SLOT_HEADER_SIZE))
        if SlotHeader.SEQ_STRUCT.unpack_from(mm, off)[0] != seq:
            raise SlotOverwritten(f"slot {slot} was rewritten while it was read")
        return header, data

    def close(self) -> None:
        self.segment.close()


def slot_size_for_video(width: int, height: int) -> int:
    """Slot payload for a frame size, rounded up so small size changes need no new ring."""
    need = width * height * 4
    return -(-need // (1 << 20)) * (1 << 20)

