"""The trace clock: ticks to nanoseconds by ONE conversion, and ONE rendering of times.

Records carry raw TSC ticks.  A trace's metadata records the clock as CTF defines it
(``freq`` in integer Hz, ``offset_s`` + ``offset`` ticks placing tick 0 on the Unix epoch) and
one calibration point against CLOCK_MONOTONIC (``tsc0``, ``mono_ns0``).  :class:`TraceClock`
converts ticks exactly as babeltrace2 does (doubles, truncated), so tracetui and babeltrace2
print the same nanoseconds; every view (dump, watch, the console) goes through it.

:func:`time_of_day` and :func:`relative` are how times are shown everywhere.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

__all__ = ["NS", "Calibration", "ClockCalibration", "TraceClock", "relative", "time_of_day"]

NS = 1_000_000_000


class Calibration(Protocol):
    """A measured (TSC, CLOCK_MONOTONIC, CLOCK_REALTIME) point and the tick rate."""

    @property
    def freq_hz(self) -> float: ...
    @property
    def tsc0(self) -> int: ...
    @property
    def mono_ns0(self) -> int: ...
    @property
    def real_ns0(self) -> int: ...


@dataclass(frozen=True)
class ClockCalibration:
    """One measured calibration (the ring measures it; the daemon sends it to subscribers).

    Ticks become nanoseconds only through :class:`TraceClock`, never from this directly.
    """

    freq_hz: float
    tsc0: int
    mono_ns0: int
    real_ns0: int


@dataclass(frozen=True)
class TraceClock:
    """The trace's clock as the metadata records it.

    ``freq`` (integer Hz), ``offset_s`` + ``offset`` (ticks) place tick 0 on
    the Unix epoch, as CTF defines; ``tsc0``/``mono_ns0`` is one calibration
    point against CLOCK_MONOTONIC.
    """

    freq: int
    offset_s: int
    offset: int
    tsc0: int
    mono_ns0: int

    @classmethod
    def from_calibration(cls, cal: Calibration) -> TraceClock:
        freq = round(cal.freq_hz)
        if freq <= 0:
            raise ValueError(f"clock frequency {cal.freq_hz!r} Hz is not positive")
        # Wall time of tick 0 (may be before the epoch on a clock that does
        # not start near boot; offset_s is signed, offset stays in [0, freq)).
        wall0 = cal.real_ns0 - cal.tsc0 * NS // freq
        offset_s, rem_ns = divmod(wall0, NS)
        return cls(freq, offset_s, rem_ns * freq // NS, cal.tsc0, cal.mono_ns0)

    @property
    def base_ns(self) -> int:
        """Wall nanoseconds of tick 0, as babeltrace2 computes them."""
        return self.offset_s * NS + int(1e9 * self.offset / self.freq)

    def wall_ns(self, tsc: int) -> int:
        """Nanoseconds since the epoch, computed exactly as babeltrace2 does."""
        # babeltrace2: ns = offset_s * 1e9 + trunc(1e9 * offset / freq)
        #                  + trunc(1e9 * value / freq), in doubles.
        return self.base_ns + int(1e9 * tsc / self.freq)

    def mono_ns(self, tsc: int) -> int:
        """CLOCK_MONOTONIC nanoseconds."""
        return self.mono_ns0 + int((tsc - self.tsc0) * 1e9 / self.freq)


def time_of_day(wall_ns: int) -> str:
    """Local wall-clock time with nanoseconds, e.g. ``12:34:56.123456789``."""
    secs, ns = divmod(wall_ns, NS)
    return time.strftime("%H:%M:%S", time.localtime(secs)) + f".{ns:09d}"


def relative(delta_ns: int) -> str:
    """A time since a reference, e.g. ``+  12.345678901``."""
    sign = "-" if delta_ns < 0 else "+"
    secs, ns = divmod(abs(delta_ns), NS)
    return f"{sign}{secs:>4d}.{ns:09d}"
