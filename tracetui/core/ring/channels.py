"""The ring's channels: the only module, with ring/markers.py, that imports the compiled backend.

It owns argument validation, error translation (negative errno -> typed
exception with one sentence), clock calibration, and the conversion of
shared-memory packets to ``memoryview``/``bytes``.  No cdata leaves this
module except ``Channel._ptr``, which sibling native code in tracetui.core
(the probe's emitters) may pass back to C.
"""

from __future__ import annotations

import errno as _errno
import os
import re
import time
from collections.abc import Callable
from functools import partial

from tracetui.core._ttrb import ffi, lib
from tracetui.core.model import geometry
from tracetui.core.model.clock import ClockCalibration
from tracetui.core.model.stats import Stats


class RingError(OSError):
    """A buffer operation failed; ``errno`` says why, ``str()`` is one sentence."""

    def __init__(self, err: int, message: str) -> None:
        super().__init__(err, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidConfig(RingError, ValueError):
    """A size, count or name that the backend cannot accept (EINVAL)."""


class OutOfMemory(RingError):
    """Shared memory could not be had (ENOMEM, ENOSPC)."""


def validate(subbuf_size: int, n_subbuf: int) -> None:
    """Raise InvalidConfig unless the ring accepts this geometry (core/model/geometry.py)."""
    try:
        geometry.validate(subbuf_size, n_subbuf)
    except geometry.InvalidGeometry as e:
        raise InvalidConfig(_errno.EINVAL, str(e)) from None


def possible_cpus() -> int:
    """Number of per-CPU buffers a per-CPU channel gets."""
    return os.sysconf("SC_NPROCESSORS_CONF")


def clock_now() -> int:
    """Raw timestamp ticks, as records carry them."""
    return int(lib.ttrb_clock())


def _sample() -> tuple[int, int, int]:
    mono = ffi.new("uint64_t *")
    tsc = ffi.new("uint64_t *")
    real = ffi.new("uint64_t *")
    lib.ttrb_clock_sample(mono, tsc, real)
    return int(mono[0]), int(tsc[0]), int(real[0])


def calibrate(duration_s: float = 0.02) -> ClockCalibration:
    """Measure the tick rate against CLOCK_MONOTONIC."""
    m0, t0, r0 = _sample()
    time.sleep(duration_s)
    m1, t1, _ = _sample()
    freq = (t1 - t0) * 1e9 / (m1 - m0)
    return ClockCalibration(freq_hz=freq, tsc0=t1, mono_ns0=m1, real_ns0=r0 + (m1 - m0))


def _raise(rc: int, what: str, **ctx: object) -> None:
    err = -rc
    if err == _errno.EINVAL:
        raise InvalidConfig(err, f"{what}: invalid argument")
    if err in (_errno.ENOMEM, _errno.ENOSPC):
        raise OutOfMemory(err, f"{what}: {os.strerror(err).lower()}")
    raise RingError(err, f"{what}: {os.strerror(err).lower()}")


class Channel:
    """A mapped channel: one global buffer or one per possible CPU."""

    __slots__ = ("_closed", "_name", "_ptr")

    def __init__(self, ptr: object, name: str) -> None:
        self._ptr = ptr
        self._name = name
        self._closed = False

    # -- lifetime ---------------------------------------------------------

    @classmethod
    def create(
        cls,
        name: str,
        subbuf_size: int,
        n_subbuf: int,
        *,
        is_global: bool = False,
        flight: bool = False,
        uuid: bytes = bytes(16),
        stream_id: int = 0,
        nbuf: int | None = None,
    ) -> Channel:
        """Create the shared-memory object (mode 0600) and reserve its memory."""
        validate(subbuf_size, n_subbuf)
        if len(uuid) != 16:
            raise InvalidConfig(_errno.EINVAL, "a trace uuid is 16 bytes")
        _check_name(name)
        nb = 1 if is_global else (nbuf or possible_cpus())
        flags = (lib.TTRB_FLAG_GLOBAL if is_global else 0) | (lib.TTRB_FLAG_FLIGHT if flight else 0)
        out = ffi.new("struct ttrb_chan **")
        rc = lib.ttrb_chan_create(
            name.encode(), subbuf_size, n_subbuf, nb, flags, uuid, stream_id, out
        )
        if rc < 0:
            asked = subbuf_size * n_subbuf * nb
            err = -rc
            if err in (_errno.ENOMEM, _errno.ENOSPC, _errno.EFBIG):
                raise OutOfMemory(
                    err,
                    f"cannot allocate {geometry.format_bytes(asked)} of shared memory "
                    f"({nb} buffer(s) x {n_subbuf} x {geometry.format_bytes(subbuf_size)}): "
                    f"{os.strerror(err).lower()}",
                )
            if err == _errno.EEXIST:
                raise RingError(err, f"shared memory '{name}' already exists")
            _raise(rc, f"cannot create channel buffers '{name}'")
        return cls(out[0], name)

    @classmethod
    def open(cls, name: str) -> Channel:
        """Map a channel another process of the same user created."""
        _check_name(name)
        out = ffi.new("struct ttrb_chan **")
        rc = lib.ttrb_chan_open(name.encode(), out)
        if rc < 0:
            if -rc == _errno.ENOENT:
                raise RingError(-rc, f"no channel buffers named '{name}'")
            if -rc == _errno.EPROTO:
                raise RingError(-rc, f"'{name}' is not a tracetui channel")
            _raise(rc, f"cannot open channel buffers '{name}'")
        return cls(out[0], name)

    def close(self) -> None:
        """Unmap.  The Channel must not be used afterwards."""
        if not self._closed:
            self._closed = True
            lib.ttrb_chan_close(self._ptr)
            self._ptr = ffi.NULL

    def unlink(self) -> None:
        """Remove the shared-memory name (existing mappings stay valid)."""
        rc = lib.ttrb_chan_unlink(self._name.encode())
        if rc < 0 and -rc != _errno.ENOENT:
            _raise(rc, f"cannot unlink '{self._name}'")

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _live(self) -> object:
        if self._closed:
            raise RingError(_errno.EBADF, f"channel '{self._name}' is closed")
        return self._ptr

    # -- geometry -----------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def subbuf_size(self) -> int:
        return int(lib.ttrb_chan_subbuf_size(self._live()))

    @property
    def n_subbuf(self) -> int:
        return int(lib.ttrb_chan_n_subbuf(self._live()))

    @property
    def nbuf(self) -> int:
        return int(lib.ttrb_chan_nbuf(self._live()))

    @property
    def map_size(self) -> int:
        return int(lib.ttrb_chan_map_size(self._live()))

    @property
    def is_global(self) -> bool:
        return bool(lib.ttrb_chan_flags(self._live()) & lib.TTRB_FLAG_GLOBAL)

    @property
    def flight(self) -> bool:
        return bool(lib.ttrb_chan_flags(self._live()) & lib.TTRB_FLAG_FLIGHT)

    @flight.setter
    def flight(self, value: bool) -> None:
        lib.ttrb_chan_set_flight(self._live(), 1 if value else 0)

    def _buf(self, buffer: int) -> int:
        n = self.nbuf
        if not 0 <= buffer < n:
            raise InvalidConfig(_errno.EINVAL, f"buffer {buffer} does not exist (0..{n - 1})")
        return buffer

    # -- writing ------------------------------------------------------------

    def write(self, event_id: int, payload: bytes, buffer: int | None = None) -> bool:
        """Record one event; False if it was lost (and counted)."""
        ptr = self._live()
        if buffer is None:
            return lib.ttrb_write(ptr, event_id, payload, len(payload)) == 0
        resv = ffi.new("struct ttrb_resv *")
        if lib.ttrb_reserve(ptr, self._buf(buffer), event_id, len(payload), resv) != 0:
            return False
        ffi.memmove(resv.payload, payload, len(payload))
        lib.ttrb_commit(resv)
        return True

    def writer_u64x3(self, event_id: int) -> Callable[[int, int, int], int]:
        """A fast emitter of three 64-bit integers: returns 0 or a negative errno."""
        return partial(lib.ttrb_write_u64x3, self._live(), event_id)

    def reserve(self, event_id: int, payload: bytes, buffer: int | None = None) -> Reservation:
        """Reserve and fill a record without committing it (tests of dead writers)."""
        resv = ffi.new("struct ttrb_resv *")
        b = -1 if buffer is None else self._buf(buffer)
        rc = lib.ttrb_reserve(self._live(), b, event_id, len(payload), resv)
        if rc < 0:
            _raise(rc, "cannot reserve a record")
        ffi.memmove(resv.payload, payload, len(payload))
        return Reservation(resv)

    # -- consuming ----------------------------------------------------------

    def get_packet(self, buffer: int) -> memoryview | None:
        """The oldest complete packet, held (untouched by writers) until put_packet."""
        data = ffi.new("const char **")
        size = ffi.new("uint32_t *")
        rc = lib.ttrb_get_subbuf(self._live(), self._buf(buffer), data, size)
        if rc == -_errno.EAGAIN:
            return None
        if rc < 0:
            if -rc == _errno.EBUSY:
                raise RingError(-rc, "a packet of this buffer is already held: put it first")
            _raise(rc, "cannot get a packet")
        return memoryview(ffi.buffer(data[0], size[0]))

    def put_packet(self, buffer: int) -> None:
        rc = lib.ttrb_put_subbuf(self._live(), self._buf(buffer))
        if rc < 0:
            raise RingError(-rc, f"no packet of buffer {buffer} is held")

    def flush(self, buffer: int | None = None) -> int:
        """Close partial sub-buffers now; returns how many packets were closed."""
        ptr = self._live()
        bufs = range(self.nbuf) if buffer is None else (self._buf(buffer),)
        return sum(lib.ttrb_flush(ptr, b) for b in bufs)

    def snapshot(self, buffer: int, first_seq: int = 0) -> bytes:
        """Complete packets of a buffer, oldest first, without consuming them.

        ``first_seq`` leaves out packets numbered below it (those a caller has).
        """
        size = self.n_subbuf * self.subbuf_size
        dst = ffi.new("char[]", size)
        n = lib.ttrb_snapshot_from(self._live(), self._buf(buffer), first_seq, dst, size)
        if n < 0:
            _raise(int(n), "cannot snapshot")
        return ffi.buffer(dst, n)[:]

    def check_stuck(self, timeout_s: float = 1.0) -> int:
        """Recover sub-buffers left incomplete by dead writers; returns how many."""
        ptr = self._live()
        now = time.monotonic_ns()
        t = int(timeout_s * 1e9)
        return sum(lib.ttrb_check_stuck(ptr, b, now, t) for b in range(self.nbuf))

    def mappers(self) -> list[int]:
        """Pids listed as mapping this channel (dead ones until forgotten)."""
        out = ffi.new("int32_t[]", lib.TTRB_MAX_MAPPERS)
        n = lib.ttrb_chan_mappers(self._live(), out, lib.TTRB_MAX_MAPPERS)
        return [int(out[i]) for i in range(n)]

    def forget_mapper(self, pid: int) -> bool:
        """Remove one listing of PID; False if it was not listed."""
        return lib.ttrb_chan_forget_mapper(self._live(), pid) == 0

    def stuck(self, buffer: int) -> tuple[int, int] | None:
        """(sub-buffer number, commit word) when the oldest unconsumed sub-buffer of BUFFER
        is closed but holds an uncommitted reservation; None otherwise."""
        k = ffi.new("uint64_t *")
        commit = ffi.new("uint64_t *")
        if lib.ttrb_stuck(self._live(), self._buf(buffer), k, commit) == 1:
            return int(k[0]), int(commit[0])
        return None

    def reclaim(self, buffer: int, subbuf: int) -> bool:
        """Drop stuck sub-buffer SUBBUF (its writer is dead), counting its records."""
        return lib.ttrb_reclaim(self._live(), self._buf(buffer), subbuf) == 1

    def incomplete(self, buffer: int | None = None) -> int:
        """Closed, unconsumed sub-buffers still owed a commit (see ttrb_incomplete)."""
        ptr = self._live()
        bufs = range(self.nbuf) if buffer is None else (self._buf(buffer),)
        return sum(int(lib.ttrb_incomplete(ptr, b)) for b in bufs)

    def charge_lost(self, buffer: int, count: int) -> None:
        """Count COUNT records that never reached BUFFER as discarded."""
        lib.ttrb_charge_lost(self._live(), self._buf(buffer), count)

    def pending(self, buffer: int | None = None) -> int:
        """Sub-buffers written and not consumed yet (the open one included)."""
        ptr = self._live()
        bufs = range(self.nbuf) if buffer is None else (self._buf(buffer),)
        return sum(int(lib.ttrb_pending(ptr, b)) for b in bufs)

    def stats(self, buffer: int | None = None) -> Stats:
        """Counters of one buffer, or the total over all buffers."""
        ptr = self._live()
        st = ffi.new("struct ttrb_stats *")
        total = Stats()
        for b in range(self.nbuf) if buffer is None else (self._buf(buffer),):
            lib.ttrb_stats(ptr, b, st)
            total = total + Stats(
                st.recorded, st.discarded, st.overwritten, st.too_big, st.lost_dead,
                st.bytes, st.packets, st.consumed, st.consumed_packets, st.stuck_packets,
            )  # fmt: skip
        return total


class Reservation:
    """A reserved, filled, not yet committed record (see Channel.reserve)."""

    __slots__ = ("_resv",)

    def __init__(self, resv: object) -> None:
        self._resv = resv

    def commit(self) -> None:
        lib.ttrb_commit(self._resv)


_NAME_RE = re.compile(r"^/[A-Za-z0-9._-]{1,200}$")


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise InvalidConfig(
            _errno.EINVAL,
            f"shared-memory name '{name}' must be '/' then up to 200 letters, "
            "digits, '.', '_' or '-'",
        )


def bench_write(chan: Channel, threads: int, count: int, payload_len: int) -> int:
    """C write loop for benchmarks: mean ns per record per thread."""
    rc = int(lib.ttrb_bench_write(chan._live(), threads, count, payload_len))
    if rc < 0:
        _raise(rc, "benchmark threads could not start")
    return rc


def bench_ref_cas(count: int, payload_len: int, *, atomic: bool = True) -> int:
    """The benchmarks' same-run reference: a bare lock-free CAS ring write (ns per record)."""
    rc = int(lib.ttrb_bench_ref_cas(count, payload_len, 1 if atomic else 0))
    if rc < 0:
        _raise(rc, "the reference ring refuses that record size")
    return rc
