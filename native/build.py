"""cffi build script for the ring-buffer backend (out-of-line API mode).

The cdef is native/ttrb.h and native/ttpr.h themselves, so the declarations Python sees are the
ones the C compiler checks; set_source compiles the real C sources.
Nothing but tracetui.core.buffers imports the resulting module.
"""

from __future__ import annotations

import pathlib

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent

# Typed emitters for all-integer markers of 1 to 3 fields, one per
# combination of C types: cffi then checks each argument's type and range
# while converting it, so a Python marker can be a plain partial over the C
# function (no Python frame on the emit path).
#   i int32 (%d)   u uint32 (%u %x)   l int64 (%ld %lld)   q uint64 (%lu %llu %p)
FAST_TYPES = {"i": "int32_t", "u": "uint32_t", "l": "int64_t", "q": "uint64_t"}
FAST_MAX_FIELDS = 3


def _fast_emitters() -> tuple[str, str]:
    combos = [""]
    decls, defs = [], []
    for _ in range(FAST_MAX_FIELDS):
        combos = [c + t for c in combos for t in FAST_TYPES]
        for c in combos:
            params = ", ".join(f"{FAST_TYPES[t]} a{i}" for i, t in enumerate(c))
            proto = f"int ttpr_fast_{c}(struct ttpr_marker *m, {params})"
            vals = ", ".join(f"(int64_t)a{i}" for i in range(len(c)))
            decls.append(proto + ";")
            defs.append(
                f"{proto} {{ int64_t v[{len(c)}] = {{{vals}}}; "
                f"return ttpr_emit_raw(m, v, {len(c)}); }}"
            )
    return "\n".join(decls), "\n".join(defs)


FAST_DECLS, FAST_DEFS = _fast_emitters()

ffibuilder = FFI()
ffibuilder.cdef((HERE / "ttrb.h").read_text())
ffibuilder.cdef((HERE / "ttpr.h").read_text())
ffibuilder.cdef(FAST_DECLS)
ffibuilder.set_source(
    "tracetui.core._ttrb",
    '#include <stdint.h>\n#include "ttrb.h"\n#include "ttpr.h"\n' + FAST_DEFS,
    sources=[
        str((HERE / f).relative_to(HERE.parent)) for f in ("ttrb.c", "ttpr.c", "ttrb_bench.c")
    ],
    include_dirs=[str(HERE.relative_to(HERE.parent))],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-fvisibility=hidden"],
    libraries=["rt", "pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
