"""The ring room: shared-memory ring buffers (channels) and the probe's native markers.

The only importers of the compiled module (``tracetui.core._ttrb``).  Nothing on the console,
CLI or client side imports this room (import contracts in pyproject.toml).
"""

from __future__ import annotations

from tracetui.core.ring.channels import (
    Channel,
    InvalidConfig,
    OutOfMemory,
    Reservation,
    RingError,
    bench_ref_cas,
    bench_write,
    calibrate,
    clock_now,
    possible_cpus,
    validate,
)
from tracetui.core.ring.markers import (
    GRACE_S,
    NativeMarker,
    emitter_addresses,
    synchronize,
    test_held,
    test_hold,
    ttrb_write_u64x3_address,
)

__all__ = [
    "GRACE_S",
    "Channel",
    "InvalidConfig",
    "NativeMarker",
    "OutOfMemory",
    "Reservation",
    "RingError",
    "bench_ref_cas",
    "bench_write",
    "calibrate",
    "clock_now",
    "emitter_addresses",
    "possible_cpus",
    "synchronize",
    "test_held",
    "test_hold",
    "ttrb_write_u64x3_address",
    "validate",
]
