"""The ring-buffer façade: the only module that imports the compiled backend.

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
from dataclasses import dataclass, fields
from functools import partial

from tracetui.core._ttrb import ffi, lib

PACKET_HEADER_SIZE: int = lib.TTRB_PACKET_HEADER_SIZE
EVENT_HEADER_SIZE: int = lib.TTRB_EVENT_HEADER_SIZE
MIN_SUBBUF: int = lib.TTRB_MIN_SUBBUF_SIZE
MAX_SUBBUF: int = lib.TTRB_MAX_SUBBUF_SIZE
MIN_N_SUBBUF: int = lib.TTRB_MIN_N_SUBBUF
MAX_N_SUBBUF: int = lib.TTRB_MAX_N_SUBBUF
MAGIC: int = lib.TTRB_MAGIC
RESERVED_EVENT_ID = 0xFFFF


class BufferError(OSError):
    """A buffer operation failed; ``errno`` says why, ``str()`` is one sentence."""

    def __init__(self, err: int, message: str) -> None:
        super().__init__(err, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidConfig(BufferError, ValueError):
    """A size, count or name that the backend cannot accept (EINVAL)."""


class OutOfMemory(BufferError):
    """Shared memory could not be had (ENOMEM, ENOSPC)."""


def _fmt_bytes(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << (shift - 4 if shift > 10 else 0)) == 0:
            return f"{n / (1 << shift):g} {unit}"
    return f"{n} bytes"


_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmg]?)(i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Parse "4096", "256K", "1M", "2MiB" into bytes; ValueError with a sentence."""
    m = _SIZE_RE.match(str(text))
    if not m:
        raise ValueError(
            f"'{text}' is not a size: use bytes or a number with K, M or G (e.g. 256K)"
        )
    return int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]


def validate(subbuf_size: int, n_subbuf: int) -> None:
    """Raise InvalidConfig unless the backend accepts this geometry."""
    if subbuf_size & (subbuf_size - 1) or not MIN_SUBBUF <= subbuf_size <= MAX_SUBBUF:
        raise InvalidConfig(
            _errno.EINVAL,
            f"sub-buffer size {subbuf_size} must be a power of two between "
            f"{_fmt_bytes(MIN_SUBBUF)} and {_fmt_bytes(MAX_SUBBUF)}",
        )
    if n_subbuf & (n_subbuf - 1) or not MIN_N_SUBBUF <= n_subbuf <= MAX_N_SUBBUF:
        raise InvalidConfig(
            _errno.EINVAL,
            f"sub-buffer count {n_subbuf} must be a power of two between "
            f"{MIN_N_SUBBUF} and {MAX_N_SUBBUF}",
        )


def possible_cpus() -> int:
    """Number of per-CPU buffers a per-CPU channel gets."""
    return os.sysconf("SC_NPROCESSORS_CONF")


@dataclass(frozen=True)
class Stats:
    """Counters of one buffer, or their sum over a channel's buffers."""

    recorded: int = 0
    discarded: int = 0
    overwritten: int = 0
    too_big: int = 0
    lost_dead: int = 0
    bytes: int = 0
    packets: int = 0
    consumed: int = 0
    consumed_packets: int = 0
    stuck_packets: int = 0

    def __add__(self, other: Stats) -> Stats:
        return Stats(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def lost(self) -> int:
        """Records that will never be read: discarded, overwritten, too big."""
        return self.discarded + self.overwritten + self.too_big


@dataclass(frozen=True)
class ClockCalibration:
    """Maps raw TSC ticks (what records carry) to CLOCK_MONOTONIC and wall time.

    Measured by sampling (CLOCK_MONOTONIC, TSC, CLOCK_REALTIME) twice over a
    short interval; the kernel's TSC clocksource makes the rate stable, so the
    slope of two samples 20 ms apart is good to about 1 ppm.
    """

    freq_hz: float
    tsc0: int
    mono_ns0: int
    real_ns0: int

    def to_mono_ns(self, tsc: int) -> int:
        return self.mono_ns0 + round((tsc - self.tsc0) * 1e9 / self.freq_hz)

    def to_real_ns(self, tsc: int) -> int:
        return self.real_ns0 + round((tsc - self.tsc0) * 1e9 / self.freq_hz)


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
    raise BufferError(err, f"{what}: {os.strerror(err).lower()}")


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
                    f"cannot allocate {_fmt_bytes(asked)} of shared memory "
                    f"({nb} buffer(s) x {n_subbuf} x {_fmt_bytes(subbuf_size)}): "
                    f"{os.strerror(err).lower()}",
                )
            if err == _errno.EEXIST:
                raise BufferError(err, f"shared memory '{name}' already exists")
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
                raise BufferError(-rc, f"no channel buffers named '{name}'")
            if -rc == _errno.EPROTO:
                raise BufferError(-rc, f"'{name}' is not a tracetui channel")
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
            raise BufferError(_errno.EBADF, f"channel '{self._name}' is closed")
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
                raise BufferError(-rc, "a packet of this buffer is already held: put it first")
            _raise(rc, "cannot get a packet")
        return memoryview(ffi.buffer(data[0], size[0]))

    def put_packet(self, buffer: int) -> None:
        rc = lib.ttrb_put_subbuf(self._live(), self._buf(buffer))
        if rc < 0:
            raise BufferError(-rc, f"no packet of buffer {buffer} is held")

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


# -- markers (the probe's native side) -----------------------------------------------------------

# Format type code -> ttpr field type, and -> the letter of the generated typed
# emitters (native/build.py): i int32, u uint32, l int64, q uint64.
_TTPR_TYPE = {
    "d": lib.TTPR_I32, "u": lib.TTPR_U32, "ld": lib.TTPR_I64, "lld": lib.TTPR_I64,
    "lu": lib.TTPR_U64, "llu": lib.TTPR_U64, "x": lib.TTPR_X32, "p": lib.TTPR_PTR,
    "s": lib.TTPR_STR, "c": lib.TTPR_CHAR, "f": lib.TTPR_F64,
}  # fmt: skip
_FAST_LETTER = {"d": "i", "u": "u", "x": "u", "ld": "l", "lld": "l", "lu": "q", "llu": "q",
                "p": "q"}  # fmt: skip
_INTISH = frozenset(_FAST_LETTER)
# Targets and channels a writer may still be using are kept this long after
# they are replaced (writers never block, so they cannot be waited for).
GRACE_S = 10.0


class NativeMarker:
    """The C side of one marker: its id, field types, and target list.

    The target list is swapped atomically (writers never block); the list it
    replaces is freed after GRACE_S, and the caller must keep the channels of
    a replaced list mapped at least as long.
    """

    __slots__ = ("__weakref__", "_m", "_retired", "codes", "on_targets", "targets")

    def __init__(self, event_id: int, type_codes: list[str]) -> None:
        types = bytes(_TTPR_TYPE[c] for c in type_codes)
        self._m = ffi.new("struct ttpr_marker *")
        if lib.ttpr_marker_init(self._m, event_id, types, len(types)) < 0:
            raise InvalidConfig(_errno.EINVAL, f"a marker has at most {lib.TTPR_MAX_FIELDS} fields")
        self.codes = tuple(type_codes)
        self.targets: tuple[Channel, ...] = ()
        self._retired: list[tuple[float, object]] = []
        # Called after every set_targets (the function tracer rewrites its definitions).
        self.on_targets: Callable[[], object] | None = None

    @property
    def address(self) -> int:
        """The address of the ``struct ttpr_marker`` (for tracetui.core._ttpy; this
        object owns the memory and must outlive its users)."""
        return int(ffi.cast("uintptr_t", self._m))

    def set_id(self, event_id: int) -> None:
        lib.ttpr_marker_set_id(self._m, event_id)

    def count_early(self, on: bool) -> None:
        """Count emits made while the marker has no target list (its targets are late)."""
        lib.ttpr_marker_count_early(self._m, 1 if on else 0)

    def take_early(self) -> int:
        """Emits counted by count_early since the last call."""
        return int(lib.ttpr_marker_take_early(self._m))

    def set_targets(self, channels: list[Channel]) -> None:
        """Publish the channels this marker's events go to (empty: disabled)."""
        if channels:
            t = lib.ttpr_targets_new(len(channels))
            if t == ffi.NULL:
                raise OutOfMemory(_errno.ENOMEM, "cannot allocate a marker target list")
            for i, ch in enumerate(channels):
                lib.ttpr_targets_set(t, i, ch._live())
        else:
            t = ffi.NULL
        old = lib.ttpr_marker_swap(self._m, t)
        self.targets = tuple(channels)
        now = time.monotonic()
        if old != ffi.NULL:
            self._retired.append((now + GRACE_S, old))
        self.reap(now)
        if self.on_targets is not None:
            self.on_targets()

    def reap(self, now: float | None = None) -> None:
        """Free replaced target lists whose grace period is over."""
        now = time.monotonic() if now is None else now
        keep = []
        for due, t in self._retired:
            if due <= now:
                lib.ttpr_targets_free(t)
            else:
                keep.append((due, t))
        self._retired = keep

    def fast_emitter(self, cls: type[partial]) -> partial | None:
        """A ``cls`` (a functools.partial subclass) over the typed C emitter.

        Only for markers of 1 to 3 integer fields: cffi converts and
        range-checks each argument by its C type, so the call has no
        Python frame.  None for other formats.
        """
        if not 1 <= len(self.codes) <= 3 or not all(c in _INTISH for c in self.codes):
            return None
        fn = getattr(lib, "ttpr_fast_" + "".join(_FAST_LETTER[c] for c in self.codes))
        return cls(fn, self._m)

    def specialised_call(
        self, params: list[str], encode: Callable[..., bytes]
    ) -> Callable[..., None]:
        """A ``__call__`` for a marker class of its own, specialised to this marker.

        ``params`` are the parameter names (one per field, in order); ``encode``
        encodes them in Python and raises TypeError with a sentence for a bad
        value.  Markers of integers and strings (up to 3 + 1, or 2 + 2) pass
        them straight to a C encoder; others are encoded by ``encode`` and
        copied.  The C function and this marker are bound into the function's
        globals: a call does no attribute or partial lookup (50 ns less).
        """
        ints = [p for p, c in zip(params, self.codes, strict=True) if c in _INTISH]
        strs = [p for p, c in zip(params, self.codes, strict=True) if c == "s"]
        fn = None
        if len(ints) + len(strs) == len(self.codes):
            fn = getattr(lib, f"ttpr_emit_i{len(ints)}s{len(strs)}", None)
            if fn is None and not strs:
                fn = getattr(lib, f"ttpr_emit_i{len(ints)}", None)
            if fn is None and not ints:
                fn = getattr(lib, f"ttpr_emit_s{len(strs)}", None)
        args = ", ".join(params)
        if fn is not None:
            c_args = ", ".join(["_m", *ints, *(f"{p}.encode()" for p in strs)])
            body = (
                "    if self.enabled:\n"
                "        try:\n"
                f"            rc = _fn({c_args})\n"
                "        except (TypeError, AttributeError, OverflowError, UnicodeError):\n"
                f"            _encode({args})\n"
                "            raise\n"
                "        if rc < 0:\n"
                f"            _encode({args})\n"
            )
        else:
            fn = lib.ttpr_emit_bytes
            body = (
                "    if self.enabled:\n"
                f"        _p = _encode({args})\n"
                "        _fn(_m, _p, len(_p))\n"
            )
        ns: dict[str, object] = {"_fn": fn, "_m": self._m, "_encode": encode}
        exec(f"def __call__(self, {args}):\n{body}", ns)
        return ns["__call__"]  # type: ignore[return-value]

    def close(self) -> None:
        """Disable and free every target list (at exit: no writer is left)."""
        old = lib.ttpr_marker_swap(self._m, ffi.NULL)
        if old != ffi.NULL:
            lib.ttpr_targets_free(old)
        for _, t in self._retired:
            lib.ttpr_targets_free(t)
        self._retired = []
        self.targets = ()


def synchronize(timeout_s: float) -> bool:
    """Wait until every emit of this process in progress now has finished (ttpr_synchronize):
    True; False if one did not finish within TIMEOUT_S (a stopped or descheduled thread)."""
    return lib.ttpr_synchronize(int(timeout_s * 1e9)) == 0


def test_hold(hold: bool) -> None:
    """Tests only: while set, every emit of this process stops between reserve and commit."""
    lib.ttpr_test_hold(1 if hold else 0)


def test_held() -> int:
    """Tests only: how many emits the hold stops right now."""
    return int(lib.ttpr_test_held())


def emitter_addresses() -> tuple[int, int, int, int]:
    """ttpr's emitters ttpr_emit_raw, ttpr_emit_bytes, ttpr_emit_i2s1, ttpr_emit_i2s2 as
    addresses, for tracetui.core._ttpy.init (one emitter core, one copy per process)."""
    names = ("ttpr_emit_raw", "ttpr_emit_bytes", "ttpr_emit_i2s1", "ttpr_emit_i2s2")
    return tuple(int(ffi.cast("uintptr_t", ffi.addressof(lib, n))) for n in names)  # type: ignore[return-value]


def ttrb_write_u64x3_address(chan: Channel) -> tuple[int, int]:
    """(address of ttrb_write_u64x3, address of CHAN's ttrb_chan): for the C-API reference
    of benchmarks/bench_probe.py."""
    fn = int(ffi.cast("uintptr_t", ffi.addressof(lib, "ttrb_write_u64x3")))
    return fn, int(ffi.cast("uintptr_t", chan._live()))


def bench_write(chan: Channel, threads: int, count: int, payload_len: int) -> int:
    """C write loop for benchmarks: mean ns per record per thread."""
    rc = int(lib.ttrb_bench_write(chan._live(), threads, count, payload_len))
    if rc < 0:
        _raise(rc, "benchmark threads could not start")
    return rc
