"""Build glue: setuptools cannot declare cffi_modules in pyproject.toml alone.

The native ring buffer (native/) is compiled by cffi in out-of-line API mode
as tracetui.core._ttrb whenever the package is built or installed.
tracetui.core._ttpy (native/ttpy.c: vectorcall markers, the function-tracing
hook) is a plain CPython extension that does not compile ttrb.c/ttpr.c again:
it reaches them through function pointers taken from _ttrb at import.
"""

from setuptools import Extension, setup

setup(
    cffi_modules=["native/build.py:ffibuilder"],
    ext_modules=[
        Extension(
            "tracetui.core._ttpy",
            sources=["native/ttpy.c"],
            include_dirs=["native"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-fvisibility=hidden"],
        )
    ],
)
