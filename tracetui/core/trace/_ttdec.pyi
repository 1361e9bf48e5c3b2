# Types of the compiled packet decoder (native/ttdec.c), for mypy.
from collections.abc import Callable, Sequence
from typing import Any

EVENT_HEADER_SIZE: int
PACKET_HEADER_SIZE: int

class Layout:
    def __init__(self, entries: Sequence[tuple[int, Sequence[tuple[int, int, bool]]]]) -> None: ...
    def stats(
        self, buf: bytes, start: int
    ) -> tuple[dict[int, int], int, int | None, int | None]: ...

class Filter:
    def __init__(self, layout: Layout, trees: dict[int, Any]) -> None: ...
    def windows(
        self,
        buf: bytes,
        start: int,
        nloss: int,
        loss_tsc: int,
        tsc0: int,
        mono_ns0: int,
        freq: int,
        cuts: list[int],
    ) -> tuple[list[int], int]: ...

def export_perfetto(
    streams: list[tuple[Any, ...]],
    write: Callable[[bytes], Any],
    progress: Callable[[int], None] | None,
    specs: tuple[bytes, ...],
) -> tuple[int, set[int]]: ...
