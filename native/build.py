"""cffi build script for the ring-buffer backend (out-of-line API mode).

The cdef is native/ttrb.h itself, so the declarations Python sees are the
ones the C compiler checks; set_source compiles the real C sources.
Nothing but tracetui.core.buffers imports the resulting module.
"""

from __future__ import annotations

import pathlib

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent

ffibuilder = FFI()
ffibuilder.cdef((HERE / "ttrb.h").read_text())
ffibuilder.set_source(
    "tracetui.core._ttrb",
    '#include <stdint.h>\n#include "ttrb.h"',
    sources=[str((HERE / f).relative_to(HERE.parent)) for f in ("ttrb.c", "ttrb_bench.c")],
    include_dirs=[str(HERE.relative_to(HERE.parent))],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-fvisibility=hidden"],
    libraries=["rt", "pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
