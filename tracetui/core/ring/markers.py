"""The probe's native side: markers with atomically replaced target lists, and emitters.

The only module, with ring/channels.py, that imports the compiled backend.
"""

from __future__ import annotations

import errno as _errno
import time
from collections.abc import Callable
from functools import partial

from tracetui.core._ttrb import ffi, lib
from tracetui.core.model.fields import TYPES
from tracetui.core.ring.channels import Channel, InvalidConfig, OutOfMemory

# Format type code -> ttpr field type, and -> the letter of the generated typed emitters
# (native/build.py): both from the one field table (core/model/fields.py).
_TTPR_TYPE = {code: getattr(lib, f"TTPR_{t.native}") for code, t in TYPES.items()}
_FAST_LETTER = {code: t.emit for code, t in TYPES.items() if t.emit}
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
