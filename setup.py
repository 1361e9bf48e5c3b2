"""Build glue: setuptools cannot declare cffi_modules in pyproject.toml alone.

The native ring buffer (native/) is compiled by cffi in out-of-line API mode
as tracetui.core._ttrb whenever the package is built or installed.
tracetui.core._ttpy (native/ttpy.c: vectorcall markers, the function-tracing
hook) is a plain CPython extension that does not compile ttrb.c/ttpr.c again:
it reaches them through function pointers taken from _ttrb at import.

tracetui/lib/libtracetui-probe.so is the public C API (tracetui/include/tracetui/probe.h)
for C and C++ programs: the same ttrb.c and ttpr.c, plus native/ttc.c (its link to the
daemon).  It is a plain shared library, not a Python extension, built beside the extensions
(in place for an editable install).
"""

import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CFLAGS = ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-fvisibility=hidden"]
PROBE_LIB = "libtracetui-probe.so"
PROBE_SOURCES = ["native/ttrb.c", "native/ttpr.c", "native/ttc.c"]


class BuildWithProbeLibrary(build_ext):
    """build_ext, then libtracetui-probe.so into tracetui/lib/."""

    def run(self) -> None:
        super().run()
        out_root = "." if self.inplace else self.build_lib
        out_dir = os.path.join(out_root, "tracetui", "lib")
        os.makedirs(out_dir, exist_ok=True)
        objects = self.compiler.compile(
            PROBE_SOURCES,
            output_dir=os.path.join(self.build_temp, "probe"),
            include_dirs=["native", "tracetui/include"],
            extra_postargs=[*CFLAGS, "-fPIC"],
        )
        self.compiler.link_shared_object(
            objects,
            PROBE_LIB,
            output_dir=out_dir,
            libraries=["pthread", "rt"],
            # Bind every symbol at load: the link thread runs while dlopen holds the loader's
            # lock (a constructor waits for it), so it must never need lazy binding.
            extra_postargs=["-Wl,-z,now", f"-Wl,-soname,{PROBE_LIB}"],
        )


setup(
    cffi_modules=["native/build.py:ffibuilder"],
    cmdclass={"build_ext": BuildWithProbeLibrary},
    ext_modules=[
        Extension(
            "tracetui.core._ttpy",
            sources=["native/ttpy.c"],
            include_dirs=["native"],
            extra_compile_args=CFLAGS,
        ),
        # The explorer's packet decoder (core/trace/native.py): plain C, no ring, no cffi.
        Extension(
            "tracetui.core.trace._ttdec",
            sources=["native/ttdec.c"],
            extra_compile_args=CFLAGS,
        ),
    ],
)
